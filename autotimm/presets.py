"""Detector presets: light configurations sized like the common nano / small / medium detectors.

A preset is a plain set of constructor arguments for the three objects a training needs (the data
module, the detector and the Lightning Trainer), held in a :class:`~autotimm.recipes.Recipe`, plus the
backbone's name. :meth:`DetectorPreset.code` prints it as Python that builds all three, so a preset
is a starting point to copy and edit, not a hidden mode.

FLOPs are forward GFLOPs of the whole network (backbone, FPN, head; one class) for one 256 x 256
image, counted by ``torch.utils.flop_counter`` (a multiply-add counts 2, as the "GFLOPs" of
YOLOv5/v8 do), measured with ``benchmarks/flops.py``'s counter:

======  ==========================  ============  ======  ==========  ==========  ====
preset  backbone                    FPN / head    levels  GFLOPs@256  params (M)  size
======  ==========================  ============  ======  ==========  ==========  ====
nano    ``mobilenetv4_conv_small``  64 / 2 conv   P3-P5   1.00        1.6         256
small   ``cs3darknet_m``            96 / 2 conv   P3-P5   5.33        9.3         256
medium  ``cs3darknet_l``            160 / 3 conv  P3-P5   14.2        22.5        320
(nano)  ``mobilenetv4_conv_small``  64 / 2 dw     P3-P5   0.66        1.5         256
======  ==========================  ============  ======  ==========  ==========  ====

(nano): the nano preset with ``head_conv="depthwise"``, an option of every preset, not a preset (e.g.
``ObjectDetector.from_preset("nano", num_classes, head_conv="depthwise")``) makes each head tower conv
depthwise-separable (YOLOX's DWConv, :mod:`autotimm.models.heads.layers`); small would be 4.55 and
medium 10.9 GFLOPs with it. No preset uses it until ``benchmarks/time_to_accuracy.py``'s "nano_dw"
config shows that it pays in accuracy per second of training.

For comparison, the reference defaults (``resnet18``, FPN 256, four head convs on P3-P7) are 19.4
GFLOPs at 256 px, and YOLOv8n / YOLOv8s are 1.29 / 4.55 GFLOPs there (one class, same counter; see
benchmarks/RESULTS.md "Accuracy against wall-clock" for the presets trained beside them).

Why these choices (measured, see benchmarks/RESULTS.md "Presets: accuracy against training time"):

* nano: ``mobilenetv4_conv_small``. With the nano settings, trained from scratch on the raccoon
  photos for 10 epochs, it reached val mAP 0.259 / mAP50 0.750 against 0.239 / 0.782 for
  ``cs3darknet_s`` (1.96 GFLOPs), with about 0.6x its training step time on a 2-core CPU and half
  its FLOPs; ``efficientnet_lite0`` (1.47 GFLOPs) took about 2x the CSP-Darknet's step time.
* small / medium: CSP-Darknet (``cs3darknet_m`` / ``cs3darknet_l``, the YOLOv5/v8 backbone family in
  timm): dense 3x3 and 1x1 convolutions, which CPUs and GPUs run near their peak, and BatchNorm that
  trains well from scratch.
* Three levels (strides 8, 16, 32) instead of five: P6/P7 only help objects larger than the image
  allows at 256-320 px, and the head's cost is per level.
* FCOS with AdamW: FCOS learns far more per epoch than YOLOX from scratch on small data (the issue's
  measurement), and AdamW needs no per-batch-size lr tuning.
* Warm-up per optimizer step (``interval="step"``), so no epoch trains at a thousandth of the lr.
"""

from __future__ import annotations

import copy
import pprint
from dataclasses import dataclass, field
from typing import Any, Literal

from autotimm.recipes import Recipe

PresetName = Literal["nano", "small", "medium"]


@dataclass(frozen=True)
class DetectorPreset:
    """One preset: a backbone name and the keyword arguments of the data module, detector and trainer.

    Attributes:
        name: "nano", "small" or "medium".
        backbone: timm model name of the backbone.
        gflops: forward GFLOPs of the whole detector at 256 x 256, one class (see the module docstring).
        params_m: parameters in millions, one class.
        datamodule_kwargs: for ``DetectionDataModule(train=..., val=..., **datamodule_kwargs)``.
        model_kwargs: for ``ObjectDetector(backbone, num_classes=..., **model_kwargs)``.
        trainer_kwargs: for ``AutoTrainer(**trainer_kwargs)`` (or ``lightning.Trainer``).
    """

    name: str
    backbone: str
    gflops: float
    params_m: float
    datamodule_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)

    def recipe(self) -> Recipe:
        """The three keyword groups as a :class:`~autotimm.recipes.Recipe` (deep copies: edit freely)."""
        return Recipe(
            datamodule_kwargs=copy.deepcopy(self.datamodule_kwargs),
            model_kwargs=copy.deepcopy(self.model_kwargs),
            trainer_kwargs=copy.deepcopy(self.trainer_kwargs),
        )

    def code(self, *, train: str = "train.json", val: str = "val.json", images_dir: str | None = None,
             pretrained: bool = True, fit: bool = True) -> str:
        """Python source that builds the data module, the detector and the trainer of this preset.

        Args:
            train / val: the annotation paths written into the code.
            images_dir: the image folder written into the code (omitted when None).
            pretrained: the backbone's ``pretrained`` flag in the code.
            fit: end with ``trainer.fit(model, datamodule=data)``.

        Returns:
            the source text; it runs as it is once the paths exist.

        Example:
            >>> print(preset("nano").code())  # doctest: +ELLIPSIS
            import autotimm as at
            ...
        """

        def kwargs(values: dict[str, Any], indent: str = "    ") -> str:
            return "".join(f"{indent}{key}={pprint.pformat(value, width=100, sort_dicts=False)},\n" for key, value in values.items())

        paths = {"train": train, "val": val} | ({"images_dir": images_dir} if images_dir is not None else {})
        return (
            "import autotimm as at\n\n"
            f"# preset {self.name!r}: {self.gflops:g} GFLOPs at 256 px, {self.params_m:g} M parameters\n"
            f"data = at.DetectionDataModule(\n{kwargs(paths)}{kwargs(self.datamodule_kwargs)})\n"
            f"model = at.ObjectDetector(\n    at.FeatureBackboneConfig({self.backbone!r}, pretrained={pretrained!r}),\n"
            f"    num_classes=data.num_classes,\n{kwargs(self.model_kwargs)})\n"
            f"trainer = at.AutoTrainer(\n{kwargs(self.trainer_kwargs)})\n"
            + ("trainer.fit(model, datamodule=data)\n" if fit else "")
        )


def _fcos(fpn_channels: int, head_num_convs: int, lr: float, warmup_steps: int) -> dict[str, Any]:
    return {
        "detection_arch": "fcos",
        "fpn_channels": fpn_channels,
        "head_num_convs": head_num_convs,
        "strides": (8, 16, 32),
        "lr": lr,
        "weight_decay": 1e-4,
        "optimizer": "adamw",
        "scheduler": "cosine",
        "scheduler_kwargs": {"interval": "step", "warmup_steps": warmup_steps},
    }


DETECTOR_PRESETS: dict[str, DetectorPreset] = {
    "nano": DetectorPreset(
        "nano", "mobilenetv4_conv_small", gflops=1.00, params_m=1.6,
        datamodule_kwargs={"image_size": 256, "batch_size": 8, "augment": "default"},
        model_kwargs=_fcos(64, 2, lr=2e-3, warmup_steps=50),
        trainer_kwargs={"max_epochs": 30},
    ),
    "small": DetectorPreset(
        "small", "cs3darknet_m", gflops=5.33, params_m=9.3,
        datamodule_kwargs={"image_size": 256, "batch_size": 8, "augment": "default"},
        model_kwargs=_fcos(96, 2, lr=2e-3, warmup_steps=50),
        trainer_kwargs={"max_epochs": 30},
    ),
    "medium": DetectorPreset(
        "medium", "cs3darknet_l", gflops=14.2, params_m=22.5,
        datamodule_kwargs={"image_size": 320, "batch_size": 8, "augment": "default"},
        model_kwargs=_fcos(160, 3, lr=1e-3, warmup_steps=100),
        trainer_kwargs={"max_epochs": 36},
    ),
}  # fmt: skip


def preset(name: PresetName) -> DetectorPreset:
    """The detector preset called ``name``.

    Args:
        name: "nano" (~1 GFLOPs at 256 px, a laptop CPU), "small" (~5) or "medium" (~14, a GPU).

    Returns:
        a :class:`DetectorPreset`; ``.recipe()`` gives fresh keyword arguments, ``.code()`` prints them
        as Python; ``ObjectDetector.from_preset(name, num_classes)`` builds the detector.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).

    Example:
        >>> p = preset("nano")
        >>> p.backbone, p.model_kwargs["fpn_channels"], p.datamodule_kwargs["image_size"]
        ('mobilenetv4_conv_small', 64, 256)
    """
    if not isinstance(name, str) or name not in DETECTOR_PRESETS:
        raise ValueError(f"preset({name!r}): unknown preset; expected one of {list(DETECTOR_PRESETS)}.")
    return DETECTOR_PRESETS[name]
