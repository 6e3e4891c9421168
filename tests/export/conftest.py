"""Export test fixtures (helpers live in export_helpers.py, importable from every test module)."""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch

from autotimm import ObjectDetector

from export_helpers import make_detector, make_images

if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime")):  # the optional extra is missing
    collect_ignore_glob = ["test_*.py"]
    warnings.warn("ONNX export tests not collected: pip install 'autotimm[onnx]' to run them.", stacklevel=1)


@pytest.fixture
def images() -> list[torch.Tensor]:
    return make_images()


@pytest.fixture(scope="module")
def resnet_detector() -> ObjectDetector:
    return make_detector("resnet18")
