"""Metrics and logging options for the detector: configurable torchmetrics metrics per stage,
COCO mAP that matches pycocotools, and learning-rate / gradient / weight norm logging."""

from autotimm.metrics.coco_eval import COCO_STAT_NAMES, coco_map
from autotimm.metrics.logging_config import (
    LoggingConfig,
    gradient_norm,
    learning_rate,
    weight_norm,
)
from autotimm.metrics.manager import MetricConfig, MetricManager, default_metric_configs
from autotimm.metrics.naming import flatten_metric_output
from autotimm.metrics.registry import mean_ap_backend, mean_ap_defaults

__all__ = [
    "COCO_STAT_NAMES",
    "LoggingConfig",
    "MetricConfig",
    "MetricManager",
    "coco_map",
    "default_metric_configs",
    "flatten_metric_output",
    "gradient_norm",
    "learning_rate",
    "mean_ap_backend",
    "mean_ap_defaults",
    "weight_norm",
]
