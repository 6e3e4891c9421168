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

INF = 1e8


def default_regress_ranges(strides: Sequence[int]) -> tuple[tuple[float, float], ...]:
    """FCOS size ranges: ``(-1, 8s)`` for the first level, then ``(8s_prev, 8s)``, ``inf`` at the top.

    For strides (8, 16, 32, 64, 128) this is ((-1, 64), (64, 128), (128, 256), (256, 512), (512, inf)).
    """
    bounds = [8.0 * s for s in strides[:-1]]
    lows = [-1.0] + bounds
    highs = bounds + [math.inf]
    return tuple(zip(lows, highs))


def make_points(sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Centres of every feature-map cell, level by level, in input-frame pixels.

    Args:
        sizes: (H_l, W_l) of each level.
        strides: stride of each level.

    Returns:
        points: Tensor[P, 2] (x, y) with ``x = (j + 0.5) * stride``.
        level: Tensor[P] int64, the level index of each point.
    """
    points, levels = [], []
    for lvl, ((h, w), s) in enumerate(zip(sizes, strides)):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))  # [H*W, 2]
        levels.append(torch.full((h * w,), lvl, device=device, dtype=torch.int64))
    return torch.cat(points), torch.cat(levels)


@dataclass
class PaddedTargets:
    """A batch's ground truth padded to G boxes per image (input frame).

    boxes: Tensor[B, G, 4] x1y1x2y2; labels: int64[B, G]; valid: bool[B, G] (real, non-crowd boxes);
    crowd: bool[B, G] (crowd regions, ignored rather than learned).
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    crowd: Tensor

    @classmethod
    def from_targets(cls, targets: Sequence[dict[str, Tensor]], device: torch.device) -> "PaddedTargets":
        b = len(targets)
        g = max([len(t["boxes"]) for t in targets] + [1])
        boxes = torch.zeros(b, g, 4, device=device)
        labels = torch.zeros(b, g, dtype=torch.int64, device=device)
        present = torch.zeros(b, g, dtype=torch.bool, device=device)
        crowd = torch.zeros(b, g, dtype=torch.bool, device=device)
        for i, t in enumerate(targets):  # loop over images only, to pad
            n = len(t["boxes"])
            boxes[i, :n] = t["boxes"].to(device=device, dtype=torch.float32)
            labels[i, :n] = t["labels"].to(device)
            present[i, :n] = True
            if "iscrowd" in t:
                crowd[i, :n] = t["iscrowd"].to(device).bool()
        return cls(boxes, labels, present & ~crowd, present & crowd)


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
        ltrb = torch.stack([x - x1, y - y1, x2 - x, y2 - y], dim=-1)  # [B, P, G, 4]
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
