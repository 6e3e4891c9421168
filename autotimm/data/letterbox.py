"""Letterbox resize: keep the aspect ratio, pad to a square (or HxW) canvas, and map boxes back.

Images are scaled by ``scale = min(H_out / H, W_out / W)`` and placed at the TOP-LEFT corner of the
canvas; the rest is filled with ``pad_value``. Top-left placement keeps the inverse exact
(``x_orig = (x_in - pad_x) / scale`` with ``pad_x = pad_y = 0``), but the pads are recorded anyway so
other placements stay representable.

Frames:
    * original frame: pixels of the image as stored on disk (after EXIF orientation).
    * input frame: pixels of the letterboxed tensor the network sees.

Per-image parameters travel in target dicts as ``letterbox = Tensor[3] (scale, pad_x, pad_y)`` and
``orig_size = Tensor[2] (H, W)``, so a batch stacks them to ``[B, 3]`` and ``[B, 2]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

PAD_VALUE = 114


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(s) for s in size)
    return h, w


def letterbox_params(orig_hw: Sequence[int], out_size: int | Sequence[int]) -> Tensor:
    """Scale and pads that letterbox an image of ``orig_hw`` into ``out_size``.

    Returns:
        Tensor[3] float32: ``(scale, pad_x, pad_y)``.
    """
    h, w = (float(v) for v in orig_hw)
    if h <= 0 or w <= 0:
        raise ValueError(f"Image size must be positive, got (H, W) = ({h:g}, {w:g}).")
    out_h, out_w = _as_hw(out_size)
    scale = min(out_h / h, out_w / w)
    return torch.tensor([scale, 0.0, 0.0], dtype=torch.float32)


def resized_hw(orig_hw: Sequence[int], scale: float) -> tuple[int, int]:
    """Size (H, W) of the image content inside the canvas."""
    h, w = orig_hw
    return max(1, round(h * scale)), max(1, round(w * scale))


def letterbox_image(
    image: Tensor, out_size: int | Sequence[int], pad_value: int | float = PAD_VALUE
) -> tuple[Tensor, Tensor]:
    """Letterbox one image tensor.

    Args:
        image: Tensor[C, H, W] (uint8 or float).
        out_size: canvas size, an int for a square or (H, W).
        pad_value: fill value of the padded area (114 for uint8, like YOLOX).

    Returns:
        (canvas Tensor[C, H_out, W_out] of the image's dtype, params Tensor[3] (scale, pad_x, pad_y)).
    """
    if image.ndim != 3:
        raise ValueError(f"letterbox_image expects a CxHxW tensor, got shape {tuple(image.shape)}.")
    out_h, out_w = _as_hw(out_size)
    params = letterbox_params(image.shape[-2:], (out_h, out_w))
    new_h, new_w = resized_hw(image.shape[-2:], float(params[0]))
    resized = TF.resize(image, [new_h, new_w], antialias=True)
    canvas = image.new_full((image.shape[0], out_h, out_w), pad_value)
    pad_x, pad_y = int(params[1]), int(params[2])
    canvas[:, pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    return canvas, params


def boxes_to_input(boxes: Tensor, params: Tensor) -> Tensor:
    """Map boxes from the original frame to the input frame.

    Args:
        boxes: Tensor[N, 4] x1y1x2y2 in original pixels.
        params: Tensor[3] ``(scale, pad_x, pad_y)``.
    """
    scale, pad_x, pad_y = params.to(boxes.dtype).unbind(-1)
    offset = torch.stack([pad_x, pad_y, pad_x, pad_y])
    return boxes * scale + offset


def boxes_to_original(boxes: Tensor, params: Tensor, orig_size: Tensor | None = None) -> Tensor:
    """Map boxes from the input frame back to the original frame, clipped to the image if given.

    Args:
        boxes: Tensor[N, 4] x1y1x2y2 in input pixels.
        params: Tensor[3] ``(scale, pad_x, pad_y)``.
        orig_size: optional Tensor[2] (H, W) of the original image for clipping.
    """
    scale, pad_x, pad_y = params.to(boxes.dtype).unbind(-1)
    offset = torch.stack([pad_x, pad_y, pad_x, pad_y])
    out = (boxes - offset) / scale
    if orig_size is not None:
        h, w = orig_size.to(boxes.dtype).unbind(-1)
        upper = torch.stack([w, h, w, h])
        out = torch.minimum(out.clamp(min=0), upper)
    return out


def to_original_frame(dets: list[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]]) -> tuple[list[dict], list[dict]]:
    """Map detections and targets from the input frame to the original frame (letterbox inverse).

    Targets carry ``letterbox`` (scale, pad_x, pad_y) and ``orig_size`` (H, W) as the data module makes
    them; those without are passed through. Returns (preds, targets) as the mAP metric takes them.
    """
    preds, gts = [], []
    for det, tgt in zip(dets, targets):
        lb, size = tgt.get("letterbox"), tgt.get("orig_size")
        if lb is None:
            preds.append(det)
            gts.append(tgt)
            continue
        preds.append({**det, "boxes": boxes_to_original(det["boxes"], lb, size)})
        gt = {k: v for k, v in tgt.items() if k in ("boxes", "labels", "iscrowd", "area", "image_id")}
        gt["boxes"] = boxes_to_original(tgt["boxes"].float(), lb, size)
        gts.append(gt)
    return preds, gts
