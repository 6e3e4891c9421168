"""Notebook widgets: backbone picker, detector builder, threshold explorer, training panel.

ipywidgets is an optional extra (``pip install 'autotimm[notebooks]'``): it is imported when a widget
is first used, so ``import autotimm.widgets`` works without it.

Example:
    >>> from autotimm.widgets import DetectorBuilder  # doctest: +SKIP
    >>> builder = DetectorBuilder(num_classes=3); builder  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BackbonePicker": "autotimm.widgets.backbone_picker",
    "DetectorBuilder": "autotimm.widgets.detector_builder",
    "ThresholdExplorer": "autotimm.widgets.threshold_explorer",
    "TrainingPanel": "autotimm.widgets.training_panel",
    "BackboneInfo": "autotimm.widgets.catalog",
    "backbone_info": "autotimm.widgets.catalog",
    "search_backbones": "autotimm.widgets.catalog",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autotimm.widgets' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
