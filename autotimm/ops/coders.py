"""Box coders: what a dense head's 4 regression channels mean, encode and decode side by side.

Both coders work on the points of :func:`autotimm.ops.points.make_points` (cell centres, input
frame) and on boxes x1y1x2y2 in the input frame; every method broadcasts over leading dims.

* :class:`DistanceCoder` (FCOS): ``(left, top, right, bottom)`` distances from the point, in pixels.
* :class:`OffsetLogSizeCoder` (YOLOX): ``(dx, dy, log_w, log_h)`` in stride units, with
  ``centre = p + (dx, dy) * stride`` and ``(w, h) = exp((log_w, log_h)) * stride``. YOLOX measures
  the offset from the cell's corner ``j * stride``; measuring it from the cell centre is the same
  parametrisation shifted by half a cell, so an offset of 0 puts the box on the point itself.
"""

from __future__ import annotations

import torch
from torch import Tensor


class DistanceCoder:
    """FCOS: boxes <-> distances ``(l, t, r, b)`` from a point to the box sides (input-frame pixels).

    Example:
        >>> coder = DistanceCoder()
        >>> coder.encode(torch.tensor([[0.0, 0.0, 8.0, 4.0]]), torch.tensor([[2.0, 1.0]])).tolist()
        [[2.0, 1.0, 6.0, 3.0]]
    """

    @staticmethod
    def encode(boxes: Tensor, points: Tensor) -> Tensor:
        """Boxes Tensor[..., 4] and points Tensor[..., 2] (broadcastable) -> distances Tensor[..., 4].

        A distance is negative where the point lies outside the box on that side.
        """
        return torch.cat([points - boxes[..., :2], boxes[..., 2:] - points], dim=-1)

    @staticmethod
    def decode(dists: Tensor, points: Tensor) -> Tensor:
        """Distances Tensor[..., 4] from points Tensor[..., 2] -> boxes x1y1x2y2 Tensor[..., 4]."""
        return torch.cat([points - dists[..., :2], points + dists[..., 2:]], dim=-1)


class OffsetLogSizeCoder:
    """YOLOX: boxes <-> ``(dx, dy, log_w, log_h)`` relative to a point and its stride.

    Args:
        max_log_wh: ``log_w`` / ``log_h`` are clamped to this before ``exp`` when decoding: a box at
            most ~1100 strides wide (8800 px at stride 8) covers any sensible object and keeps
            ``exp`` finite and its gradient bounded early in training.
        eps: added to ``w / stride`` before the log when encoding, so empty boxes stay finite.
    """

    def __init__(self, max_log_wh: float = 7.0, eps: float = 1e-8) -> None:
        self.max_log_wh = float(max_log_wh)
        self.eps = float(eps)

    def encode(self, boxes: Tensor, points: Tensor, stride: Tensor) -> Tensor:
        """Inverse of :meth:`decode`.

        Args:
            boxes: Tensor[..., N, 4] x1y1x2y2, input frame.
            points: Tensor[N, 2] the point each box is regressed from.
            stride: Tensor[N] that point's stride.

        Returns:
            Tensor[..., N, 4] raw ``(dx, dy, log_w, log_h)``.
        """
        s = stride[:, None]  # [N, 1]
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2  # [..., N, 2]
        wh = boxes[..., 2:] - boxes[..., :2]  # [..., N, 2]
        return torch.cat([(centre - points) / s, torch.log(wh / s + self.eps)], dim=-1)

    def decode(self, raw: Tensor, points: Tensor, stride: Tensor) -> Tensor:
        """Raw ``(dx, dy, log_w, log_h)`` -> boxes x1y1x2y2 in the input frame.

        Args:
            raw: Tensor[..., P, 4] raw regression outputs.
            points: Tensor[P, 2] (x, y) cell centres, input-frame pixels.
            stride: Tensor[P] stride of each point's level.

        Returns:
            Tensor[..., P, 4] boxes (x1, y1, x2, y2), input-frame pixels.
        """
        s = stride[:, None]  # [P, 1]
        centre = points + raw[..., :2] * s  # [..., P, 2]
        wh = raw[..., 2:].clamp(max=self.max_log_wh).exp() * s  # [..., P, 2]
        return torch.cat([centre - wh / 2, centre + wh / 2], dim=-1)
