"""Plain pycocotools COCOeval on lists of detection dicts: the reference our mAP must match.

Used by the parity tests and by evaluator benchmarks; training uses ``MetricManager`` (torchmetrics'
``MeanAveragePrecision``), which gives the same 12 numbers.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_convert

# COCOeval.stats order, named like torchmetrics' MeanAveragePrecision keys.
COCO_STAT_NAMES: tuple[str, ...] = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


def _coco(images: list[dict], annotations: list[dict], categories: list[dict]) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_map(
    preds: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """COCO box mAP/mAR from pycocotools' own COCOeval (bbox, maxDets 1/10/100).

    Args:
        preds: One dict per image, ORIGINAL frame: ``boxes`` float[N, 4] x1y1x2y2 pixels,
            ``scores`` float[N], ``labels`` int64[N].
        targets: One dict per image, same frame: ``boxes`` float[M, 4], ``labels`` int64[M],
            optional ``iscrowd`` [M] (ignore regions) and ``area`` [M] (size-range area;
            default: box area).

    Returns:
        The 12 ``COCOeval.stats`` under the names of ``COCO_STAT_NAMES`` (``map``, ``map_50``,
        ..., ``mar_large``); -1 where COCO leaves a value undefined.

    Example:
        >>> import torch
        >>> box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
        >>> det = {"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
        >>> out = coco_map([det], [{"boxes": box, "labels": torch.tensor([0])}])
        >>> round(out["map"], 6)
        1.0
    """
    evaluator = run_cocoeval(preds, targets)
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}


def run_cocoeval(
    preds: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]], num_classes: int | None = None
) -> COCOeval:
    """pycocotools' ``COCOeval`` after ``evaluate()``, ``accumulate()`` and ``summarize()`` (bbox,
    maxDets 1/10/100); same inputs as :func:`coco_map`.

    Image ids are 1..len(targets) in order; category ids are the labels. ``num_classes`` adds the
    categories 0..K-1 even when no box has them (they stay -1 in ``eval["precision"]`` and do not
    change the 12 statistics), so per-class arrays have one column per class, in label order.

    Returns:
        the evaluator; ``eval["precision"]`` is [T, R, K, A, M] (10 IoU thresholds, 101 recall
        thresholds, categories, 4 area ranges, 3 maxDets), ``evalImgs`` holds the per-image matches.
    """
    if len(preds) != len(targets):
        raise ValueError(f"coco_map: got {len(preds)} preds but {len(targets)} targets.")
    images = [{"id": i + 1} for i in range(len(targets))]
    gt_anns: list[dict] = []
    dt_anns: list[dict] = []
    for image_id, (pred, target) in enumerate(zip(preds, targets, strict=True), start=1):
        boxes = box_convert(target["boxes"].detach().float().cpu(), "xyxy", "xywh")  # [M, 4]
        area = target.get("area")
        areas = (boxes[:, 2] * boxes[:, 3] if area is None else area).tolist()
        crowd = target.get("iscrowd")
        crowds = [0] * len(boxes) if crowd is None else [int(c) for c in crowd.tolist()]
        for box, label, a, c in zip(
            boxes.tolist(), target["labels"].tolist(), areas, crowds, strict=True
        ):
            gt_anns.append(
                {"id": len(gt_anns) + 1, "image_id": image_id, "category_id": int(label),
                 "bbox": box, "area": float(a), "iscrowd": c}
            )  # fmt: skip
        boxes = box_convert(pred["boxes"].detach().float().cpu(), "xyxy", "xywh")  # [N, 4]
        for box, label, score in zip(
            boxes.tolist(), pred["labels"].tolist(), pred["scores"].tolist(), strict=True
        ):
            dt_anns.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": box,
                    "score": float(score),
                }
            )
    seen = {a["category_id"] for a in gt_anns + dt_anns}
    categories = [{"id": c} for c in sorted(seen | set(range(num_classes or 0)))]
    coco_gt = _coco(images, gt_anns, categories)
    with contextlib.redirect_stdout(io.StringIO()):
        # loadRes adds id, area (box area) and iscrowd=0; it cannot load an empty list
        coco_dt = coco_gt.loadRes(dt_anns) if dt_anns else _coco(images, [], categories)
    evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator
