"""SimOTA target assignment (YOLOX), vectorised over a padded batch ``[B, P, G]``.

The steps, each a function below:

1. :func:`geometry_prior`: which points may learn which box: the point lies inside the box or within
   ``radius * stride`` of its centre (a *candidate*); pairs that satisfy both are the prior proper.
2. IoU (:func:`autotimm.ops.boxes.batched_box_iou`) and :func:`classification_cost`: how well each point's current prediction
   fits each box.
3. :func:`matching_cost`: ``cls_cost + 3 * (-log IoU) + 1e5 * (pair outside the prior)``.
4. :func:`dynamic_k`: each box takes ``k = max(1, int(sum of its top-10 IoUs))`` points.
5. :func:`dynamic_k_matching`: the k cheapest points of each box, as a rank mask (no loop over boxes).
6. :func:`resolve_conflicts`: a point matched to several boxes keeps the cheapest of them.

All coordinates are in the input frame (the letterboxed tensor the network sees).

Cost: a few dozen elementwise passes over ``[B, P, G]``. YOLOX instead gathers each image's candidate
points first, which needs the candidate count on the host (a sync per image); the padded batch keeps
everything on the device. On a CPU, B=16, P=8525 (640 px, P3-P7), G=100 takes a few seconds per
batch; with a handful of boxes per image it is negligible next to the network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from autotimm.ops.boxes import batched_box_iou
from autotimm.ops.targets import PaddedTargets

INF = 1e8
OUTSIDE_PRIOR_COST = 1e5


def geometry_prior(points: Tensor, stride: Tensor, boxes: Tensor, radius: float = 2.5) -> tuple[Tensor, Tensor]:
    """Points inside each box and points near each box centre.

    Args:
        points: Tensor[P, 2] (x, y) point positions, input frame.
        stride: Tensor[P] stride of each point's level.
        boxes: Tensor[B, G, 4] x1y1x2y2 ground truth, input frame.
        radius: half-size of the centre region, in strides.

    Returns:
        in_box: bool[B, P, G], the point lies strictly inside the box.
        in_center: bool[B, P, G], the point lies strictly within ``radius * stride`` of the box centre
            (per axis, a square region).
    """
    x = points[None, :, 0, None]  # [1, P, 1]
    y = points[None, :, 1, None]  # [1, P, 1]
    x1, y1, x2, y2 = (boxes[..., i][:, None, :] for i in range(4))  # each [B, 1, G]
    in_box = (x > x1) & (x < x2) & (y > y1) & (y < y2)  # [B, P, G]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2  # [B, 1, G]
    r = (radius * stride)[None, :, None]  # [1, P, 1]
    in_center = (x > cx - r) & (x < cx + r) & (y > cy - r) & (y < cy + r)  # [B, P, G]
    return in_box, in_center


def classification_cost(scores: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of each point's class scores against each box's one-hot label.

    ``sum_k BCE(s_k, onehot_k)`` equals ``sum_k -log(1 - s_k)`` plus, for the box's class c only,
    ``-log(s_c) + log(1 - s_c)``; so the cost needs a gather, not a ``[B, P, G, K]`` tensor.

    Args:
        scores: Tensor[B, P, K] probabilities in [0, 1] (YOLOX: ``sqrt(sigmoid(cls) * sigmoid(obj))``).
        labels: int64[B, G] class of each box.

    Returns:
        Tensor[B, P, G].
    """
    # log clamped at -100 as in torch's binary_cross_entropy, so a score of exactly 0 or 1 stays finite
    log_p = scores.log().clamp(min=-100)  # [B, P, K]
    log_not_p = (-scores).log1p().clamp(min=-100)  # [B, P, K]
    background = -log_not_p.sum(dim=-1, keepdim=True)  # [B, P, 1]: every class as negative
    index = labels[:, None, :].expand(-1, scores.shape[1], -1)  # [B, P, G]
    swap = (log_not_p - log_p).gather(2, index)  # [B, P, G]: the box's class as positive instead
    return background + swap


def matching_cost(cls_cost: Tensor, iou: Tensor, prior: Tensor, allowed: Tensor, iou_weight: float = 3.0) -> Tensor:
    """SimOTA cost of assigning point p to box g.

    Args:
        cls_cost: Tensor[B, P, G] from :func:`classification_cost`.
        iou: Tensor[B, P, G] IoU of each point's predicted box with each box.
        prior: bool[B, P, G], inside the box AND near its centre; other pairs pay 1e5.
        allowed: bool[B, P, G], pairs that may be matched at all; the rest cost ``INF``.

    Returns:
        Tensor[B, P, G] ``cls_cost + iou_weight * -log(IoU) + 1e5 * ~prior``, ``INF`` where not allowed.
    """
    cost = cls_cost + iou_weight * -torch.log(iou + 1e-8) + OUTSIDE_PRIOR_COST * (~prior).to(cls_cost.dtype)
    return torch.where(allowed, cost, torch.full_like(cost, INF))


def dynamic_k(iou: Tensor, allowed: Tensor, topk: int = 10) -> Tensor:
    """How many points each box takes: ``max(1, int(sum of its ``topk`` largest IoUs))``.

    Args:
        iou: Tensor[B, P, G]; allowed: bool[B, P, G], pairs that count (others count as IoU 0).
        topk: how many IoUs to sum (YOLOX: 10).

    Returns:
        int64[B, G], each in [1, min(topk, P)].
    """
    n = min(topk, iou.shape[1])
    top = (iou * allowed).topk(n, dim=1).values  # [B, n, G]
    return top.sum(dim=1).long().clamp(min=1)  # [B, G]; long() floors, as YOLOX's int()


def dynamic_k_matching(cost: Tensor, k: Tensor, allowed: Tensor, max_k: int = 10) -> Tensor:
    """Each box takes its k cheapest allowed points.

    A rank mask replaces YOLOX's loop over boxes: take the ``max_k`` cheapest points of every box
    once, keep those of rank < k.

    Args:
        cost: Tensor[B, P, G]; k: int64[B, G] from :func:`dynamic_k`; allowed: bool[B, P, G].
        max_k: an upper bound of k (the ``topk`` of :func:`dynamic_k`, which bounds k without
            reading k back from the device); larger k are cut to ``min(max_k, P)``.

    Returns:
        bool[B, P, G], point p is matched to box g (a point may still be matched to several boxes).
    """
    kmax = min(max_k, cost.shape[1])
    order = cost.topk(kmax, dim=1, largest=False).indices  # [B, kmax, G], cheapest first
    rank = torch.arange(kmax, device=cost.device)[None, :, None]  # [1, kmax, 1]
    keep = rank < k[:, None, :]  # [B, kmax, G]
    matching = torch.zeros_like(allowed).scatter_(1, order, keep)  # [B, P, G]
    return matching & allowed


def resolve_conflicts(matching: Tensor, cost: Tensor) -> tuple[Tensor, Tensor]:
    """One box per point: a point matched to several boxes keeps the lowest-cost one.

    Args:
        matching: bool[B, P, G]; cost: Tensor[B, P, G].

    Returns:
        foreground: bool[B, P], the point is matched to some box.
        gt_index: int64[B, P], index of its box (0 for background points; mask with ``foreground``).
    """
    masked = torch.where(matching, cost, torch.full_like(cost, float("inf")))  # [B, P, G]
    gt_index = masked.argmin(dim=2)  # [B, P]
    return matching.any(dim=2), gt_index


@dataclass
class SimOTATargets:
    """Per-point training targets (input frame).

    foreground: bool[B, P]; labels: int64[B, P] class of the matched box (-1 on background);
    boxes: Tensor[B, P, 4] the matched box x1y1x2y2 (zeros on background); iou: Tensor[B, P] IoU of
    the point's predicted box with its matched box (0 on background; the soft classification target);
    ignore: bool[B, P] background points inside crowd regions (no objectness loss).
    """

    foreground: Tensor
    labels: Tensor
    boxes: Tensor
    iou: Tensor
    ignore: Tensor

    @property
    def num_foreground(self) -> Tensor:
        return self.foreground.sum()


class SimOTAAssigner:
    """SimOTA: match points to ground-truth boxes by a cost built from the current predictions.

    Args:
        center_radius: the centre region's half-size in strides (YOLOX: 2.5).
        topk: IoUs summed for the dynamic k (YOLOX: 10).
        iou_weight: weight of the ``-log IoU`` cost (YOLOX: 3.0).

    Example:
        >>> assigner = SimOTAAssigner()
        >>> targets = assigner(points, stride, cls_logits, obj_logits, pred_boxes, padded)  # doctest: +SKIP
        >>> targets.foreground.shape  # [B, P]  # doctest: +SKIP
    """

    def __init__(self, center_radius: float = 2.5, topk: int = 10, iou_weight: float = 3.0) -> None:
        if not center_radius > 0:
            raise ValueError(f"SimOTAAssigner(center_radius={center_radius!r}): expected a positive number of strides, e.g. 2.5.")
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f"SimOTAAssigner(topk={topk!r}): expected an int >= 1, e.g. 10.")
        if iou_weight < 0:
            raise ValueError(f"SimOTAAssigner(iou_weight={iou_weight!r}): expected a float >= 0, e.g. 3.0.")
        self.center_radius = float(center_radius)
        self.topk = topk
        self.iou_weight = float(iou_weight)

    @torch.no_grad()
    def __call__(
        self,
        points: Tensor,
        stride: Tensor,
        cls_logits: Tensor,
        obj_logits: Tensor,
        pred_boxes: Tensor,
        gt: PaddedTargets,
    ) -> SimOTATargets:
        """Assign targets.

        Args:
            points: Tensor[P, 2] point positions (input frame); stride: Tensor[P] their strides.
            cls_logits: Tensor[B, P, K]; obj_logits: Tensor[B, P]; pred_boxes: Tensor[B, P, 4]
                decoded predictions x1y1x2y2 (input frame). Used without gradients.
            gt: ground truth padded to Tensor[B, G, ...] (input frame).
        """
        cls_logits, obj_logits, pred_boxes = cls_logits.float(), obj_logits.float(), pred_boxes.float()
        in_box, in_center = geometry_prior(points, stride, gt.boxes, self.center_radius)  # [B, P, G] each
        valid = gt.valid[:, None, :]  # [B, 1, G]
        candidate = ((in_box | in_center) & valid).any(dim=2, keepdim=True)  # [B, P, 1]
        allowed = candidate & valid  # [B, P, G]: YOLOX costs every candidate point against every box
        iou = batched_box_iou(pred_boxes, gt.boxes)  # [B, P, G]
        scores = (cls_logits.sigmoid() * obj_logits.sigmoid()[..., None]).sqrt()  # [B, P, K]
        cls_cost = classification_cost(scores, gt.labels)  # [B, P, G]
        cost = matching_cost(cls_cost, iou, in_box & in_center, allowed, self.iou_weight)
        k = dynamic_k(iou, allowed, self.topk)  # [B, G]
        matching = dynamic_k_matching(cost, k, allowed, self.topk)  # [B, P, G]
        foreground, gt_index = resolve_conflicts(matching, cost)  # [B, P] each

        labels = gt.labels.gather(1, gt_index)  # [B, P]
        labels = torch.where(foreground, labels, torch.full_like(labels, -1))
        boxes = gt.boxes.gather(1, gt_index[..., None].expand(-1, -1, 4)) * foreground[..., None]  # [B, P, 4]
        matched_iou = iou.gather(2, gt_index[..., None])[..., 0] * foreground  # [B, P]
        ignore = ~foreground & (in_box & gt.crowd[:, None, :]).any(dim=2)  # [B, P]
        return SimOTATargets(foreground, labels, boxes, matched_iou, ignore)
