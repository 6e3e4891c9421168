"""The FCOS head: every output starts where its loss has a gradient; dense or depthwise-separable towers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autotimm.models.heads.fcos import FCOSHead

STRIDES = (8, 16, 32)


@pytest.mark.parametrize("head_conv", ["dense", "depthwise"])
def test_every_distance_starts_on_relus_live_side(head_conv):
    # A zero bias leaves half the distances at exactly 0 (ReLU's flat half, no gradient); one early
    # push below zero then kills a channel for good. The positive prior keeps all four alive.
    torch.manual_seed(0)
    head = FCOSHead(32, num_classes=3, strides=STRIDES, num_convs=2, head_conv=head_conv)
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


def test_depthwise_towers_replace_each_3x3_conv_and_keep_the_prediction_convs():
    dense = FCOSHead(32, num_classes=3, strides=STRIDES, num_convs=2)
    dw = FCOSHead(32, num_classes=3, strides=STRIDES, num_convs=2, head_conv="depthwise")
    for tower in (dw.cls_subnet, dw.bbox_subnet):
        assert [type(m) for m in tower] == [nn.Conv2d, nn.GroupNorm, nn.ReLU] * 4
        assert [(m.kernel_size, m.groups) for m in tower if isinstance(m, nn.Conv2d)] == [((3, 3), 32), ((1, 1), 1)] * 2
    for name in ("cls_logits", "bbox_pred", "centerness"):
        assert getattr(dw, name).weight.shape == getattr(dense, name).weight.shape  # dense 3x3, as before
    # per layer: dense 32*32*9 + bias 32 + GroupNorm 64; depthwise 32*9 + 32*32 + two GroupNorms 128
    assert sum(p.numel() for p in dense.cls_subnet.parameters()) == 2 * 9312
    assert sum(p.numel() for p in dw.cls_subnet.parameters()) == 2 * 1440  # 6.5x fewer
    cls, reg, ctr = dw([torch.randn(2, 32, s, s) for s in (16, 8, 4)])
    assert [tuple(t.shape) for t in cls] == [(2, 3, 16, 16), (2, 3, 8, 8), (2, 3, 4, 4)]
    assert [tuple(t.shape) for t in reg] == [(2, 4, 16, 16), (2, 4, 8, 8), (2, 4, 4, 4)]
    assert [tuple(t.shape) for t in ctr] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]


def test_dense_keeps_its_checkpoint_keys():
    # Checkpoints written before head_conv existed must load: the dense tower is the flat conv/GN/ReLU list.
    keys = [k for k in FCOSHead(8, num_classes=2, strides=(8,), num_convs=1).state_dict() if "subnet" in k]
    assert keys == [f"{tower}.{i}.{p}" for tower in ("cls_subnet", "bbox_subnet") for i in (0, 1) for p in ("weight", "bias")]


def test_an_unknown_head_conv_is_refused():
    with pytest.raises(ValueError, match=r"FCOSHead\(head_conv='dw'\): expected one of \['dense', 'depthwise'\]"):
        FCOSHead(8, num_classes=2, strides=(8,), head_conv="dw")
