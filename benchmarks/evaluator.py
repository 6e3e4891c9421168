"""mAP computation time: autotimm's evaluator (MetricManager: torchmetrics' MeanAveragePrecision on
faster_coco_eval) against plain pycocotools (autotimm.metrics.coco_map) on the same predictions."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from benchmarks.config import BenchConfig
from benchmarks.report import Table
from benchmarks.timing import interleave

IMAGE_SIZE = 640  # original-frame pixels of the synthetic images


def synthetic_detections(num_images: int, detections: int, num_classes: int = 80, seed: int = 0) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """Predictions and targets like a half-trained detector's, original frame.

    Each image has 1-15 ground-truth boxes; its ``detections`` predictions are jittered copies of
    them (some with a wrong class) plus random boxes, with scores in (0, 1).

    Returns:
        (preds, targets): one dict per image; ``boxes`` float32 [N, 4] x1y1x2y2 pixels, ``labels``
        int64 [N] in 0..K-1, ``scores`` float32 [N] for preds.
    """
    if num_images < 1 or detections < 1 or num_classes < 1:
        raise ValueError(
            f"synthetic_detections(num_images={num_images}, detections={detections}, num_classes={num_classes}): all must be >= 1."
        )
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(num_images):
        m = int(torch.randint(1, 16, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * IMAGE_SIZE * 0.8  # [M, 2]
        wh = 8 + torch.rand(m, 2, generator=g) * IMAGE_SIZE * 0.3  # [M, 2], small to large
        gt = torch.cat([xy, (xy + wh).clamp(max=IMAGE_SIZE)], dim=1)  # [M, 4]
        gt_labels = torch.randint(0, num_classes, (m,), generator=g)
        n_near = detections // 2
        src = torch.randint(0, m, (n_near,), generator=g)  # [Nn] which GT each near-miss copies
        jitter = torch.randn(n_near, 4, generator=g) * 0.1 * wh[src].repeat(1, 2)  # [Nn, 4]
        near = gt[src] + jitter
        near_labels = torch.where(torch.rand(n_near, generator=g) < 0.8, gt_labels[src], torch.randint(0, num_classes, (n_near,), generator=g))
        far_xy = torch.rand(detections - n_near, 2, generator=g) * IMAGE_SIZE * 0.9
        far = torch.cat([far_xy, far_xy + 8 + torch.rand(detections - n_near, 2, generator=g) * 100], dim=1)
        boxes = torch.cat([near, far]).clamp(0, IMAGE_SIZE)  # [N, 4]
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)  # keep x2 > x1, y2 > y1
        labels = torch.cat([near_labels, torch.randint(0, num_classes, (detections - n_near,), generator=g)])
        scores = torch.cat([0.3 + 0.7 * torch.rand(n_near, generator=g), 0.6 * torch.rand(detections - n_near, generator=g)])
        preds.append({"boxes": boxes.float(), "scores": scores, "labels": labels})
        targets.append({"boxes": gt.float(), "labels": gt_labels, "iscrowd": torch.zeros(m, dtype=torch.int64)})
    return preds, targets


def evaluators(preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> dict[str, Callable[[], float]]:
    """name -> a callable computing mAP@[.5:.95] of ``preds`` from scratch (update + compute)."""
    from torchmetrics.detection import MeanAveragePrecision

    from autotimm.metrics import MetricManager, coco_map, mean_ap_backend, mean_ap_defaults

    def manager() -> float:
        m = MetricManager.default()
        m.update("val", preds, targets)
        return float(m.compute("val")["val/mAP"])

    def pycocotools() -> float:
        return coco_map(preds, targets)["map"]

    def torchmetrics_pycocotools() -> float:
        metric = MeanAveragePrecision(**{**mean_ap_defaults(), "backend": "pycocotools"})
        metric.update(preds, targets)
        return float(metric.compute()["map"])

    return {
        f"autotimm MetricManager (torchmetrics + {mean_ap_backend()})": manager,
        "pycocotools COCOeval (autotimm.metrics.coco_map)": pycocotools,
        "torchmetrics MeanAveragePrecision + pycocotools": torchmetrics_pycocotools,
    }


def run_evaluator(cfg: BenchConfig) -> tuple[list[Table], dict[str, dict[str, float]]]:
    """Time every evaluator on one synthetic set, interleaved; check they agree."""
    preds, targets = synthetic_detections(cfg.eval_images, cfg.eval_detections, seed=cfg.seed)
    fns = evaluators(preds, targets)
    values = {name: fn() for name, fn in fns.items()}  # also the warm-up
    print(f"[evaluator] {cfg.eval_images} images x {cfg.eval_detections} detections, {cfg.repeats} rounds", flush=True)
    stats = interleave(fns, cfg.repeats, warmup=0)
    reference = "pycocotools COCOeval (autotimm.metrics.coco_map)"
    table = Table(
        f"mAP computation time ({cfg.eval_images} images, {cfg.eval_detections} detections each, 80 classes)",
        ["evaluator", "min s", "median s", "x pycocotools", "mAP", "mAP diff vs pycocotools"],
    )
    table.notes = [
        "update + compute from scratch on the same original-frame predictions; 'x pycocotools' = pycocotools' "
        "median / this median. Synthetic detections: jittered copies of the ground truth plus random boxes."
    ]
    results = {}
    for name, s in stats.items():
        results[name] = {"min": s.min, "median": s.median, "map": values[name]}
        table.add(name, s.min, s.median, stats[reference].median / s.median, values[name], abs(values[name] - values[reference]))
    overhead_table, overhead = run_report_overhead(cfg, preds, targets)
    results["EvaluationReport overhead"] = overhead
    return [table, overhead_table], results


def report_contenders(preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]], num_classes: int = 80) -> dict[str, Callable[[], float]]:
    """name -> callable: the mAP alone (pycocotools) and the full EvaluationReport (the same COCOeval plus
    per-class AP, PR and confidence curves, the confusion matrix), both from scratch; each returns mAP."""
    from autotimm.evaluation import build_report
    from autotimm.metrics import coco_map

    names = [f"class{k}" for k in range(num_classes)]
    return {
        "mAP only (pycocotools COCOeval)": lambda: coco_map(preds, targets)["map"],
        "EvaluationReport (mAP + per-class, curves, confusion)": lambda: build_report(preds, targets, names).summary["map"],
    }


def run_report_overhead(cfg: BenchConfig, preds: list[dict[str, Tensor]], targets: list[dict[str, Tensor]]) -> tuple[Table, dict[str, float]]:
    """Time ``build_report`` against the mAP it is built on (interleaved); the issue's target is an
    overhead under 1 s at 200 images x 100 detections. Figures are not drawn (they are drawn on demand)."""
    fns = report_contenders(preds, targets)
    values = {name: fn() for name, fn in fns.items()}  # also the warm-up
    stats = interleave(fns, cfg.repeats, warmup=0)
    base, full = (stats[name] for name in fns)
    overhead = full.median - base.median
    table = Table(
        f"EvaluationReport overhead ({cfg.eval_images} images, {cfg.eval_detections} detections each, 80 classes)",
        ["computation", "min s", "median s", "mAP"],
    )
    table.notes = [f"overhead (median difference): {overhead:.3f} s; target < 1 s at 200 images x 100 detections."]
    for name, s in stats.items():
        table.add(name, s.min, s.median, values[name])
    return table, {"overhead_s": overhead, "map_only_s": base.median, "report_s": full.median,
                   "map_diff": abs(values[list(fns)[0]] - values[list(fns)[1]])}
