"""Helpers for the training tests."""

from __future__ import annotations

from autotimm import FeatureBackboneConfig


def tiny_model(**over):
    from autotimm import ObjectDetector

    kw = dict(backbone=FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, fpn_channels=32,
              head_num_convs=1, compile_model=False, deterministic=False, lr=1e-3, seed=0)
    kw.update(over)
    return ObjectDetector(**kw)


def quiet(**kw):
    return dict(enable_progress_bar=False, enable_model_summary=False, **kw)
