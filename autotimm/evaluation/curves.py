"""Per-class AP, precision-recall and confidence curves, read from pycocotools' own ``COCOeval``.

Nothing here matches boxes: AP and the PR curves come from ``COCOeval.eval["precision"]`` and the
confidence curves from the per-image matches ``COCOeval.evalImgs`` that its ``evaluate()`` made, so
every number agrees with pycocotools by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools.cocoeval import COCOeval

AREA_ALL = 0  # index of the "all" area range in COCOeval arrays
CONFIDENCE_GRID = np.linspace(0.0, 1.0, 1001)  # [C] score thresholds of the confidence curves


def _mean_valid(x: np.ndarray, axis: tuple[int, ...] | int) -> np.ndarray:
    """Mean over ``axis`` of the entries > -1 (COCO's "undefined" marker); NaN where none."""
    valid = x > -1
    total = np.where(valid, x, 0.0).sum(axis=axis)
    count = valid.sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def iou_index(evaluator: COCOeval, iou: float) -> int:
    thrs = evaluator.params.iouThrs
    index = int(np.argmin(np.abs(thrs - iou)))
    if abs(thrs[index] - iou) > 1e-6:
        raise ValueError(f"IoU {iou} is not one of COCOeval's thresholds {thrs.tolist()}.")
    return index


def per_class_ap(evaluator: COCOeval) -> dict[str, np.ndarray]:
    """AP, AP50 and AP75 per category (area "all", 100 detections), NaN for categories without ground truth.

    Returns:
        ``ap``, ``ap50``, ``ap75``: float arrays [K] in ``evaluator.params.catIds`` order. ``ap`` is the
        mean of ``eval["precision"][:, :, k, 0, -1]``, exactly how ``summarize()`` averages (so the mean
        of ``ap`` over classes with ground truth is COCO's mAP).
    """
    precision = evaluator.eval["precision"][:, :, :, AREA_ALL, -1]  # [T, R, K]
    return {
        "ap": _mean_valid(precision, (0, 1)),
        "ap50": _mean_valid(precision[iou_index(evaluator, 0.5)], 0),
        "ap75": _mean_valid(precision[iou_index(evaluator, 0.75)], 0),
    }


def pr_curves(evaluator: COCOeval) -> dict[str, np.ndarray]:
    """COCO's interpolated precision at its 101 recall thresholds.

    Returns:
        ``recall`` [R]; ``precision_50`` [K, R] at IoU 0.5 and ``precision_50_95`` [K, R] averaged over
        IoU 0.5:0.95 (NaN rows for classes without ground truth).
    """
    precision = evaluator.eval["precision"][:, :, :, AREA_ALL, -1]  # [T, R, K]
    return {
        "recall": np.asarray(evaluator.params.recThrs, dtype=np.float64),
        "precision_50": _mean_valid(precision[iou_index(evaluator, 0.5)][None], 0).T,  # [K, R]
        "precision_50_95": _mean_valid(precision, 0).T,  # [K, R]
    }


@dataclass(eq=False)
class ConfidenceCurves:
    """Precision, recall and F1 of each class as functions of the score threshold (one IoU threshold).

    Attributes:
        confidence: [C] score thresholds (a detection counts when its score >= the threshold).
        precision, recall, f1: [K, C]; precision is NaN where no detection is left, recall NaN for
            classes without ground truth; F1 = 2 TP / (detections + ground truths) (0 with no detection).
        num_gt: int [K], ground-truth boxes that count (crowd regions excluded).
    """

    confidence: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    num_gt: np.ndarray

    def mean_f1(self) -> np.ndarray:
        """[C] F1 averaged over the classes that have ground truth."""
        has_gt = self.num_gt > 0
        return self.f1[has_gt].mean(axis=0) if has_gt.any() else np.zeros_like(self.confidence)

    def at(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recall, f1) per class [K] at the grid point nearest ``threshold``."""
        i = int(np.argmin(np.abs(self.confidence - threshold)))
        return self.precision[:, i], self.recall[:, i], self.f1[:, i]


def confidence_curves(evaluator: COCOeval, iou: float = 0.5, grid: np.ndarray = CONFIDENCE_GRID) -> ConfidenceCurves:
    """Per-class precision / recall / F1 against the score threshold, from COCOeval's own matches.

    For class k the detections of every image (area "all", the first 100 per image as COCO keeps them)
    are pooled and sorted by score as ``accumulate()`` does; crowd-matched (ignored) detections are
    dropped. At threshold c, TP(c) counts matched detections with score >= c.
    """
    t = iou_index(evaluator, iou)
    params = evaluator.params
    num_k, num_a, num_i = len(params.catIds), len(params.areaRng), len(params.imgIds)
    max_det = params.maxDets[-1]
    precision = np.full((num_k, len(grid)), np.nan)
    recall = np.full((num_k, len(grid)), np.nan)
    f1 = np.zeros((num_k, len(grid)))
    num_gt = np.zeros(num_k, dtype=np.int64)
    # Scores are float32: compare in float32 so a score of 0.7 counts at the threshold 0.7.
    thresholds = grid.astype(np.float32).astype(np.float64)  # [C]
    for k in range(num_k):
        start = k * num_a * num_i + AREA_ALL * num_i
        images = [e for e in evaluator.evalImgs[start : start + num_i] if e is not None]
        if not images:
            continue
        scores = np.concatenate([e["dtScores"][:max_det] for e in images])  # [D]
        matched = np.concatenate([e["dtMatches"][t, :max_det] for e in images]) > 0  # [D]
        ignored = np.concatenate([e["dtIgnore"][t, :max_det] for e in images]).astype(bool)  # [D]
        gt_ignore = np.concatenate([e["gtIgnore"] for e in images]).astype(bool)  # [G]
        num_gt[k] = int((~gt_ignore).sum())
        order = np.argsort(-scores, kind="mergesort")
        keep = order[~ignored[order]]  # non-ignored detections, highest score first
        sorted_scores = scores[keep]  # [D'] descending
        cum_tp = np.concatenate([[0], np.cumsum(matched[keep])])  # [D' + 1], TP among the first n
        count = np.searchsorted(-sorted_scores, -thresholds, side="right")  # [C] detections with score >= c
        tp = cum_tp[count]  # [C]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision[k] = np.where(count > 0, tp / np.maximum(count, 1), np.nan)
            if num_gt[k] > 0:
                recall[k] = tp / num_gt[k]
            f1[k] = np.where(count + num_gt[k] > 0, 2 * tp / np.maximum(count + num_gt[k], 1), 0.0)
    return ConfidenceCurves(grid.copy(), precision, recall, f1, num_gt)
