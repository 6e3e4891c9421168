"""Box geometry, in one home: point grids, padded targets, box coders, IoU and clipping.

Everything here is plain tensor code on ``[..., 4]`` boxes (x1y1x2y2, pixels of one frame) that
traces for ONNX; nothing here imports the rest of autotimm.

* :mod:`~autotimm.ops.points`: cell centres per pyramid level, their strides, flattening of per-level maps.
* :mod:`~autotimm.ops.targets`: a batch's ground truth padded to ``[B, G, ...]``.
* :mod:`~autotimm.ops.coders`: FCOS distances and YOLOX offsets / log-sizes, encode and decode side by side.
* :mod:`~autotimm.ops.boxes`: IoU (aligned and pairwise per image) and clipping to the image.
"""

from autotimm.ops.boxes import aligned_box_iou, batched_box_iou, clip_boxes
from autotimm.ops.coders import DistanceCoder, OffsetLogSizeCoder
from autotimm.ops.points import flatten_levels, level_sizes, make_points, point_strides, points_like
from autotimm.ops.targets import PaddedTargets

__all__ = [
    "DistanceCoder",
    "OffsetLogSizeCoder",
    "PaddedTargets",
    "aligned_box_iou",
    "batched_box_iou",
    "clip_boxes",
    "flatten_levels",
    "level_sizes",
    "make_points",
    "point_strides",
    "points_like",
]
