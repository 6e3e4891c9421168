"""EvaluationReport: per-class AP equals pycocotools per category, hand-checked PR/F1 and confusion matrix,
save() writes every number, and model.evaluate() gives validation's mAP."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
from metrics_testdata import coco_like_set, pred, target  # noqa: E402

from autotimm.evaluation import build_report, confusion_matrix  # noqa: E402
from autotimm.metrics import coco_map  # noqa: E402


def pycocotools_per_class_ap(preds, targets, num_classes) -> np.ndarray:
    """Reference: COCOeval run once per category (params.catIds = [k]); stats[0:3] = AP, AP50, AP75."""
    from pycocotools.cocoeval import COCOeval

    from autotimm.metrics.coco_eval import run_cocoeval

    base = run_cocoeval(preds, targets, num_classes=num_classes)
    out = np.full((num_classes, 3), np.nan)
    for k in range(num_classes):
        ev = COCOeval(base.cocoGt, base.cocoDt, iouType="bbox")
        ev.params.catIds = [k]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out[k] = [v if v > -1 else np.nan for v in ev.stats[:3]]
    return out


def assert_per_class_parity(preds, targets, k):
    report = build_report(preds, targets, [f"c{i}" for i in range(k)])
    ref = pycocotools_per_class_ap(preds, targets, k)
    np.testing.assert_allclose(np.stack([report.ap, report.ap50, report.ap75], 1), ref, atol=1e-6)
    summary = coco_map(preds, targets)
    assert all(report.summary[key] == pytest.approx(value, abs=1e-6) for key, value in summary.items())
    assert np.nanmean(report.ap) == pytest.approx(summary["map"], abs=1e-6)
    return report


def one_class_case():
    """2 ground truths; detections 0.9 (hit), 0.8 (miss), 0.7 (hit), exact boxes: AP at every IoU =
    (51 * 1 + 50 * 2/3) / 101 (COCO's 101-point interpolation)."""
    gt = target([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0])
    det = pred([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0, 0, 0], [0.9, 0.8, 0.7])
    return [det], [gt]


def test_hand_made_ap_pr_and_f1():
    preds, targets = one_class_case()
    report = assert_per_class_parity(preds, targets, 1)
    expected = (51 + 50 * 2 / 3) / 101
    assert report.ap[0] == pytest.approx(expected) and report.ap50[0] == pytest.approx(expected)
    # PR curve: precision 1 up to recall 0.5, then 2/3.
    assert np.allclose(report.precision_50[0, :51], 1.0) and np.allclose(report.precision_50[0, 51:], 2 / 3)
    # F1 = 2 TP / (dets + gts): 0.8 at score >= 0.7, 0.5 above 0.7, 2/3 above 0.8, 0 above 0.9.
    conf = report.confidence
    for c, f1 in ((0.5, 0.8), (0.75, 0.5), (0.85, 2 / 3), (0.95, 0.0)):
        assert conf.f1[0, int(round(c * 1000))] == pytest.approx(f1)
    assert report.best_threshold() == pytest.approx(0.7)  # the highest threshold with the best F1
    assert report.score_thresh == pytest.approx(0.7)
    row = report.table()[0]
    assert (row["precision"], row["recall"], row["num_gt"]) == (pytest.approx(2 / 3), pytest.approx(1.0), 2)
    with pytest.raises(ValueError, match="metric='map'"):
        report.best_threshold("map")


def test_per_class_ap_equals_pycocotools_on_seeded_sets():
    for seed, k in ((0, 3), (1, 4)):
        preds, targets = coco_like_set(seed=seed, num_images=10, num_classes=k)
        report = assert_per_class_parity(preds, targets, k)
        assert 0.05 < report.summary["map"] < 0.95


def test_per_class_ap_on_the_embedded_shapes_data():
    from autotimm.data import example

    shapes = example("shapes")
    records = shapes.datamodule(image_size=128, num_workers=0).annotations("val").records
    g = torch.Generator().manual_seed(0)
    preds, targets = [], []
    for r in records:
        boxes = torch.from_numpy(r.boxes)
        labels = torch.from_numpy(r.labels)
        targets.append({"boxes": boxes, "labels": labels, "iscrowd": torch.from_numpy(r.iscrowd).long()})
        jitter = torch.randn(boxes.shape, generator=g) * 3  # [N, 4] pixels
        swapped = torch.where(torch.rand(len(labels), generator=g) < 0.2, (labels + 1) % 3, labels)
        keep = torch.rand(len(labels), generator=g) < 0.85  # some objects missed
        preds.append({"boxes": (boxes + jitter)[keep], "labels": swapped[keep],
                      "scores": torch.rand(int(keep.sum()), generator=g)})
    report = assert_per_class_parity(preds, targets, 3)
    assert report.num_gt.sum() == sum(int((~r.iscrowd).sum()) for r in records)


def test_confusion_matrix_hand_computed():
    # Classes: 0 cat, 1 dog. Rows: true class, columns: predicted, index 2 = background.
    gt = target([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [100, 100, 200, 200]], [0, 1, 0, 1],
                iscrowd=torch.tensor([0, 0, 0, 1]))
    det = pred(
        [[0, 0, 10, 10],      # cat on the cat: [cat, cat]
         [20, 20, 30, 30],    # cat on the dog: [dog, cat]
         [60, 60, 70, 70],    # dog on nothing: [background, dog]
         [41, 41, 50, 50],    # cat on the cat, but score 0.1 < 0.25: dropped, so that cat is missed: [cat, background]
         [0, 0, 10, 9],       # second cat on the first cat (IoU 0.9 < 1.0 of the first): [background, cat]
         [110, 110, 150, 150]],  # inside the crowd region: ignored
        [0, 0, 1, 0, 0, 1], [0.9, 0.8, 0.7, 0.1, 0.6, 0.9],
    )
    counts = confusion_matrix([det], [gt], num_classes=2, iou_thresh=0.5, score_thresh=0.25)
    expected = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0]])
    np.testing.assert_array_equal(counts, expected)
    # An empty image and an image without predictions.
    counts = confusion_matrix([pred([], [], []), pred([], [], [])], [target([], []), target([[0, 0, 5, 5]], [1])], 2)
    np.testing.assert_array_equal(counts, [[0, 0, 0], [0, 0, 1], [0, 0, 0]])


def test_one_prediction_per_ground_truth():
    # Two ground truths side by side; one prediction overlaps both: it takes the one with the higher IoU.
    gt = target([[0, 0, 10, 10], [8, 0, 18, 10]], [0, 1])
    det = pred([[1, 0, 11, 10]], [1], [0.9])
    counts = confusion_matrix([det], [gt], num_classes=2)
    np.testing.assert_array_equal(counts, [[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # matched to the cat, dog missed


def test_save_writes_pngs_and_every_number(tmp_path):
    preds, targets = coco_like_set(seed=0, num_images=6, num_classes=3)
    report = build_report(preds, targets, ["a", "b", "c"])
    out = report.save(tmp_path / "report")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "report.json", "per_class.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv",
        "confidence_curves.csv", "pr_curves.csv", "pr_iou50.png", "pr_iou50_95.png", "f1_confidence.png",
        "confusion_matrix.png", "confusion_matrix_normalized.png",
    ])
    data = json.loads((out / "report.json").read_text())
    assert data["summary"]["map"] == pytest.approx(report.summary["map"])
    assert data["confusion_matrix"]["counts"] == report.confusion.tolist()
    assert len(data["confidence_curves"]["f1"]) == 3 and len(data["pr_curves"]["recall"]) == 101
    rows = list(csv.DictReader(open(out / "per_class.csv")))
    assert [r["class"] for r in rows] == ["a", "b", "c"]
    assert float(rows[0]["ap"]) == pytest.approx(report.ap[0])
    assert (out / "pr_iou50.png").read_bytes().startswith(b"\x89PNG")
    assert report.plot_f1()._repr_png_().startswith(b"\x89PNG")  # inline in Jupyter
    assert "<table>" in report._repr_html_() and "mAP" in repr(report)


def test_bad_input():
    preds, targets = one_class_case()
    with pytest.raises(ValueError, match=r"label 0 outside 0..-1|class_names is empty"):
        build_report(preds, targets, [])
    with pytest.raises(ValueError, match=r"preds\[0\] has label 5 outside 0..0"):
        build_report([pred([[0, 0, 1, 1]], [5], [0.5])], targets, ["a"])
    with pytest.raises(ValueError, match="IoU 0.33 is not one of COCOeval's thresholds"):
        build_report(preds, targets, ["a"], iou_thresh=0.33)
    with pytest.raises(ValueError, match="1 predictions but 2 targets"):
        build_report(preds, targets * 2, ["a"])
