"""Detection confusion matrix with a background row and column.

Matching rule (per image, class-agnostic, so a box found with the wrong class shows up off the diagonal):

1. Predictions scoring below ``score_thresh`` are dropped.
2. Candidate pairs are (ground truth, prediction) with IoU >= ``iou_thresh``; crowd regions are no
   ground truth.
3. Pairs are taken in descending IoU: each prediction keeps its best pair, then each ground truth
   keeps its best remaining pair. So one prediction per ground truth and one ground truth per
   prediction.
4. A matched pair adds 1 at [true class, predicted class]; an unmatched ground truth adds 1 at
   [true class, background] (missed); an unmatched prediction adds 1 at [background, predicted class]
   (false positive), unless it lies inside a crowd region (intersection / its own area >= ``iou_thresh``),
   which COCO ignores too.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_area, box_iou


def _intersection_over_pred(crowd: Tensor, pred: Tensor) -> Tensor:
    """[C, D] intersection of crowd region c and prediction d over the prediction's area."""
    lt = torch.maximum(crowd[:, None, :2], pred[None, :, :2])  # [C, D, 2]
    rb = torch.minimum(crowd[:, None, 2:], pred[None, :, 2:])  # [C, D, 2]
    inter = (rb - lt).clamp(min=0).prod(dim=-1)  # [C, D]
    return inter / box_area(pred).clamp(min=1e-9)[None]  # [C, D]


def match_image(gt_boxes: Tensor, pred_boxes: Tensor, iou_thresh: float) -> tuple[Tensor, Tensor]:
    """One-to-one matches by descending IoU (steps 2-3 above).

    Returns:
        (gt_index, pred_index), int64 [P] each: the matched pairs.
    """
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty
    iou = box_iou(gt_boxes, pred_boxes)  # [G, D]
    g, d = torch.nonzero(iou >= iou_thresh, as_tuple=True)  # [P] candidate pairs
    order = torch.argsort(iou[g, d], descending=True, stable=True)
    g, d = g[order], d[order]
    g, d = _first_occurrence(g, d, by=d)  # each prediction keeps its best pair
    g, d = _first_occurrence(g, d, by=g)  # then each ground truth keeps its best remaining pair
    return g, d


def _first_occurrence(g: Tensor, d: Tensor, by: Tensor) -> tuple[Tensor, Tensor]:
    """Keep the first pair of each value of ``by`` (pairs are already in priority order)."""
    if len(by) == 0:
        return g, d
    _, inverse = torch.unique(by, return_inverse=True)  # [P]
    positions = torch.arange(len(by))
    first = torch.full((int(inverse.max()) + 1,), len(by), dtype=torch.int64).scatter_reduce(0, inverse, positions, "amin")
    keep = torch.sort(first).values
    return g[keep], d[keep]


def confusion_matrix(
    preds: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]],
    num_classes: int,
    iou_thresh: float = 0.5,
    score_thresh: float = 0.25,
) -> np.ndarray:
    """Counts [K + 1, K + 1]: rows are true classes, columns predicted classes, index K is background.

    Args:
        preds / targets: one dict per image in the same frame (``boxes`` x1y1x2y2, ``labels``,
            ``scores`` for preds, optional ``iscrowd`` for targets).
        num_classes: K.
        iou_thresh / score_thresh: see the module docstring for the matching rule.
    """
    if len(preds) != len(targets):
        raise ValueError(f"confusion_matrix: {len(preds)} predictions but {len(targets)} targets.")
    k = num_classes
    counts = torch.zeros((k + 1) * (k + 1), dtype=torch.int64)
    for pred, target in zip(preds, targets):
        keep = torch.as_tensor(pred["scores"]) >= score_thresh  # [D]
        p_boxes = torch.as_tensor(pred["boxes"]).float().reshape(-1, 4)[keep]
        p_labels = torch.as_tensor(pred["labels"]).long().reshape(-1)[keep]
        t_boxes = torch.as_tensor(target["boxes"]).float().reshape(-1, 4)
        t_labels = torch.as_tensor(target["labels"]).long().reshape(-1)
        crowd_flags = target.get("iscrowd")
        crowd = torch.as_tensor(crowd_flags).bool().reshape(-1) if crowd_flags is not None else torch.zeros(len(t_boxes), dtype=torch.bool)
        gt_boxes, gt_labels, crowd_boxes = t_boxes[~crowd], t_labels[~crowd], t_boxes[crowd]
        g, d = match_image(gt_boxes, p_boxes, iou_thresh)
        gt_free = torch.ones(len(gt_boxes), dtype=torch.bool)
        gt_free[g] = False
        pred_free = torch.ones(len(p_boxes), dtype=torch.bool)
        pred_free[d] = False
        if len(crowd_boxes) and pred_free.any():
            inside = (_intersection_over_pred(crowd_boxes, p_boxes) >= iou_thresh).any(dim=0)  # [D]
            pred_free &= ~inside
        rows = torch.cat([gt_labels[g], gt_labels[gt_free], torch.full((int(pred_free.sum()),), k)])
        cols = torch.cat([p_labels[d], torch.full((int(gt_free.sum()),), k), p_labels[pred_free]])
        counts += torch.bincount(rows * (k + 1) + cols, minlength=(k + 1) * (k + 1))
    return counts.reshape(k + 1, k + 1).numpy()


def normalize_rows(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of a true class predicted as each class); 0 rows stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1), 0.0)
