"""MetricManager: stages, naming of logged values, log flags, accumulation and bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from metrics_testdata import coco_like_set, pred, target
from torchmetrics import Metric

from autotimm.metrics import MetricConfig, MetricManager, coco_map

BOX = [[10.0, 10.0, 50.0, 50.0]]
MAP_NAMES = {
    "val/mAP", "val/mAP_50", "val/mAP_75", "val/mAP_small", "val/mAP_medium", "val/mAP_large",
    "val/mAP_mar_1", "val/mAP_mar_10", "val/mAP_mar_100",
    "val/mAP_mar_small", "val/mAP_mar_medium", "val/mAP_mar_large",
}  # fmt: skip


def map_config(**params) -> MetricConfig:
    return MetricConfig(
        name="mAP",
        backend="torchmetrics",
        metric_class="MeanAveragePrecision",
        params={"box_format": "xyxy", "iou_type": "bbox", **params},
        stages=["val"],
        prog_bar=True,
    )


def iou_config(**overrides) -> MetricConfig:
    kwargs = dict(
        name="IoU", backend="torchmetrics", metric_class="IntersectionOverUnion", params={},
        stages=["val"],
    )  # fmt: skip
    return MetricConfig(**{**kwargs, **overrides})


class GroundTruthCount(Metric):
    """Counts ground-truth boxes; sees the dicts unchanged (reads image_id)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("id_sum", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds, targets) -> None:
        for t in targets:
            self.count += t["boxes"].shape[0]
            self.id_sum += t["image_id"]

    def compute(self):
        return {"count": self.count, "id_sum": self.id_sum}


def test_default_logs_map_on_val_and_test_only():
    manager = MetricManager.default()
    assert [manager.has_stage(s) for s in ("train", "val", "test")] == [False, True, True]
    assert manager.update("train", [pred(BOX, [0], [0.9])], [target(BOX, [0])]) == {}
    assert manager.update("val", [pred(BOX, [0], [0.9])], [target(BOX, [0])]) == {}
    out = manager.compute("val")
    assert set(out) == MAP_NAMES
    assert out["val/mAP"].item() == pytest.approx(1.0, abs=1e-6)
    assert out["val/mAP_small"].item() == -1.0  # no small ground truth: undefined
    assert all(v.ndim == 0 and v.dtype == torch.float32 for v in out.values())
    assert manager.compute("train") == {}


def test_log_kwargs_put_only_the_headline_in_the_progress_bar():
    manager = MetricManager([map_config()])
    manager.update("val", [pred(BOX, [0], [0.9])], [target(BOX, [0])])
    manager.compute("val")
    assert manager.log_kwargs("val/mAP") == {"prog_bar": True, "on_step": False, "on_epoch": True}
    assert manager.log_kwargs("val/mAP_50") == {
        "prog_bar": False,
        "on_step": False,
        "on_epoch": True,
    }
    with pytest.raises(ValueError, match=r"'val/mAP_51' was not produced .* known: \['val/mAP'"):
        manager.log_kwargs("val/mAP_51")


def test_per_class_values_use_class_names():
    manager = MetricManager([map_config(class_metrics=True)], class_names=["cat", "hot dog"])
    preds = [pred(BOX, [0], [0.9]), pred(BOX, [0], [0.8])]  # image 1: a dog called a cat
    targets = [target(BOX, [0]), target(BOX, [1])]
    manager.update("val", preds, targets)
    out = manager.compute("val")
    # cat: one TP (score .9) and one FP (.8) -> precision 1 up to recall 1
    assert out["val/mAP_class_cat"].item() == pytest.approx(1.0, abs=1e-6)
    assert out["val/mAP_class_hot_dog"].item() == 0.0
    assert out["val/mAP_mar_100_class_hot_dog"].item() == 0.0
    assert out["val/mAP"].item() == pytest.approx(0.5, abs=1e-6)
    assert set(out) == MAP_NAMES | {
        "val/mAP_class_cat", "val/mAP_class_hot_dog",
        "val/mAP_mar_100_class_cat", "val/mAP_mar_100_class_hot_dog",
    }  # fmt: skip


def test_per_class_values_fall_back_to_indices():
    manager = MetricManager([map_config(class_metrics=True)])
    manager.update("val", [pred(BOX, [2], [0.9])], [target(BOX, [2])])
    assert manager.compute("val")["val/mAP_class_2"].item() == pytest.approx(1.0, abs=1e-6)
    named = MetricManager([map_config(class_metrics=True)], class_names=["a", "b"])
    named.update("val", [pred(BOX, [2], [0.9])], [target(BOX, [2])])
    with pytest.warns(UserWarning, match=r"class index 2, outside class_names \(length 2\)"):
        assert "val/mAP_class_2" in named.compute("val")


def test_iou_metric_naming_and_per_class_keys():
    manager = MetricManager([iou_config(params={"class_metrics": True})], class_names=["cat"])
    manager.update(
        "val", [pred([[0.0, 0.0, 10.0, 10.0]], [0], [0.9])], [target([[0.0, 0.0, 10.0, 20.0]], [0])]
    )
    out = manager.compute("val")
    assert set(out) == {"val/IoU", "val/IoU_class_cat"}
    assert out["val/IoU"].item() == pytest.approx(0.5)  # 100 / 200 px


def test_accumulates_over_updates_and_reset_clears():
    preds, targets = coco_like_set(seed=3, num_images=6)
    manager = MetricManager.default()
    manager.update("val", preds[:4], targets[:4])
    manager.update("val", preds[4:], targets[4:])
    assert manager.compute("val")["val/mAP"].item() == pytest.approx(
        coco_map(preds, targets)["map"], abs=1e-4
    )
    manager.reset("val")
    manager.update("val", [pred(BOX, [1], [0.9])], [target(BOX, [0])])
    assert manager.compute("val")["val/mAP"].item() == 0.0
    assert manager.get_metric("test", "mAP").update_called is False  # stages are independent


def test_log_on_step_returns_batch_values():
    manager = MetricManager([iou_config(log_on_step=True)])
    half = manager.update(
        "val", [pred([[0.0, 0.0, 10.0, 10.0]], [0], [0.9])], [target([[0.0, 0.0, 10.0, 20.0]], [0])]
    )
    full = manager.update("val", [pred(BOX, [0], [0.9])], [target(BOX, [0])])
    assert set(half) == {"val/IoU_step"}
    assert half["val/IoU_step"].item() == pytest.approx(0.5)
    assert full["val/IoU_step"].item() == pytest.approx(1.0)
    assert manager.log_kwargs("val/IoU_step") == {
        "prog_bar": False,
        "on_step": True,
        "on_epoch": False,
    }
    assert manager.compute("val")["val/IoU"].item() == pytest.approx(0.75)  # mean over both boxes


def test_step_only_metric_keeps_no_epoch_state():
    manager = MetricManager([iou_config(log_on_step=True, log_on_epoch=False, prog_bar=True)])
    out = manager.update("val", [pred(BOX, [0], [0.9])], [target(BOX, [0])])
    assert set(out) == {"val/IoU"}
    assert manager.log_kwargs("val/IoU") == {"prog_bar": True, "on_step": True, "on_epoch": False}
    assert manager.get_metric("val", "IoU").update_called is False
    assert manager.compute("val") == {}


def test_custom_metric_sees_extra_keys_and_extra_keys_are_tolerated():
    custom = MetricConfig(
        name="gt", backend="custom", metric_class=GroundTruthCount, params={}, stages=["test"]
    )
    manager = MetricManager([custom, dataclasses.replace(map_config(), stages=["test"])])
    preds, targets = coco_like_set(seed=0, num_images=4)  # carry image_id, orig_size
    for p, t in zip(preds, targets, strict=True):
        p["letterbox"] = t["letterbox"] = torch.tensor([0.5, 0.0, 0.0])
    manager.update("test", preds, targets)
    out = manager.compute("test")
    assert out["test/gt"].item() == sum(len(t["boxes"]) for t in targets)
    assert out["test/gt_id_sum"].item() == 0 + 1 + 2 + 3
    assert out["test/mAP"].item() == pytest.approx(coco_map(preds, targets)["map"], abs=1e-4)


def test_metrics_are_submodules_without_checkpoint_state():
    manager = MetricManager.default()
    modules = dict(manager.named_modules())
    assert modules["stage_metrics.val_metrics.mAP"] is manager.get_metric("val", "mAP")
    assert modules["stage_metrics.test_metrics.mAP"] is manager.get_metric("test", "mAP")
    manager.update("val", [pred(BOX, [0], [0.9])], [target(BOX, [0])])
    assert manager.state_dict() == {}  # old checkpoints load whatever the metric config


def test_from_metrics_coerces_detector_argument():
    assert [c.name for c in MetricManager.from_metrics(None).configs] == ["mAP"]
    manager = MetricManager([map_config()])
    assert MetricManager.from_metrics(manager) is manager
    assert MetricManager.from_metrics([iou_config()]).has_stage("val")
    assert MetricManager.from_metrics([]).has_stage("val") is False
    with pytest.raises(
        ValueError,
        match=r"metrics must be a MetricManager, a list of MetricConfig or None, got str",
    ):
        MetricManager.from_metrics("mAP")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([map_config(), map_config()],), r"names must be unique, repeated: \['mAP'\]"),
        (([map_config(), "mAP"],), r"configs\[1\] must be a MetricConfig, got str"),
        ((map_config(),), r"takes a list of MetricConfig, got MetricConfig"),
        (([map_config()], ["traffic light", "traffic_light"]), r"repeat a name"),
    ],
)
def test_bad_manager_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        MetricManager(*args)


def test_unknown_stage_and_metric():
    manager = MetricManager.default()
    with pytest.raises(
        ValueError, match=r"unknown stage 'validation'; valid stages: train, val, test"
    ):
        manager.update("validation", [], [])
    with pytest.raises(ValueError, match=r"No metric 'IoU' in stage 'val'; available: \['mAP'\]"):
        manager.get_metric("val", "IoU")


@pytest.mark.parametrize(
    ("preds", "targets", "match"),
    [
        ([pred(BOX, [0], [0.9])], [], r"got 1 preds and 0 targets"),
        (
            [
                {
                    "boxes": torch.zeros(1, 5),
                    "labels": torch.zeros(1, dtype=torch.int64),
                    "scores": torch.ones(1),
                }
            ],
            [target(BOX, [0])],
            r"preds\[0\]\['boxes'\] must be a float Tensor\[N, 4\] .* got \(1, 5\)",
        ),
        (
            [pred(BOX, [0], [0.9])],
            [{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1)}],
            r"targets\[0\]\['labels'\] must be an int64 Tensor\[1\], got \(1,\) torch.float32",
        ),
        (
            [{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1, dtype=torch.int64)}],
            [target(BOX, [0])],
            r"preds\[0\]\['scores'\] must be a Tensor\[1\], got None",
        ),
        (
            [pred(BOX, [0], [0.9])],
            [target(BOX, [0], iscrowd=torch.zeros(2))],
            r"targets\[0\]\['iscrowd'\] must be a Tensor\[1\], got \(2,\)",
        ),
        (
            {"boxes": torch.zeros(0, 4)},
            [],
            r"preds must be a list with one dict per image, got dict",
        ),
    ],
)
def test_contract_violations_name_image_and_key(preds, targets, match):
    with pytest.raises(ValueError, match=match):
        MetricManager.default().update("val", preds, targets)
