"""Our mAP (MetricManager + torchmetrics) against pycocotools' COCOeval, and hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from metrics_testdata import coco_like_set, pred, target

from autotimm.metrics import COCO_STAT_NAMES, MetricConfig, MetricManager, coco_map

# torchmetrics key -> name the manager logs for the default "mAP" config on val
LOGGED = {
    "map": "val/mAP",
    "map_50": "val/mAP_50",
    "map_75": "val/mAP_75",
    "map_small": "val/mAP_small",
    "map_medium": "val/mAP_medium",
    "map_large": "val/mAP_large",
    "mar_1": "val/mAP_mar_1",
    "mar_10": "val/mAP_mar_10",
    "mar_100": "val/mAP_mar_100",
    "mar_small": "val/mAP_mar_small",
    "mar_medium": "val/mAP_mar_medium",
    "mar_large": "val/mAP_mar_large",
}


def manager_map(preds, targets, batch_size: int = 3, **params) -> dict[str, float]:
    """Run the val mAP of a MetricManager over the images in batches; torchmetrics key -> value."""
    config = MetricConfig(
        name="mAP",
        backend="torchmetrics",
        metric_class="MeanAveragePrecision",
        params={"box_format": "xyxy", "iou_type": "bbox", **params},
        stages=["val"],
    )
    manager = MetricManager([config])
    for start in range(0, len(preds), batch_size):
        manager.update(
            "val", preds[start : start + batch_size], targets[start : start + batch_size]
        )
    out = manager.compute("val")
    assert set(out) == set(LOGGED.values())
    return {key: float(out[name]) for key, name in LOGGED.items()}


def assert_close(ours: dict[str, float], ref: dict[str, float]) -> None:
    for key in COCO_STAT_NAMES:
        assert ours[key] == pytest.approx(ref[key], abs=1e-4), key


@pytest.mark.parametrize("evaluator", ["faster_coco_eval", "pycocotools"])
def test_manager_matches_pycocotools_on_seeded_set(evaluator):
    pytest.importorskip(evaluator)
    preds, targets = coco_like_set(seed=0)
    ref = coco_map(preds, targets)
    assert -1.0 not in ref.values()  # every statistic is defined, so the comparison is not vacuous
    assert 0.05 < ref["map"] < 0.95
    assert_close(manager_map(preds, targets, backend=evaluator), ref)


def test_default_evaluator_matches_pycocotools_on_other_seeds():
    for seed in (1, 2):
        preds, targets = coco_like_set(seed=seed, num_images=8, num_classes=4)
        assert_close(manager_map(preds, targets, batch_size=5), coco_map(preds, targets))


def test_area_field_drives_size_ranges_in_both():
    preds, targets = coco_like_set(seed=0)
    for t in targets:  # mask-like areas, smaller than the boxes: objects move to smaller ranges
        t["area"] = t["area"] * 0.3
    ref = coco_map(preds, targets)
    box_area_ref = coco_map(*coco_like_set(seed=0))
    assert ref["map_small"] != pytest.approx(box_area_ref["map_small"], abs=1e-4)
    assert_close(manager_map(preds, targets), ref)


def test_crowd_regions_are_ignored_in_both():
    preds, targets = coco_like_set(seed=0)
    ref = coco_map(preds, targets)
    no_crowd = [{**t, "iscrowd": torch.zeros_like(t["iscrowd"])} for t in targets]
    assert coco_map(preds, no_crowd)["map"] != pytest.approx(ref["map"], abs=1e-4)
    assert_close(manager_map(preds, no_crowd), coco_map(preds, no_crowd))


# ---------------------------------------------------------------- hand-computed cases
# COCO AP samples precision at 101 recall points 0, 0.01, ..., 1; a recall of 0.5 reached with
# precision p gives AP = p * 51 / 101.
HALF_RECALL = 51 / 101


def both(preds, targets) -> list[dict[str, float]]:
    return [coco_map(preds, targets), manager_map(preds, targets)]


def test_one_perfect_prediction_gives_one():
    box = [[10.0, 10.0, 50.0, 50.0]]  # 40 x 40 = 1600 px: a medium object
    for out in both([pred(box, [0], [0.9])], [target(box, [0])]):
        assert out["map"] == pytest.approx(1.0, abs=1e-6)
        assert out["map_medium"] == pytest.approx(1.0, abs=1e-6)
        assert out["mar_1"] == pytest.approx(1.0, abs=1e-6)
        assert out["map_small"] == -1.0 and out["map_large"] == -1.0  # no such ground truth


def test_wrong_class_prediction_gives_zero():
    box = [[10.0, 10.0, 50.0, 50.0]]
    for out in both([pred(box, [1], [0.9])], [target(box, [0])]):
        assert out["map"] == 0.0
        assert out["mar_100"] == 0.0


def test_iou_072_is_matched_at_half_the_thresholds():
    # IoU = 72 / 100: a match for thresholds 0.50 .. 0.70, a miss for 0.75 .. 0.95
    out_coco, out_ours = both(
        [pred([[0.0, 0.0, 100.0, 72.0]], [0], [0.9])], [target([[0.0, 0.0, 100.0, 100.0]], [0])]
    )
    for out in (out_coco, out_ours):
        assert out["map"] == pytest.approx(0.5, abs=1e-6)
        assert out["map_50"] == pytest.approx(1.0, abs=1e-6)
        assert out["map_75"] == 0.0
        assert out["map_large"] == pytest.approx(0.5, abs=1e-6)  # 10000 px > 96 ** 2


def test_image_without_predictions_halves_recall():
    box = [[10.0, 10.0, 50.0, 50.0]]
    preds = [pred(box, [0], [0.9]), pred([], [], [])]
    targets = [target(box, [0]), target(box, [0])]
    for out in both(preds, targets):
        assert out["map"] == pytest.approx(HALF_RECALL, abs=1e-6)
        assert out["mar_100"] == pytest.approx(0.5, abs=1e-6)


def test_false_positive_on_empty_image_halves_precision():
    box = [[10.0, 10.0, 50.0, 50.0]]
    preds = [pred(box, [0], [0.95]), pred(box, [0], [0.9])]  # the higher score is on image 0
    targets = [target([], []), target(box, [0])]
    for out in both(preds, targets):
        assert out["map"] == pytest.approx(0.5, abs=1e-6)
        assert out["mar_100"] == pytest.approx(1.0, abs=1e-6)


def test_detection_inside_crowd_region_is_not_a_false_positive():
    preds = [pred([[10.0, 10.0, 50.0, 50.0], [200.0, 200.0, 240.0, 240.0]], [0, 0], [0.95, 0.9])]
    crowd = target([[0.0, 0.0, 100.0, 100.0], [200.0, 200.0, 240.0, 240.0]], [0, 0],
                   iscrowd=torch.tensor([1, 0]))  # fmt: skip
    for out in both(preds, [crowd]):
        assert out["map"] == pytest.approx(1.0, abs=1e-6)
    # the same box as a normal object: the top-scored detection is a false positive (IoU 0.16)
    # and the object is missed, so recall 0.5 is reached at precision 0.5
    normal = {**crowd, "iscrowd": torch.tensor([0, 0])}
    for out in both(preds, [normal]):
        assert out["map"] == pytest.approx(0.5 * HALF_RECALL, abs=1e-6)


def test_no_images_at_all_is_undefined():
    assert set(coco_map([], []).values()) == {-1.0}
    assert set(coco_map([pred([], [], [])], [target([], [])]).values()) == {-1.0}


def test_recall_sampling_uses_coco_float64_thresholds():
    # 5 objects; detections by score: TP TP TP FP TP. Precision is 1 up to recall 0.6 and 0.8 at
    # recall 0.8, so COCO's 101-point AP = (61 * 1.0 + 20 * 0.8) / 101 = 77 / 101. torchmetrics'
    # float32 default thresholds (0.60000002 > 3/5, 0.80000001 > 4/5) give 76 / 101 instead.
    gt = [[20.0 * i, 0.0, 20.0 * i + 16.0, 80.0] for i in range(5)]  # 16 x 80 px each
    boxes = gt[:3] + [[0.0, 200.0, 16.0, 280.0]] + gt[3:4]
    preds = [pred(boxes, [0] * 5, [0.9, 0.8, 0.7, 0.6, 0.5])]
    for out in both(preds, [target(gt, [0] * 5)]):
        assert out["map"] == pytest.approx(77 / 101, abs=1e-6)
        assert out["mar_100"] == pytest.approx(0.8, abs=1e-6)
