"""Behaviour is preserved: a fixed-seed tiny FCOS and YOLOX give the numbers saved in ``golden.pt``.

``golden.pt`` was written by ``make_golden.py`` from the code before the redesign of issue 16 (box
geometry, architecture interface, one post-processing path); every refactor since must reproduce it.
"""

from __future__ import annotations

import pytest
import torch

from make_golden import ARCHS, GOLDEN, compute

TOL = 1e-6


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_same_outputs_losses_and_detections(golden, arch):
    expected, actual = golden[arch], compute(arch)
    assert actual["raw"].shape == expected["raw"].shape
    assert (actual["raw"] - expected["raw"]).abs().max() <= TOL
    for key in ("loss", "loss_l1"):
        if key in expected:
            assert actual[key].keys() == expected[key].keys()
            assert all(abs(actual[key][k] - expected[key][k]) <= TOL for k in expected[key]), (actual[key], expected[key])
    for key in ("detect", "predict"):
        assert len(actual[key]) == len(expected[key])
        for got, want in zip(actual[key], expected[key]):
            assert got.shape == want.shape and len(want) > 0
            assert (got - want).abs().max() <= TOL, (got - want).abs().max()
