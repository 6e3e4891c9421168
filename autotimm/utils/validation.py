"""Input checks that fail early with a message saying what was received and what is valid."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor


def check_images(images: Any) -> None:
    """A normalised batch: float Tensor[B, 3, H, W]."""
    if not isinstance(images, Tensor):
        raise ValueError(f"Expected images as a Tensor[B, 3, H, W], got {type(images).__name__}.")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"Expected images of shape [B, 3, H, W], got {tuple(images.shape)}. "
            "Batch single images with image.unsqueeze(0); use model.preprocess() for raw images."
        )
    if not images.is_floating_point():
        raise ValueError(
            f"Expected float (normalised) images, got dtype {images.dtype}. Use model.preprocess(image) "
            "or model.normalize(uint8_batch) first."
        )


def check_targets(targets: Sequence[dict[str, Tensor]], batch_size: int, image_hw: Sequence[int], num_classes: int) -> None:
    """Targets in the input frame: one dict per image, boxes inside the image with x2 > x1, y2 > y1."""
    if len(targets) != batch_size:
        raise ValueError(f"Got {len(targets)} target dicts for a batch of {batch_size} images; pass one per image.")
    h, w = (float(v) for v in image_hw)
    for i, t in enumerate(targets):
        if "boxes" not in t or "labels" not in t:
            raise ValueError(f"targets[{i}] must have 'boxes' and 'labels', got keys {sorted(t)}.")
        boxes, labels = t["boxes"], t["labels"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(labels) != len(boxes):
            raise ValueError(
                f"targets[{i}]: boxes must be [N, 4] with N labels; got boxes {tuple(boxes.shape)}, labels {tuple(labels.shape)}."
            )
        if not len(boxes):
            continue
        tol = 1.0
        bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        bad |= (boxes[:, :2] < -tol).any(1) | (boxes[:, 2] > w + tol) | (boxes[:, 3] > h + tol)
        bad |= (labels < 0) | (labels >= num_classes)
        if bool(bad.any()):
            j = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"targets[{i}] (image_id {t.get('image_id', '?')}) box {j} = {boxes[j].tolist()} label "
                f"{int(labels[j])} is invalid: boxes need x1 < x2, y1 < y2 inside the {int(w)}x{int(h)} input "
                f"(input frame, x1y1x2y2 pixels) and labels in [0, {num_classes - 1}]."
            )


def options_text(options: Sequence[str]) -> str:
    """``"'a', 'b' or 'c'"``: the valid values of a ``Literal`` option, for error messages."""
    quoted = [repr(o) for o in options]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
