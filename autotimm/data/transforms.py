"""Training augmentation: a jittered letterbox, flip and colour jitter, with named presets.

The geometric step generalises the letterbox of :mod:`autotimm.data.letterbox`: the image is
scaled by ``scale = letterbox_scale * U(scale_range)`` and placed at a random offset
``(pad_x, pad_y)`` on the ``S x S`` canvas (a negative offset crops). The map from the source image
to the input frame stays ``x_in = x * scale + pad``, so the recorded ``letterbox`` params keep
their meaning; the validation path is the special case ``U = 1``, offset 0. Boxes are clipped to
the canvas and dropped when less than ``min_visibility`` of their area survives the crop.

Flip (:func:`hflip`, plain tensor ops) and colour jitter then run in the input frame (a flip is not
undone by the ``letterbox`` params); the colour jitter is :class:`autotimm.data.color.Uint8ColorJitter`
(a ``v2.ColorJitter``), one affine colour map in uint8. User transforms run as ``torchvision.transforms.v2``
on ``tv_tensors`` (:func:`apply_v2`).

Speed (the augmented path must keep a GPU fed): images stay uint8 and channels-last in memory, on
which torch's vectorised antialiased resize runs several times faster than on planar memory (same
output); the dataset decodes JPEGs reduced to the output scale (``read_pil_reduced``) and
:func:`reduced_placement` draws such a decode exactly where the original would go.
Mosaic and mixup live in :mod:`autotimm.data.mosaic`; they need several images, so the dataset
applies them.

Presets:
    * ``"none"``: letterbox only (what validation always uses).
    * ``"default"``: scale jitter 0.75-1.25 with random placement/crop, horizontal flip, mild
      brightness/contrast/saturation jitter.
    * ``"strong"``: scale jitter 0.5-1.5, flip, colour jitter with hue, and YOLOX-style mosaic
      (p = 1) and mixup (p = 0.5), both switchable off for the last epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Union

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from autotimm.data.letterbox import PAD_VALUE, boxes_to_input, letterbox_params, resized_hw

AugmentPreset = Literal["none", "default", "strong"]
# A user transform: (tv_tensors.Image, target with tv_tensors.BoundingBoxes) -> the same, ORIGINAL frame.
UserTransform = Callable[[tv_tensors.Image, dict[str, Any]], tuple[tv_tensors.Image, dict[str, Any]]]


@dataclass(frozen=True)
class AugmentConfig:
    """Settings of the built-in training augmentation.

    Attributes:
        scale_range: factor range applied to the letterbox scale; (1, 1) disables scale jitter.
        translate: place the image at a random offset (and crop when it is larger than the
            canvas) instead of the top-left corner.
        hflip_prob: probability of a horizontal flip.
        brightness, contrast, saturation, hue: ``v2.ColorJitter`` strengths (0 disables).
        mosaic_prob: probability of a 4-image mosaic (switched off with the strong-augment flag).
        mosaic_scale: scale factor range of the mosaic canvas on its way to ``S x S``.
        mixup_prob: probability of blending with a second sample (switched off with the flag).
        min_visibility: a box survives a crop when at least this fraction of its area does.
        min_size: boxes narrower or lower than this (input-frame px) after cropping are dropped.
    """

    scale_range: tuple[float, float] = (1.0, 1.0)
    translate: bool = False
    hflip_prob: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    mosaic_prob: float = 0.0
    mosaic_scale: tuple[float, float] = (0.5, 1.5)
    mixup_prob: float = 0.0
    min_visibility: float = 0.25
    min_size: float = 2.0

    def __post_init__(self) -> None:
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high; got {self.scale_range}.")
        lo, hi = self.mosaic_scale
        if not 0 < lo <= hi:
            raise ValueError(f"mosaic_scale must satisfy 0 < low <= high; got {self.mosaic_scale}.")
        for name in ("hflip_prob", "mosaic_prob", "mixup_prob", "min_visibility"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {value}.")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5]; got {self.hue}.")

    @property
    def uses_strong(self) -> bool:
        """True when mosaic or mixup can fire."""
        return self.mosaic_prob > 0 or self.mixup_prob > 0


PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "default": AugmentConfig(
        scale_range=(0.75, 1.25), translate=True, hflip_prob=0.5,
        brightness=0.2, contrast=0.2, saturation=0.2,
    ),
    "strong": AugmentConfig(
        scale_range=(0.5, 1.5), translate=True, hflip_prob=0.5,
        brightness=0.3, contrast=0.3, saturation=0.4, hue=0.015,
        mosaic_prob=1.0, mixup_prob=0.5,
    ),
}

Augment = Union[AugmentPreset, AugmentConfig, UserTransform]


def resolve_augment(augment: Augment) -> AugmentConfig | UserTransform:
    """A preset name, an ``AugmentConfig`` or a callable -> an ``AugmentConfig`` or the callable."""
    if isinstance(augment, AugmentConfig) or (callable(augment) and not isinstance(augment, str)):
        return augment
    if isinstance(augment, str) and augment in PRESETS:
        return PRESETS[augment]
    raise ValueError(
        f"Unknown augment {augment!r}; use one of {sorted(PRESETS)}, an AugmentConfig, or a callable "
        "(image, target) -> (image, target) working on torchvision tv_tensors."
    )


def sample_placement(
    orig_hw: tuple[int, int], size: int, scale_range: tuple[float, float], translate: bool,
    base_scale: float | None = None,
) -> Tensor:
    """Draw letterbox params ``(scale, pad_x, pad_y)`` for one image.

    Args:
        orig_hw: (H, W) of the source image.
        size: side S of the square canvas.
        scale_range: factor range on ``base_scale``.
        translate: random offset (uniform over every placement that keeps the canvas covered as
            far as the image allows); False: top-left corner.
        base_scale: default the letterbox scale ``min(S / H, S / W)``.

    Returns:
        Tensor[3] float32 ``(scale, pad_x, pad_y)``; pads are whole pixels, negative when cropping.
    """
    if base_scale is None:
        base_scale = float(letterbox_params(orig_hw, size)[0])
    lo, hi = scale_range
    scale = base_scale * (lo + (hi - lo) * float(torch.rand(())))
    new_h, new_w = resized_hw(orig_hw, scale)
    pads = []
    for extent in (new_w, new_h):
        slack = size - extent  # >= 0: free room; < 0: the image overhangs and gets cropped
        low, high = min(0, slack), max(0, slack)
        pads.append(int(torch.randint(low, high + 1, ())) if translate else 0)
    return torch.tensor([scale, pads[0], pads[1]], dtype=torch.float32)


def reduced_placement(
    params: Tensor, orig_hw: tuple[int, int], image_hw: tuple[int, int], extent: tuple[float, float]
) -> tuple[Tensor, tuple[int, int]]:
    """Placement of a reduced decode (``read_pil_reduced``) that draws what ``params`` draws from
    the original.

    Args:
        params: Tensor[3] ``(scale, pad_x, pad_y)`` from the ORIGINAL frame.
        orig_hw: (H, W) of the original frame.
        image_hw: (H_r, W_r) of the reduced image.
        extent: (W_e, H_e), the original frame's extent in reduced pixels (``W / factor``).

    Returns:
        (params for the reduced image, (h, w) of the original's content in output pixels): paste
        the reduced image with the first and write at most the second from ``(pad_x, pad_y)`` (a
        reduced JPEG may carry a sliver of less than one reduced pixel past the original's edge).
    """
    factor = orig_hw[1] / extent[0]  # 1, 2, 4 or 8: original pixels per reduced pixel
    reduced = params.clone()
    reduced[0] = params[0] * factor
    return reduced, resized_hw(orig_hw, float(params[0]))


def paste(
    canvas: Tensor, image: Tensor, params: Tensor, region: tuple[int, int, int, int],
    *, content_hw: tuple[int, int] | None = None,
) -> Tensor:
    """Resize ``image`` by ``params[0]``, put its top-left corner at ``(pad_x, pad_y)`` of
    ``canvas`` and write only the part inside ``region``.

    Args:
        canvas: Tensor[C, Hc, Wc], written in place.
        image: Tensor[C, H, W] of the canvas's dtype (channels-last memory resizes fastest).
        params: Tensor[3] ``(scale, pad_x, pad_y)``; pads may be negative (the image is cropped).
        region: ``(x1, y1, x2, y2)`` canvas pixels that may be written.
        content_hw: write at most this (h, w) of the resized image (see ``reduced_placement``).

    Returns:
        ``canvas``.
    """
    scale, pad_x, pad_y = float(params[0]), int(params[1]), int(params[2])
    new_h, new_w = resized_hw(image.shape[-2:], scale)
    show_h, show_w = content_hw or (new_h, new_w)
    # visible window in canvas pixels; resize only when something shows
    x0, y0 = max(region[0], pad_x), max(region[1], pad_y)
    x1, y1 = min(region[2], pad_x + min(new_w, show_w)), min(region[3], pad_y + min(new_h, show_h))
    if x1 <= x0 or y1 <= y0:
        return canvas
    resized = TF.resize(image, [new_h, new_w], antialias=True)
    canvas[:, y0:y1, x0:x1] = resized[:, y0 - pad_y : y1 - pad_y, x0 - pad_x : x1 - pad_x]
    return canvas


def new_canvas(like: Tensor, size: int, pad_value: int = PAD_VALUE) -> Tensor:
    """An S x S canvas of ``pad_value`` with ``like``'s channels and dtype, channels-last in memory."""
    return like.new_full((size, size, like.shape[0]), pad_value).permute(2, 0, 1)


def place_image(
    image: Tensor, params: Tensor, size: int, pad_value: int = PAD_VALUE,
    *, content_hw: tuple[int, int] | None = None,
) -> Tensor:
    """Resize ``image`` by ``params[0]`` and paste it at ``(pad_x, pad_y)`` on an S x S canvas.

    Args:
        image: Tensor[C, H, W] uint8.
        params: Tensor[3] ``(scale, pad_x, pad_y)``; negative pads crop.
        size: canvas side S.
        content_hw: see :func:`paste`.

    Returns:
        Tensor[C, S, S] of the image's dtype (channels-last memory), ``pad_value`` where the image
        does not reach.
    """
    return paste(new_canvas(image, size, pad_value), image, params, (0, 0, size, size), content_hw=content_hw)


def place_boxes(
    boxes: Tensor, params: Tensor, size: int | tuple[int, int, int, int] | Tensor,
    min_visibility: float = 0.0, min_size: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Map boxes into the input frame, clip them to a region and flag those worth keeping.

    Args:
        boxes: Tensor[N, 4] x1y1x2y2 in the source frame.
        params: Tensor[3] ``(scale, pad_x, pad_y)``, or Tensor[N, 3], one per box.
        size: the canvas side S (region ``[0, S]^2``), a region ``(x1, y1, x2, y2)``, or
            Tensor[N, 4] regions, one per box.
        min_visibility: keep a box when clipped area >= this fraction of its unclipped area.
        min_size: keep a box when its clipped width and height are >= this.

    Returns:
        (boxes Tensor[N, 4] float32 clipped, input frame; keep Tensor[N] bool).
    """
    boxes = boxes.float()
    if params.ndim == 2:  # per box: the same float ops as boxes_to_input
        per_box = params.to(boxes.dtype)
        mapped = boxes * per_box[:, :1] + per_box[:, [1, 2, 1, 2]]  # [N, 4]
    else:
        mapped = boxes_to_input(boxes, params)  # [N, 4]
    # few, small ops: this runs for every sample (a mosaic clips to tiles, then the canvas)
    if isinstance(size, Tensor):
        regions = size.to(mapped.dtype)
        lower, upper = regions[:, [0, 1, 0, 1]], regions[:, [2, 3, 2, 3]]  # [N, 4] each
    else:
        x1, y1, x2, y2 = (0, 0, size, size) if isinstance(size, int) else size
        lower, upper = torch.tensor([[x1, y1, x1, y1], [x2, y2, x2, y2]], dtype=mapped.dtype)  # [4] each
    clipped = torch.clamp(mapped, lower, upper)  # [N, 4]
    wh = clipped[:, 2:] - clipped[:, :2]  # [N, 2]
    area = wh.prod(1)  # [N]
    full = (mapped[:, 2:] - mapped[:, :2]).prod(1).clamp(min=1e-6)  # [N]
    keep = (wh >= max(min_size, 1e-3)).all(1) & (area >= min_visibility * full)
    return clipped, keep


def hflip(image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror an image and its boxes left to right (what ``v2.RandomHorizontalFlip`` does when it fires).

    Args:
        image: Tensor[C, H, W].
        boxes: Tensor[N, 4] x1y1x2y2 in the image's frame.

    Returns:
        (image Tensor[C, H, W] mirrored, boxes Tensor[N, 4] float32 with ``x -> W - x``).
    """
    width = image.shape[-1]
    flipped = boxes.float()[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0]) + torch.tensor([width, 0.0, width, 0.0])
    return image.flip(-1), flipped


def apply_v2(
    transform: Callable[..., Any], image: Tensor, boxes: Tensor, extra: dict[str, Tensor]
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Run a ``v2`` transform on plain tensors by wrapping them as tv_tensors.

    Args:
        transform: called as ``transform(tv_tensors.Image, target)``, target = ``extra`` plus
            ``boxes`` as ``tv_tensors.BoundingBoxes`` (XYXY, canvas = image size).
        image: Tensor[3, H, W] uint8.
        boxes: Tensor[N, 4] x1y1x2y2 in the image's frame.
        extra: per-box tensors (``labels``, ``iscrowd``) kept in step with the boxes.

    Returns:
        (image Tensor[3, H', W'], boxes Tensor[N', 4] float32, extra with N' entries each). Boxes
        the transform removed, and boxes left degenerate, are removed from ``extra`` as well.
    """
    target = dict(extra)
    target["boxes"] = tv_tensors.BoundingBoxes(
        boxes.float(), format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=tuple(image.shape[-2:])
    )
    out_image, out_target = transform(tv_tensors.Image(image), target)
    labels_of = lambda sample: tuple(sample[1][k] for k in extra)  # noqa: E731 - keep extras in step
    out_image, out_target = v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=labels_of)(out_image, out_target)
    plain = {k: torch.as_tensor(out_target[k]).as_subclass(Tensor) for k in extra}
    return out_image.as_subclass(Tensor), out_target["boxes"].as_subclass(Tensor).float(), plain
