"""MetricConfig validation and metric-class lookup."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torchmetrics import Metric
from torchmetrics.detection import IntersectionOverUnion, MeanAveragePrecision

from autotimm.metrics import MetricConfig, mean_ap_backend
from autotimm.metrics.registry import COCO_IOU_THRESHOLDS, COCO_REC_THRESHOLDS


def config(**overrides) -> MetricConfig:
    kwargs = {
        "name": "mAP",
        "backend": "torchmetrics",
        "metric_class": "MeanAveragePrecision",
        "params": {"box_format": "xyxy", "iou_type": "bbox"},
        "stages": ["val", "test"],
    }
    return MetricConfig(**{**kwargs, **overrides})


def coco_backend(metric: MeanAveragePrecision) -> str:
    """The COCO evaluator a MeanAveragePrecision uses (torchmetrics 1.4 keeps it as ``.backend``, later
    releases in ``._coco_backend``; the lower bound is checked by scripts/check_min_versions.sh)."""
    return metric._coco_backend.backend if hasattr(metric, "_coco_backend") else metric.backend


class GroundTruthCount(Metric):
    """Counts ground-truth boxes: a minimal real custom detection metric."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds, targets) -> None:
        for t in targets:
            self.count += t["boxes"].shape[0]

    def compute(self):
        return self.count


def test_finds_mean_average_precision_in_torchmetrics_detection():
    # the original package searched only torchmetrics and torchmetrics.classification
    assert config().metric_type is MeanAveragePrecision
    assert config(metric_class="IntersectionOverUnion").metric_type is IntersectionOverUnion


def test_defaults_and_copies():
    params = {"box_format": "xyxy"}
    stages = ["val"]
    cfg = config(params=params, stages=stages)
    assert (cfg.log_on_step, cfg.log_on_epoch, cfg.prog_bar) == (False, True, False)
    params["box_format"] = "xywh"
    stages.append("train")
    assert cfg.params == {"box_format": "xyxy"} and cfg.stages == ["val"]


def test_mean_ap_gets_fast_evaluator_and_coco_thresholds():
    metric = config().build()
    fast = importlib.util.find_spec("faster_coco_eval") is not None
    assert mean_ap_backend() == ("faster_coco_eval" if fast else "pycocotools")
    assert coco_backend(metric) == mean_ap_backend()
    assert metric.iou_thresholds == list(COCO_IOU_THRESHOLDS)
    assert metric.rec_thresholds[30] == 0.3 and len(metric.rec_thresholds) == 101


def test_user_params_win_over_mean_ap_defaults():
    metric = config(params={"backend": "pycocotools", "iou_thresholds": [0.5]}).build()
    assert coco_backend(metric) == "pycocotools"
    assert metric.iou_thresholds == [0.5]
    assert metric.rec_thresholds == list(COCO_REC_THRESHOLDS)


def test_custom_backend_takes_class_or_dotted_path():
    assert config(backend="custom", metric_class=GroundTruthCount).metric_type is GroundTruthCount
    path = "torchmetrics.detection.IntersectionOverUnion"
    assert config(backend="custom", metric_class=path).metric_type is IntersectionOverUnion


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"backend": "sklearn"},
            r"unknown backend 'sklearn'; valid backends: torchmetrics, custom",
        ),
        (
            {"metric_class": "MeanAveragePrecison"},
            r"'MeanAveragePrecison'.*Close names: MeanAveragePrecision",
        ),
        ({"metric_class": GroundTruthCount}, r"backend 'torchmetrics' takes a class name string"),
        ({"stages": ["valid"]}, r"unknown stage 'valid'; valid stages: train, val, test"),
        ({"stages": "val"}, r"stages must be a non-empty list .* got 'val'"),
        ({"stages": []}, r"stages must be a non-empty list"),
        ({"stages": ["val", "val"]}, r"contain duplicates"),
        ({"name": "val/mAP"}, r"name 'val/mAP' is invalid"),
        ({"name": ""}, r"name '' is invalid"),
        ({"name": "train"}, r"reserved by torch.nn.ModuleDict"),
        ({"params": None}, r"params must be a dict, got NoneType"),
        ({"params": {"box_format": "xywh"}}, r"box_format='xywh', but autotimm passes .* x1y1x2y2"),
        ({"prog_bar": "yes"}, r"prog_bar must be True or False, got 'yes'"),
        ({"log_on_step": False, "log_on_epoch": False}, r"both False; nothing to log"),
        (
            {"backend": "custom", "metric_class": "no_such_pkg.Metric"},
            r"cannot import module 'no_such_pkg'",
        ),
        (
            {"backend": "custom", "metric_class": "torchmetrics.detection.NoSuch"},
            r"has no 'NoSuch'.*MeanAveragePrecision",
        ),
        ({"backend": "custom", "metric_class": "Accuracy"}, r"must be a dotted path"),
        (
            {"backend": "custom", "metric_class": torch.nn.Linear},
            r"not a torchmetrics.Metric subclass",
        ),
    ],
)
def test_bad_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        config(**overrides)


def test_constructor_rejection_names_the_config():
    with pytest.raises(
        ValueError, match=r"MetricConfig\(name='mAP'\): MeanAveragePrecision.*box_fmt"
    ):
        config(params={"box_fmt": "xyxy"}).build()
