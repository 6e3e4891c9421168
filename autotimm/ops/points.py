"""Point grids of a feature pyramid: where each output cell sits in the input frame.

Every dense output is read level by level, row-major inside a level (the order of
:func:`flatten_levels`); :func:`make_points`, :func:`points_like` and :func:`point_strides` list
points in that order.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def make_points(sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Centres of every feature-map cell, level by level, in input-frame pixels.

    Args:
        sizes: (H_l, W_l) of each level.
        strides: stride of each level.
        device: where the tensors go.

    Returns:
        points: Tensor[P, 2] (x, y) with ``x = (j + 0.5) * stride``.
        level: Tensor[P] int64, the level index of each point.

    Example:
        >>> make_points([(1, 2)], (8,))[0].tolist()
        [[4.0, 4.0], [12.0, 4.0]]
    """
    points, levels = [], []
    for lvl, ((h, w), s) in enumerate(zip(sizes, strides)):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1))  # [H*W, 2]
        levels.append(torch.full((h * w,), lvl, device=device, dtype=torch.int64))
    return torch.cat(points), torch.cat(levels)


def points_like(maps: Sequence[Tensor], strides: Sequence[int]) -> Tensor:
    """:func:`make_points`' centres, built from the maps themselves: Tensor[P, 2] (x, y), input frame.

    Args:
        maps: one Tensor[B, C, H_l, W_l] per level (any of an architecture's outputs).
        strides: stride of each level.

    The same values as ``make_points(sizes, strides)[0]`` (integer counts from a cumulative sum are
    exact in float32), but no Python int is read from a shape, so an exported graph generates the
    grid from the feature-map sizes at run time and one file serves any input size.

    Example:
        >>> points_like([torch.zeros(1, 1, 1, 2)], (8,)).tolist()
        [[4.0, 4.0], [12.0, 4.0]]
    """
    out = []
    for m, s in zip(maps, strides):
        ones = torch.ones_like(m[0, 0], dtype=torch.float32)  # [H_l, W_l]
        xs = (ones.cumsum(1) - 0.5) * s  # [H_l, W_l]: (j + 0.5) * stride
        ys = (ones.cumsum(0) - 0.5) * s  # [H_l, W_l]: (i + 0.5) * stride
        out.append(torch.stack([xs, ys], dim=-1).reshape(-1, 2))  # [H_l * W_l, 2], row-major
    return torch.cat(out)


def point_strides(maps: Sequence[Tensor], strides: Sequence[int]) -> Tensor:
    """Stride of every point, in the order of :func:`flatten_levels`: Tensor[P] float32.

    Args:
        maps: one Tensor[B, C, H_l, W_l] per level (any of an architecture's outputs).
        strides: stride of each level.

    Built from the maps themselves (``ones_like``), so an ONNX trace keeps the sizes dynamic.
    """
    return torch.cat([torch.ones_like(m[0, 0], dtype=torch.float32).reshape(-1) * s for m, s in zip(maps, strides)])


def flatten_levels(maps: Sequence[Tensor]) -> Tensor:
    """Per-level Tensor[B, C, H_l, W_l] -> Tensor[B, P, C] with P = sum of H_l * W_l (row-major)."""
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]) for m in maps], dim=1)


def level_sizes(maps: Sequence[Tensor]) -> list[int]:
    """Points per level, ``H_l * W_l``, of per-level maps Tensor[B, C, H_l, W_l]."""
    return [m.shape[-2] * m.shape[-1] for m in maps]
