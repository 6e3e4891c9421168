"""autotimm: Jupyter-first object detection with any timm backbone.

Public names are imported lazily, so ``import autotimm`` is fast and works with only the core
dependencies installed; optional extras (widgets, FiftyOne, ONNX) load when first used.
"""

from __future__ import annotations

from autotimm._lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "ObjectDetector": "autotimm.detector",
    "FeatureBackboneConfig": "autotimm.models.backbone",
    "list_backbones": "autotimm.models.backbone",
    "register_loss": "autotimm.losses.registry",
    "list_losses": "autotimm.losses.registry",
    "TransformConfig": "autotimm.preprocessing",
    "DetectionDataModule": "autotimm.data.datamodule",
    "MetricConfig": "autotimm.metrics.manager",
    "MetricManager": "autotimm.metrics.manager",
    "LoggingConfig": "autotimm.metrics.logging_config",
    "AutoTrainer": "autotimm.training.trainer",
    "LivePlot": "autotimm.callbacks.live_plot",
    "yolox_recipe": "autotimm.recipes",
    "preset": "autotimm.presets",
    "DetectorPreset": "autotimm.presets",
    "example": "autotimm.data.examples",
    "OnnxDetector": "autotimm.export.runtime",
    "Detections": "autotimm.results",
    "EvaluationReport": "autotimm.evaluation.report",
}

# optional parts, imported on first attribute access: autotimm.widgets, autotimm.fiftyone, ...
_SUBMODULES = ("callbacks", "data", "evaluation", "export", "fiftyone", "metrics", "models", "presets", "recipes", "training", "widgets")

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__ = lazy_getattr(globals(), _EXPORTS, _SUBMODULES)


def __dir__() -> list[str]:
    return __all__
