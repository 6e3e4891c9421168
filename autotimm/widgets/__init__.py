"""Notebook widgets: backbone picker, detector builder, threshold explorer, training panel.

ipywidgets is an optional extra (``pip install 'autotimm[notebooks]'``): it is imported when a widget
is first used, so ``import autotimm.widgets`` works without it.

Example:
    >>> from autotimm.widgets import DetectorBuilder  # doctest: +SKIP
    >>> builder = DetectorBuilder(num_classes=3); builder  # doctest: +SKIP
"""

from __future__ import annotations

from autotimm._lazy import export_lazily

_EXPORTS: dict[str, str] = {
    "BackbonePicker": "autotimm.widgets.backbone_picker",
    "DetectorBuilder": "autotimm.widgets.detector_builder",
    "ThresholdExplorer": "autotimm.widgets.threshold_explorer",
    "TrainingPanel": "autotimm.widgets.training_panel",
    "BackboneInfo": "autotimm.widgets.catalog",
    "backbone_info": "autotimm.widgets.catalog",
    "search_backbones": "autotimm.widgets.catalog",
}

export_lazily(globals(), _EXPORTS)
