"""Shared test set-up: keep tool state out of the user's home, keep the CPU quiet, keep runs small."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

# No test talks to a model hub: offline mode makes hub look-ups fail at once, without network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))
warnings.filterwarnings("ignore", message=".*deterministic.*")


@pytest.fixture
def tiny_detector_kwargs() -> dict:
    """A small, fast FCOS configuration used across the test suite."""
    from autotimm import FeatureBackboneConfig

    return dict(
        backbone=FeatureBackboneConfig("resnet18", pretrained=False),
        num_classes=3,
        fpn_channels=32,
        head_num_convs=1,
        compile_model=False,
        deterministic=False,
    )
