"""The FCOS head's initialisation: every output starts where its loss has a gradient."""

from __future__ import annotations

import pytest
import torch

from autotimm.models.heads.fcos import FCOSHead

STRIDES = (8, 16, 32)


def test_every_distance_starts_on_relus_live_side():
    # A zero bias leaves half the distances at exactly 0 (ReLU's flat half, no gradient); one early
    # push below zero then kills a channel for good. The positive prior keeps all four alive.
    torch.manual_seed(0)
    head = FCOSHead(32, num_classes=3, strides=STRIDES, num_convs=2)
    feats = [torch.randn(2, 32, s, s) for s in (16, 8, 4)]
    cls, reg, ctr = head(feats)
    for dists, stride in zip(reg, STRIDES):
        assert bool((dists > 0).all())
        assert dists.mean().item() == pytest.approx(stride, rel=0.1)  # one stride per side
    probs = torch.cat([c.sigmoid().flatten() for c in cls])
    assert probs.mean().item() == pytest.approx(0.01, rel=0.1)  # focal-loss prior


def test_a_non_positive_bbox_prior_is_refused():
    with pytest.raises(ValueError, match=r"bbox_prior=0.0.*positive distance in strides"):
        FCOSHead(32, num_classes=3, strides=STRIDES, bbox_prior=0.0)
