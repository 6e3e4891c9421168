"""FiftyOne's COCO evaluation on a hand-made set: tp/fp/fn by hand, mAP by hand and equal to
autotimm.metrics (pycocotools and the trainer's torchmetrics mAP); error-analysis views.

Hand-made set (x1y1x2y2 pixels; see conftest.py), classes cat / dog / fox:
  a.png 100x80  GT  g1 cat [10,10,50,50], g2 dog [60,20,90,70], g3 cat CROWD [0,60,40,80]
                PR  p1 cat .90 [12,10,50,52]  IoU(g1) = 1520 / 1676 = 0.907  -> tp
                    p2 dog .80 [60,20,80,70]  IoU(g2) = 1000 / 1500 = 0.667  -> tp
                    p3 cat .70 [70,0,95,15]   no overlap                     -> fp
                    p4 cat .60 [5,62,35,78]   inside the crowd box           -> tp for FiftyOne's
                                              counts, ignored by COCO mAP
  b.png 60x50   GT  g4 dog [5,5,25,45], g5 fox [30,10,55,40]
                PR  p5 dog .75 [30,10,55,40]  on g5, wrong class             -> fp; g4 -> fn
                    p6 fox .65 [31,12,54,40]  IoU(g5) = 644 / 750 = 0.859    -> tp
  c.png 40x40   GT  none
                PR  p7 cat .95 [0,0,20,20]                                   -> fp
At IoU 0.5: a (tp 3, fp 1, fn 0), b (1, 1, 1), c (0, 1, 0).
AP per class over IoU 0.50:0.05:0.95 (101-point interpolation, 1 / 2 / 1 non-crowd GT):
  cat: p7 fp, p1 tp, p3 fp -> AP 0.5 at thresholds <= 0.90 (9 of 10), 0 at 0.95 -> 0.45
  dog: p2 tp, p5 fp, recall reaches 1/2 -> AP 51/101 at thresholds <= 0.65 (4 of 10) -> 0.20198
  fox: p6 tp -> AP 1 at thresholds <= 0.85 (8 of 10) -> 0.8
  mAP = (0.45 + 4 * 51 / 1010 + 0.8) / 3;  mAP@0.5 = (0.5 + 51 / 101 + 1) / 3
"""

from __future__ import annotations

from pathlib import Path

import pytest

import autotimm.fiftyone as atfo
from autotimm.metrics import MetricManager, coco_map
from fo_handmade import CLASSES, handmade_dicts

MAP = (0.45 + 4 * 51 / 1010 + 0.8) / 3
MAP_50 = (0.5 + 51 / 101 + 1) / 3


def _name_of(dataset):
    return dict(zip(dataset.values("id"), (Path(p).name for p in dataset.values("filepath")), strict=True))


def test_tp_fp_fn_counts_match_the_hand_made_example(handmade):
    ev = atfo.evaluate(handmade)
    names = _name_of(handmade)
    per_image = {names[sid]: counts for sid, counts in ev.per_sample.items()}
    assert per_image == {"a.png": (3, 1, 0), "b.png": (1, 1, 1), "c.png": (0, 1, 0)}
    assert (ev.tp, ev.fp, ev.fn) == (4, 3, 1)
    # the fields FiftyOne wrote, per sample and per box
    assert sorted(handmade.values("eval_fp")) == [1, 1, 1]
    a = handmade.match({"filepath": {"$regex": "a.png$"}}).first()
    assert [p.eval for p in a.predictions.detections] == ["tp", "tp", "fp", "tp"]
    assert a.predictions.detections[1].eval_iou == pytest.approx(1000 / 1500)
    assert [g.eval for g in a.ground_truth.detections] == ["tp", "tp", "tp"]
    assert "eval" in handmade.list_evaluations()


def test_map_matches_hand_computation_and_autotimm_metrics(handmade):
    ev = atfo.evaluate(handmade)
    assert ev.mAP == pytest.approx(MAP, abs=1e-12)
    assert ev.mAP_at(0.5) == pytest.approx(MAP_50, abs=1e-12)

    preds, targets = zip(*(handmade_dicts(name) for name in ("a.png", "b.png", "c.png")), strict=True)
    reference = coco_map(list(preds), list(targets))  # pycocotools' COCOeval
    assert ev.mAP == pytest.approx(reference["map"], abs=1e-12)
    assert ev.mAP_at(0.5) == pytest.approx(reference["map_50"], abs=1e-12)

    manager = MetricManager.default(class_names=CLASSES)  # what the trainer logs as val/mAP
    manager.update("val", list(preds), list(targets))
    logged = manager.compute("val")
    assert float(logged["val/mAP"]) == pytest.approx(ev.mAP, abs=1e-6)
    assert float(logged["val/mAP_50"]) == pytest.approx(ev.mAP_at(0.5), abs=1e-6)


def test_results_object_has_report_curves_and_confusion_matrix(handmade):
    ev = atfo.evaluate(handmade)
    report = ev.report()
    assert report["fox"]["precision"] == pytest.approx(1.0)  # p6 only
    assert report["dog"]["recall"] == pytest.approx(0.5)  # g2 found, g4 missed
    assert list(ev.results.classes) == CLASSES
    assert ev.results.precision.shape == (10, 3, 101)  # IoU thresholds x classes x recall points
    # rows: ground truth cat / dog / fox / (none); columns: predictions in the same order
    matrix = ev.results.confusion_matrix(classes=CLASSES, include_missing=True)
    assert matrix.tolist() == [
        [2, 0, 0, 0],  # g1 <- p1, crowd g3 <- p4
        [0, 1, 0, 1],  # g2 <- p2; g4 missed
        [0, 0, 1, 0],  # g5 <- p6
        [2, 1, 0, 0],  # unmatched predictions p3, p7 (cat) and p5 (dog)
    ]


def test_other_eval_key_and_threshold_sets(handmade):
    strict = atfo.evaluate(handmade, eval_key="strict", iou=0.9, iou_threshs=[0.5, 0.9])
    # at 0.9 only p1 (0.907) and the crowd match p4 stay true positives
    assert (strict.tp, strict.fp, strict.fn) == (2, 5, 3)
    assert strict.mAP_at(0.9) == pytest.approx((0.5 + 0 + 0) / 3)
    assert set(handmade.list_evaluations()) == {"strict"}
    again = atfo.evaluate(handmade, eval_key="strict")  # same key: replaced, not an error
    assert (again.tp, again.fp, again.fn) == (4, 3, 1)
    no_map = atfo.evaluate(handmade, eval_key="quick", compute_mAP=False)
    with pytest.raises(ValueError, match="without mAP; use evaluate\\(..., compute_mAP=True\\)"):
        _ = no_map.mAP
    with pytest.raises(ValueError, match=r"iou=0.33 is not among the evaluated IoU thresholds"):
        again.mAP_at(0.33)


def test_bad_arguments_are_named(handmade):
    with pytest.raises(ValueError, match=r"pred_field='preds': the collection has no such field.*'predictions'"):
        atfo.evaluate(handmade, pred_field="preds")
    with pytest.raises(ValueError, match="eval_key='1st' must be a Python identifier"):
        atfo.evaluate(handmade, eval_key="1st")
    with pytest.raises(ValueError, match="iou must be in"):
        atfo.evaluate(handmade, iou=1.5)
    with pytest.raises(ValueError, match="are both 'ground_truth'"):
        atfo.evaluate(handmade, pred_field="ground_truth")


# ------------------------------------------------------------------------------ views
def test_false_positives_most_confident_first(handmade):
    atfo.evaluate(handmade)
    fps = atfo.false_positives(handmade)
    assert fps.values("type") == ["fp", "fp", "fp"]
    confidences = [c for [c] in fps.values("predictions.detections.confidence")]  # one box per patch
    assert confidences == pytest.approx([0.95, 0.75, 0.7])  # p7, p5, p3 (float32 scores)


def test_false_negatives_and_low_iou_matches(handmade):
    atfo.evaluate(handmade)
    fns = atfo.false_negatives(handmade)
    assert len(fns) == 1  # g4; the crowd box was matched
    assert fns.first().ground_truth.detections[0].label == "dog"
    low = atfo.low_iou_matches(handmade, max_iou=0.95)
    assert low.values("iou") == pytest.approx([1000 / 1500, 644 / 750, 1520 / 1676])  # crowd match left out
    assert len(atfo.low_iou_matches(handmade, max_iou=0.75)) == 1
    with pytest.raises(ValueError, match="max_iou must be in"):
        atfo.low_iou_matches(handmade, max_iou=0)


def test_worst_samples_and_one_class(handmade):
    atfo.evaluate(handmade)
    names = lambda view: [Path(p).name for p in view.values("filepath")]  # noqa: E731
    assert names(atfo.worst_samples(handmade, by="errors", limit=1)) == ["b.png"]  # fp 1 + fn 1
    assert names(atfo.worst_samples(handmade, by="fn", limit=1)) == ["b.png"]
    assert sorted(atfo.worst_samples(handmade, by="fp").values("eval_fp"), reverse=True) == [1, 1, 1]
    dogs = atfo.only_class(handmade, "dog")
    assert sorted(names(dogs)) == ["a.png", "b.png"]
    assert set(dogs.distinct("ground_truth.detections.label")) == {"dog"}
    assert set(dogs.distinct("predictions.detections.label")) == {"dog"}
    with pytest.raises(ValueError, match=r"label='cow' is not a class.*\['cat', 'dog', 'fox'\]"):
        atfo.only_class(handmade, "cow")
    with pytest.raises(ValueError, match="by must be 'fp', 'fn' or 'errors'"):
        atfo.worst_samples(handmade, by="tp")


def test_views_need_an_existing_evaluation(handmade):
    with pytest.raises(ValueError, match=r"eval_key='eval': no such evaluation.*Run autotimm.fiftyone.evaluate"):
        atfo.false_positives(handmade)


def test_map_agrees_with_pycocotools_on_seeded_shapes_predictions(fo, dataset_name):
    """Real images and boxes, seeded noisy predictions (jittered boxes, some wrong classes, extra
    boxes, distinct scores): FiftyOne's mAP and mAP@0.5 equal pycocotools'."""
    import numpy as np
    import torch

    from autotimm.data import example

    dataset = atfo.to_dataset(example("shapes"), "val", name=dataset_name, max_samples=8)
    records = example("shapes").datamodule().annotations("val").records[:8]
    g = np.random.default_rng(0)
    preds, targets = [], []
    for r in records:
        n = len(r.boxes)
        wh = r.boxes[:, 2:] - r.boxes[:, :2]  # [n, 2]
        centre = (r.boxes[:, :2] + r.boxes[:, 2:]) / 2 + g.normal(0, 0.08, size=(n, 2)) * wh
        wh = wh * np.exp(g.normal(0, 0.15, size=(n, 2)))
        jittered = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)  # [n, 4]
        corner = g.uniform(0, 0.5, size=(2, 2)) * (r.width, r.height)  # two extra boxes
        extra = np.concatenate([corner, corner + g.uniform(10, 100, size=(2, 2))], axis=1)
        labels = np.where(g.random(n) < 0.2, (r.labels + 1) % 3, r.labels)
        preds.append({
            "boxes": torch.tensor(np.concatenate([jittered, extra]), dtype=torch.float32),
            "labels": torch.tensor(np.concatenate([labels, g.integers(0, 3, 2)]), dtype=torch.int64),
            "scores": torch.tensor(g.uniform(0.05, 1.0, n + 2), dtype=torch.float32),
        })
        targets.append({"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.labels),
                        "iscrowd": torch.from_numpy(r.iscrowd.astype(np.int64))})
    atfo.set_predictions(dataset, preds, list(example("shapes").class_names))
    ev = atfo.evaluate(dataset)
    reference = coco_map(preds, targets)
    assert 0.05 < reference["map"] < 0.95  # a case where the numbers mean something
    assert ev.mAP == pytest.approx(reference["map"], abs=1e-12)
    assert ev.mAP_at(0.5) == pytest.approx(reference["map_50"], abs=1e-12)


def test_a_label_outside_the_class_list_still_counts(handmade):
    sample = handmade.match({"filepath": {"$regex": "b.png$"}}).first()
    sample.ground_truth.detections[1].label = "wolf"  # g5 fox -> wolf, a class the list lacks
    sample.predictions.detections[1].label = "wolf"  # p6 too: wolf takes fox's place in mAP
    sample.save()
    ev = atfo.evaluate(handmade)
    assert list(ev.results.classes) == [*CLASSES, "wolf"]
    assert ev.mAP == pytest.approx(MAP)  # the same boxes under a new name: same mAP
