"""FCOS target assignment, vectorised over images, points and boxes.

Every tensor here is built by broadcasting ``[B, P, G]`` (images, points, ground-truth boxes); the
ground truth of a batch is padded to the largest box count with a validity mask, so there is no
Python loop over points, boxes or images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from autotimm.ops.coders import DistanceCoder
from autotimm.ops.targets import PaddedTargets

INF = 1e8


def default_regress_ranges(strides: Sequence[int]) -> tuple[tuple[float, float], ...]:
    """FCOS size ranges: ``(-1, 8s)`` for the first level, then ``(8s_prev, 8s)``, ``inf`` at the top.

    For strides (8, 16, 32, 64, 128) this is ((-1, 64), (64, 128), (128, 256), (256, 512), (512, inf)).
    """
    bounds = [8.0 * s for s in strides[:-1]]
    lows = [-1.0] + bounds
    highs = bounds + [math.inf]
    return tuple(zip(lows, highs))


@dataclass
class FCOSTargets:
    """Per-point training targets (input frame).

    labels: int64[B, P], class index for positives and -1 for background.
    boxes: Tensor[B, P, 4], the assigned box for positives (zeros elsewhere).
    ignore: bool[B, P], background points inside crowd regions: no classification loss.
    """

    labels: Tensor
    boxes: Tensor
    ignore: Tensor

    @property
    def positive(self) -> Tensor:
        return self.labels >= 0


class FCOSAssigner:
    """Assign each point to at most one box: inside it (or its centre region), size within the
    level's range; ties go to the smallest box.

    Args:
        regress_ranges: (low, high) of the max box distance each level regresses.
        center_sampling_radius: only points within ``radius * stride`` of a box centre are positive
            (0 disables centre sampling: any point inside the box).
    """

    def __init__(self, regress_ranges: Sequence[tuple[float, float]], center_sampling_radius: float = 1.5) -> None:
        self.regress_ranges = torch.tensor([[float(lo), float(hi)] for lo, hi in regress_ranges])
        self.radius = float(center_sampling_radius)

    def __call__(self, points: Tensor, level: Tensor, strides: Sequence[int], gt: PaddedTargets) -> FCOSTargets:
        """Assign targets.

        Args:
            points: Tensor[P, 2] point centres (input frame).
            level: int64[P] level index of each point.
            strides: stride of each level.
            gt: padded ground truth, Tensor[B, G, ...].
        """
        ranges = self.regress_ranges.to(points.device).clamp(max=INF)[level]  # [P, 2]
        stride = torch.as_tensor(strides, dtype=points.dtype, device=points.device)[level]  # [P]
        x = points[None, :, 0, None]  # [1, P, 1]
        y = points[None, :, 1, None]
        x1, y1, x2, y2 = (gt.boxes[..., i][:, None, :] for i in range(4))  # each [B, 1, G]
        ltrb = DistanceCoder.encode(gt.boxes[:, None, :, :], points[None, :, None, :])  # [B, P, G, 4]
        inside_box = ltrb.amin(dim=-1) > 0  # [B, P, G]
        if self.radius > 0:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2  # [B, 1, G]
            r = (stride * self.radius)[None, :, None]  # [1, P, 1]
            inside_center = (
                (x > torch.maximum(cx - r, x1)) & (x < torch.minimum(cx + r, x2))
                & (y > torch.maximum(cy - r, y1)) & (y < torch.minimum(cy + r, y2))
            )  # [B, P, G]
        else:
            inside_center = inside_box
        max_dist = ltrb.amax(dim=-1)  # [B, P, G]
        in_range = (max_dist >= ranges[None, :, 0, None]) & (max_dist <= ranges[None, :, 1, None])
        candidate = inside_center & inside_box & in_range & gt.valid[:, None, :]  # [B, P, G]
        area = ((x2 - x1) * (y2 - y1)).expand_as(candidate)  # [B, P, G]
        area = torch.where(candidate, area, torch.full_like(area, INF))
        min_area, match = area.min(dim=2)  # [B, P]; ties -> first index, i.e. the smallest box
        positive = min_area < INF
        labels = torch.where(positive, gt.labels.gather(1, match), torch.full_like(match, -1))
        boxes = gt.boxes.gather(1, match[..., None].expand(-1, -1, 4))  # [B, P, 4]
        boxes = boxes * positive[..., None]
        ignore = ~positive & (inside_box & gt.crowd[:, None, :]).any(dim=2)
        return FCOSTargets(labels=labels, boxes=boxes, ignore=ignore)
