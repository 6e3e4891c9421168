"""The detectors under test, built at equal backbone, FPN width, head depth and image size, each with
one training step and one end-to-end inference as plain callables.

* autotimm: :class:`autotimm.ObjectDetector` (FCOS or YOLOX) on a timm backbone, run the way its
  users run it: ``precision="auto"`` (bf16 autocast + channels_last where bf16 is fast).
* torchvision: ``torchvision.models.detection.FCOS`` / ``RetinaNet`` on the torchvision ResNet of the
  same name (``weights=None``, trainable BatchNorm like an untrained torchvision detector), an FPN of
  the same width with P6/P7 from P5, and the same number of head convs. Its transform's
  ``min_size = max_size = image_size``, so square inputs of that size are not resized.

Frames: every benchmark image is already a square ``image_size`` canvas, so the input frame and the
original frame coincide; targets and detections are x1y1x2y2 pixels of that canvas.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Literal, Sequence

import torch
from torch import Tensor, nn

Library = Literal["autotimm", "torchvision"]
Arch = Literal["fcos", "yolox", "retinanet"]
Precision = Literal["auto", "fp32", "bf16"]

LIBRARIES: tuple[str, ...] = ("autotimm", "torchvision")
ARCHS: dict[str, tuple[str, ...]] = {"autotimm": ("fcos", "yolox"), "torchvision": ("fcos", "retinanet")}
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
ARCH_TITLES = {"fcos": "FCOS", "yolox": "YOLOX", "retinanet": "RetinaNet"}
# autotimm-only variants. "zeroinit": the timm ResNet built with timm's classification default
# zero_init_last=True (the last BatchNorm of every residual block at 0), which autotimm turns off
# when it trains a backbone from scratch; shows what that choice is worth.
VARIANTS: dict[str, str] = {"": "", "zeroinit": "timm zero_init_last"}
# torchvision ResNets that have a timm model of the same name and architecture.
TORCHVISION_BACKBONES: tuple[str, ...] = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2",
)  # fmt: skip
# Post-processing shared by every contender (autotimm's defaults), so inference does the same work.
SCORE_THRESH, NMS_THRESH, MAX_DETECTIONS, TOPK_CANDIDATES = 0.05, 0.5, 100, 1000


def resolve(precision: str) -> Literal["fp32", "bf16"]:
    """Map "auto" to what autotimm picks on this CPU; "fp32" and "bf16" stay as they are."""
    from autotimm.utils.precision import resolve_precision

    return resolve_precision(precision, "cpu")


def precision_label(precision: str) -> str:
    """Table label: "bf16+CL" (bf16 autocast + channels_last) or "fp32"."""
    return "bf16+CL" if resolve(precision) == "bf16" else "fp32"


@dataclass(frozen=True)
class ContenderSpec:
    """Which detector, from which library, in which precision.

    Args:
        library: "autotimm" or "torchvision".
        arch: "fcos" or "yolox" (autotimm), "fcos" or "retinanet" (torchvision).
        precision: "auto" (autotimm's run-time choice), "fp32" (default memory format) or "bf16"
            (bf16 autocast + channels_last).
        variant: "" or, for autotimm, "zeroinit" (see :data:`VARIANTS`).

    Example:
        >>> ContenderSpec.parse("torchvision:fcos:fp32").name
        'torchvision FCOS fp32'
    """

    library: Library
    arch: Arch
    precision: Precision = "auto"
    variant: str = ""

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            raise ValueError(f"ContenderSpec(library={self.library!r}): expected one of {list(LIBRARIES)}.")
        if self.arch not in ARCHS[self.library]:
            raise ValueError(
                f"ContenderSpec(arch={self.arch!r}) for library {self.library!r}: expected one of {list(ARCHS[self.library])}."
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"ContenderSpec(precision={self.precision!r}): expected one of {list(PRECISIONS)}.")
        if self.variant not in VARIANTS or (self.variant and self.library != "autotimm"):
            raise ValueError(
                f"ContenderSpec(variant={self.variant!r}) for library {self.library!r}: expected '' "
                f"or, for autotimm, one of {[v for v in VARIANTS if v]}."
            )

    @classmethod
    def parse(cls, text: str) -> "ContenderSpec":
        """Spec from "library:arch[:precision[:variant]]" (precision default "auto")."""
        parts = str(text).split(":")
        if len(parts) not in (2, 3, 4):
            raise ValueError(
                f"contender {text!r}: expected 'library:arch[:precision[:variant]]' such as 'autotimm:fcos:auto', "
                "'torchvision:fcos:fp32' or 'autotimm:fcos:auto:zeroinit'."
            )
        return cls(*parts)

    @property
    def key(self) -> str:
        return f"{self.library}:{self.arch}:{self.precision}" + (f":{self.variant}" if self.variant else "")

    @property
    def bf16(self) -> bool:
        return resolve(self.precision) == "bf16"

    @property
    def label(self) -> str:
        """The precision as resolved on this machine: "bf16+CL" or "fp32"."""
        return precision_label(self.precision)

    @property
    def name(self) -> str:
        name = f"{self.library} {ARCH_TITLES[self.arch]} {self.label}"
        return name + (f" ({VARIANTS[self.variant]})" if self.variant else "")


def autocast(enabled: bool) -> ContextManager[Any]:
    """bf16 autocast on the CPU when ``enabled``, else nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else nullcontext()


def synthetic_batch(batch_size: int, image_size: int, num_classes: int, boxes_per_image: int = 4, seed: int = 0) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Noise images with painted boxes of several sizes, as a training batch (input frame).

    Returns:
        uint8 Tensor[B, 3, S, S] and B targets with ``boxes`` float32 [N, 4] x1y1x2y2 pixels and
        ``labels`` int64 [N] in 0..K-1.
    """
    if image_size < 32 or batch_size < 1 or num_classes < 1 or boxes_per_image < 1:
        raise ValueError(
            f"synthetic_batch(batch_size={batch_size}, image_size={image_size}, num_classes={num_classes}, "
            f"boxes_per_image={boxes_per_image}): expected batch_size >= 1, image_size >= 32, num_classes >= 1, boxes_per_image >= 1."
        )
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(batch_size, 3, image_size, image_size, generator=g) * 255).to(torch.uint8)
    targets = []
    for i in range(batch_size):
        # sides from 1/16 to 3/4 of the image, so every pyramid level gets positives
        sides = torch.linspace(image_size / 16, image_size * 0.75, boxes_per_image)  # [N]
        x1 = torch.rand(boxes_per_image, generator=g) * (image_size - sides)  # [N]
        y1 = torch.rand(boxes_per_image, generator=g) * (image_size - sides)
        boxes = torch.stack([x1, y1, x1 + sides, y1 + sides], dim=1).floor()  # [N, 4]
        labels = torch.randint(0, num_classes, (boxes_per_image,), generator=g)
        for box, label in zip(boxes.int().tolist(), labels.tolist()):
            images[i, :, box[1] : box[3], box[0] : box[2]] = torch.tensor([40 + 70 * (label % 3), 200, 90])[:, None, None].to(torch.uint8)
        targets.append({"boxes": boxes.float(), "labels": labels})
    return images, targets


def build_autotimm(arch: str, backbone: str, num_classes: int, fpn_channels: int, head_num_convs: int, variant: str = "") -> nn.Module:
    """An untrained ``autotimm.ObjectDetector`` (no compile, no deterministic mode: plain eager, like
    the torchvision models it is compared with); ``variant="zeroinit"`` builds the timm ResNet with
    ``zero_init_last=True``."""
    from autotimm import FeatureBackboneConfig, ObjectDetector

    extra = {"zero_init_last": True} if variant == "zeroinit" else {}
    return ObjectDetector(
        FeatureBackboneConfig(backbone, pretrained=False, extra_kwargs=extra), num_classes=num_classes, detection_arch=arch,
        fpn_channels=fpn_channels, head_num_convs=head_num_convs, score_thresh=SCORE_THRESH,
        nms_thresh=NMS_THRESH, max_detections_per_image=MAX_DETECTIONS, compile_model=False, deterministic=False,
    )  # fmt: skip


def torchvision_backbone(backbone: str, fpn_channels: int) -> nn.Module:
    """torchvision ResNet ``backbone`` (weights=None, trainable BatchNorm) + FPN on C3-C5 + P6/P7 from P5."""
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    if backbone not in TORCHVISION_BACKBONES:
        raise ValueError(
            f"backbone {backbone!r} has no torchvision twin to compare with; use one of {list(TORCHVISION_BACKBONES)} "
            "(same name and architecture in timm and torchvision)."
        )
    body = getattr(torchvision.models, backbone)(weights=None)
    expansion = type(body.layer1[0]).expansion  # 1 for BasicBlock, 4 for Bottleneck
    in_channels = [c * expansion for c in (128, 256, 512)]  # C3, C4, C5
    return BackboneWithFPN(
        body, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"}, in_channels_list=in_channels,
        out_channels=fpn_channels, extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels),
    )  # fmt: skip


def build_torchvision(arch: str, backbone: str, num_classes: int, image_size: int, fpn_channels: int, head_num_convs: int) -> nn.Module:
    """An untrained torchvision FCOS or RetinaNet matching autotimm's detector (see module docstring).

    Labels are 0..K-1 with ``num_classes=K``: both heads use sigmoid scores, so no class is reserved
    for background.
    """
    from torchvision.models.detection import FCOS, RetinaNet
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.models.detection.retinanet import RetinaNetHead

    fpn = torchvision_backbone(backbone, fpn_channels)
    common = dict(
        min_size=image_size, max_size=image_size, score_thresh=SCORE_THRESH, nms_thresh=NMS_THRESH,
        detections_per_img=MAX_DETECTIONS, topk_candidates=TOPK_CANDIDATES,
    )  # fmt: skip
    if arch == "fcos":
        return FCOS(fpn, num_classes, head=FCOSHead(fpn_channels, 1, num_classes, num_convs=head_num_convs), **common)
    if arch == "retinanet":
        model = RetinaNet(fpn, num_classes, **common)
        num_anchors = model.anchor_generator.num_anchors_per_location()[0]
        head = RetinaNetHead(fpn_channels, num_anchors, num_classes)
        for sub in (head.classification_head, head.regression_head):  # RetinaNet has 4 convs; keep as many as asked
            sub.conv = nn.Sequential(*list(sub.conv)[:head_num_convs])
        model.head = head
        return model
    raise ValueError(f"build_torchvision(arch={arch!r}): expected one of {list(ARCHS['torchvision'])}.")


class Contender:
    """One detector with a training step and an end-to-end inference, by default on a fixed batch.

    Args:
        spec: which detector.
        backbone: timm / torchvision ResNet name, e.g. "resnet50".
        batch: uint8 images Tensor[B, 3, S, S] and B targets (input frame = original frame); the
            default batch of the methods below, and S fixes the torchvision transform's size.
        num_classes / fpn_channels / head_num_convs: as in ``ObjectDetector``.
        optimizer: ``params -> torch.optim.Optimizer``; default SGD with a small lr (the speed
            benchmark repeats the step on one batch).

    Attributes:
        model: the ``nn.Module`` (in train mode, channels_last when ``spec.bf16``).
    """

    def __init__(
        self,
        spec: ContenderSpec,
        backbone: str,
        batch: tuple[Tensor, Sequence[dict[str, Tensor]]],
        num_classes: int,
        fpn_channels: int,
        head_num_convs: int,
        optimizer: Callable[[Any], torch.optim.Optimizer] | None = None,
    ) -> None:
        self.spec = spec
        self.backbone = backbone
        images, targets = batch
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != images.shape[-2]:
            raise ValueError(f"Contender batch: expected uint8 Tensor[B, 3, S, S], got {images.dtype} {tuple(images.shape)}.")
        self.images = images
        self.targets = targets
        self.image_size = int(images.shape[-1])
        if spec.library == "autotimm":
            self.model = build_autotimm(spec.arch, backbone, num_classes, fpn_channels, head_num_convs, spec.variant)
        else:
            self.model = build_torchvision(spec.arch, backbone, num_classes, self.image_size, fpn_channels, head_num_convs)
        self.model.train()
        if spec.bf16:
            self.model.to(memory_format=torch.channels_last)  # what AutoTrainer does on the fast path
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = optimizer(params) if optimizer is not None else torch.optim.SGD(params, lr=1e-5, momentum=0.9)

    @property
    def name(self) -> str:
        return self.spec.name

    def loss(self, images: Tensor | None = None, targets: Sequence[dict[str, Tensor]] | None = None) -> Tensor:
        """Training loss (forward + loss) on uint8 images Tensor[B, 3, S, S] and their targets
        (``boxes`` x1y1x2y2 input-frame pixels, ``labels`` 0..K-1); default: the fixed batch."""
        images = self.images if images is None else images
        targets = [{"boxes": t["boxes"].float(), "labels": t["labels"].long()} for t in (self.targets if targets is None else targets)]
        bf16 = self.spec.bf16
        if self.spec.library == "autotimm":
            x = self.model.normalize(images)
            if bf16:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(bf16):
                return self.model.compute_loss(x, targets)["loss"]
        with autocast(bf16):
            losses = self.model([image.float() / 255.0 for image in images], targets)  # torchvision normalises inside
            return sum(losses.values())

    def train_step(self, images: Tensor | None = None, targets: Sequence[dict[str, Tensor]] | None = None) -> Tensor:
        """One optimizer step (forward, loss, backward, step); returns the detached loss."""
        loss = self.loss(images, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def infer(self, images: Tensor | None = None) -> list[dict[str, Tensor]]:
        """End-to-end inference in eval mode: uint8 images Tensor[B, 3, S, S] in, one dict per image
        out (``boxes`` float32 x1y1x2y2 in the pixels of those images, ``scores``, ``labels``)."""
        images = self.images if images is None else images
        bf16 = self.spec.bf16
        if self.spec.library == "autotimm":
            return self.model.predict(list(images), image_size=self.image_size, batch_size=len(images), precision="bf16" if bf16 else "fp32")
        self.model.eval()
        try:
            with torch.inference_mode(), autocast(bf16):
                dets = self.model([image.float() / 255.0 for image in images])
        finally:
            self.model.train()
        return [{"boxes": d["boxes"].float(), "scores": d["scores"].float(), "labels": d["labels"]} for d in dets]
