"""COCO-style evaluation with FiftyOne, and how its numbers relate to autotimm's own val mAP.

``evaluate`` runs FiftyOne's ``evaluate_detections(method="coco")``: every prediction and ground-truth
box gets ``<eval_key>`` = "tp" / "fp" / "fn" and ``<eval_key>_iou``, every sample gets
``<eval_key>_tp/_fp/_fn`` counts at ``iou``, and with ``compute_mAP=True`` the results hold COCO mAP,
PR curves and a confusion matrix.

Agreement with ``autotimm.metrics`` (pycocotools' COCOeval, which the trainer's val/mAP matches):
FiftyOne's ``mAP`` over the same IoU thresholds (0.50:0.05:0.95 by default) equals pycocotools'
``map`` and ``mAP_at(0.5)`` equals ``map_50`` on the same boxes: both match greedily per image and
class in descending score, ignore crowd regions (a detection matched to a crowd box is neither tp nor
fp, and crowd boxes are not counted as objects), keep the top 100 detections per image and class,
interpolate precision at 101 recall points, use the "all" area range, and skip classes without
ground truth. IoU is computed in relative coordinates, which gives the same value as in pixels
(IoU is unchanged by scaling x and y). Where FiftyOne differs by design:

* Ties in score across images: pycocotools orders tied detections by image, FiftyOne puts true
  positives before false positives, so AP can be slightly higher in FiftyOne when scores tie exactly.
* A prediction whose IoU equals a threshold to the last bit can fall on the other side after the
  float64 relative-coordinate round trip.
* The per-sample ``tp/fp/fn`` counts are FiftyOne's error analysis, not COCO's: a prediction inside a
  crowd region counts as a tp and an unmatched crowd region as an fn, while mAP ignores both.
* FiftyOne reports no size-range (small/medium/large) APs or mAR at 1/10 detections; use
  ``autotimm.metrics`` for those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from autotimm.fiftyone._deps import require_fiftyone, root_dataset
from autotimm.fiftyone.labels import check_detections_field, stored_classes

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    Attributes:
        results: FiftyOne's ``COCODetectionResults``: ``report()``, ``print_report()``, ``mAP()``,
            ``plot_pr_curves()``, ``plot_confusion_matrix()``, ``confusion_matrix()``.
        eval_key: the key of the per-box and per-sample fields.
        tp, fp, fn: totals over the evaluated samples at ``iou``.
        per_sample: sample id -> (tp, fp, fn), FiftyOne's ``<eval_key>_tp/_fp/_fn`` fields.
    """

    results: Any
    eval_key: str
    tp: int
    fp: int
    fn: int
    per_sample: dict[str, tuple[int, int, int]] = field(repr=False)

    @property
    def mAP(self) -> float:
        """COCO mAP over the evaluation's IoU thresholds (-1 when no class has ground truth)."""
        self._require_curves()
        return float(self.results.mAP())

    def mAP_at(self, iou: float) -> float:
        """AP at one IoU threshold averaged over classes with ground truth, e.g. ``mAP_at(0.5)``
        (COCO's ``map_50``); -1 when no class has ground truth.

        Raises:
            ValueError: when ``iou`` is not one of the evaluation's thresholds.
        """
        self._require_curves()
        threshs = np.asarray(self.results.iou_threshs, dtype=float)
        idx = np.flatnonzero(np.abs(threshs - iou) < 1e-6)
        if idx.size == 0:
            raise ValueError(
                f"iou={iou!r} is not among the evaluated IoU thresholds {threshs.round(2).tolist()}; "
                "run evaluate(..., compute_mAP=True, iou_threshs=[...]) with it."
            )
        precision = np.asarray(self.results.precision)[idx[0]]  # [K, 101], -1 rows: no ground truth
        valid = precision[precision > -1]
        return float(valid.mean()) if valid.size else -1.0

    def _require_curves(self) -> None:
        if not hasattr(self.results, "precision"):
            raise ValueError(f"Evaluation {self.eval_key!r} ran without mAP; use evaluate(..., compute_mAP=True).")

    def report(self) -> dict[str, Any]:
        """Per-class precision / recall / f1 / support at ``iou`` (FiftyOne's ``report()``)."""
        return self.results.report()


def _all_classes(samples: Any, gt_field: str, pred_field: str) -> list[str] | None:
    """The stored class list, plus labels found in either field that it lacks (e.g. after label
    fixes), so no class silently drops out of mAP."""
    known = stored_classes(samples, gt_field) or []
    found = {label for f in (gt_field, pred_field) for label in samples.distinct(f"{f}.detections.label")}
    classes = known + sorted(found - set(known))
    return classes or None


def evaluate(
    samples: Any,
    pred_field: str = "predictions",
    gt_field: str = "ground_truth",
    eval_key: str = "eval",
    iou: float = 0.5,
    compute_mAP: bool = True,
    iou_threshs: Sequence[float] | None = None,
    classwise: bool = True,
    iscrowd: str = "iscrowd",
    classes: Sequence[str] | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> Evaluation:
    """COCO-style evaluation of ``pred_field`` against ``gt_field`` with FiftyOne.

    Args:
        samples: a FiftyOne dataset or view (only its samples are evaluated).
        pred_field, gt_field: Detections fields (predictions need ``confidence``).
        eval_key: names the results and the fields FiftyOne writes: ``<key>`` ("tp"/"fp"/"fn") and
            ``<key>_iou`` on boxes, ``<key>_tp/_fp/_fn`` on samples. An earlier evaluation with the
            same key is replaced.
        iou: IoU threshold of the tp/fp/fn labels and counts.
        compute_mAP: also compute mAP, PR curves (and allow ``mAP_at``).
        iou_threshs: mAP thresholds; default COCO's 0.50:0.05:0.95.
        classwise: only match boxes of the same class (COCO); False also finds class confusions.
        iscrowd: box attribute marking crowd / ignore regions.
        classes: class list of the report and curves (labels outside it are left out of mAP);
            default: the dataset's list for ``gt_field`` plus any other label found.
        progress: progress bars (None: FiftyOne's default).
        **kwargs: passed on to ``evaluate_detections``.

    Returns:
        :class:`Evaluation` (FiftyOne results, totals and per-sample counts).

    Example:
        >>> ev = evaluate(dataset)  # doctest: +SKIP
        >>> ev.mAP, ev.mAP_at(0.5), (ev.tp, ev.fp, ev.fn)  # doctest: +SKIP
        >>> ev.results.print_report()  # doctest: +SKIP
    """
    require_fiftyone()
    if not isinstance(eval_key, str) or not _KEY.match(eval_key):
        raise ValueError(f"eval_key={eval_key!r} must be a Python identifier such as 'eval' (it prefixes field names).")
    if not 0.0 < float(iou) <= 1.0:
        raise ValueError(f"iou must be in (0, 1]; got {iou!r}.")
    check_detections_field(samples, gt_field, "gt_field")
    check_detections_field(samples, pred_field, "pred_field")
    if pred_field == gt_field:
        raise ValueError(f"pred_field and gt_field are both {pred_field!r}; evaluate predictions against ground truth.")
    dataset = root_dataset(samples)
    if eval_key in dataset.list_evaluations():
        dataset.delete_evaluation(eval_key)
    if iou_threshs is not None:
        iou_threshs = [float(t) for t in iou_threshs]
    results = samples.evaluate_detections(
        pred_field,
        gt_field=gt_field,
        eval_key=eval_key,
        method="coco",
        iou=float(iou),
        classwise=classwise,
        iscrowd=iscrowd,
        compute_mAP=compute_mAP,
        iou_threshs=iou_threshs,
        classes=list(classes) if classes is not None else _all_classes(samples, gt_field, pred_field),
        progress=progress,
        **kwargs,
    )
    ids, tps, fps, fns = samples.values(["id", f"{eval_key}_tp", f"{eval_key}_fp", f"{eval_key}_fn"])
    per_sample = {sid: (int(tp), int(fp), int(fn)) for sid, tp, fp, fn in zip(ids, tps, fps, fns, strict=True)}
    return Evaluation(
        results=results,
        eval_key=eval_key,
        tp=int(sum(tps)),
        fp=int(sum(fps)),
        fn=int(sum(fns)),
        per_sample=per_sample,
    )
