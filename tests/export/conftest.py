"""Export test fixtures (helpers live in export_helpers.py, importable from every test module)."""

from __future__ import annotations

import pytest
import torch

from autotimm import ObjectDetector

from export_helpers import make_detector, make_images


@pytest.fixture
def images() -> list[torch.Tensor]:
    return make_images()


@pytest.fixture(scope="module")
def resnet_detector() -> ObjectDetector:
    return make_detector("resnet18")
