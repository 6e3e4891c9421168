"""The one conversion between autotimm boxes and FiftyOne boxes.

autotimm: x1y1x2y2 in pixels of the ORIGINAL frame (the image file's pixels after EXIF orientation).
FiftyOne: ``[x, y, w, h]`` relative to the image width and height, in ``[0, 1]``, top-left origin.

Every module here converts through these two functions, so a box read from an annotation file, shown
in the App, fixed there and written back to COCO json comes back bit-identical (float32 in, float32
out: the float64 round trip error is far below float32 resolution).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _check_size(width: float, height: float, where: str) -> None:
    if not (np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0):
        raise ValueError(
            f"{where}: image size (width, height) = ({width!r}, {height!r}) must be positive; "
            "compute the samples' metadata (dataset.compute_metadata()) or fix the image file."
        )


def _as_array(boxes: Any) -> np.ndarray:
    if hasattr(boxes, "detach"):  # torch.Tensor
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4]; got {tuple(arr.shape)}.")
    return arr


def xyxy_to_relative_xywh(boxes: Any, width: float, height: float) -> np.ndarray:
    """Pixel x1y1x2y2 (original frame) -> FiftyOne's relative ``[x, y, w, h]``.

    Args:
        boxes: Tensor or array [N, 4], x1y1x2y2 in ORIGINAL-frame pixels.
        width: image width in pixels (original frame).
        height: image height in pixels (original frame).

    Returns:
        float64 array [N, 4]: ``[x1 / W, y1 / H, (x2 - x1) / W, (y2 - y1) / H]``.

    Example:
        >>> xyxy_to_relative_xywh([[10, 20, 60, 40]], 100, 80).tolist()
        [[0.1, 0.25, 0.5, 0.25]]
    """
    _check_size(width, height, "xyxy_to_relative_xywh")
    xyxy = _as_array(boxes)  # [N, 4]
    scale = np.array([width, height, width, height], dtype=np.float64)  # [4]
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # [N, 4] pixels
    return xywh / scale


def relative_xywh_to_xyxy(boxes: Any, width: float, height: float) -> np.ndarray:
    """FiftyOne's relative ``[x, y, w, h]`` -> pixel x1y1x2y2 (original frame), float32.

    Args:
        boxes: array [N, 4] (or a list of FiftyOne ``bounding_box`` lists), relative xywh.
        width: image width in pixels (original frame).
        height: image height in pixels (original frame).

    Returns:
        float32 array [N, 4], x1y1x2y2 in ORIGINAL-frame pixels.

    Example:
        >>> relative_xywh_to_xyxy([[0.1, 0.25, 0.5, 0.25]], 100, 80).tolist()
        [[10.0, 20.0, 60.0, 40.0]]
    """
    _check_size(width, height, "relative_xywh_to_xyxy")
    xywh = _as_array(boxes)  # [N, 4]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # [N, 4] relative
    scale = np.array([width, height, width, height], dtype=np.float64)  # [4]
    return (xyxy * scale).astype(np.float32)
