"""YOLOX head: decoupled per level, objectness, GroupNorm that works on 1x1 maps with batch 1, dense or DWConv towers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autotimm.models.heads.yolox import YOLOXHead


def test_head_is_decoupled_per_level_with_objectness():
    head = YOLOXHead(16, num_classes=5, strides=(8, 16), num_convs=3)
    feats = [torch.randn(2, 16, 8, 10), torch.randn(2, 16, 4, 5)]
    cls, reg, obj = head(feats)
    assert [tuple(c.shape) for c in cls] == [(2, 5, 8, 10), (2, 5, 4, 5)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 10), (2, 4, 4, 5)]
    assert [tuple(o.shape) for o in obj] == [(2, 1, 8, 10), (2, 1, 4, 5)]
    assert len(head.levels) == 2 and head.levels[0].stem is not head.levels[1].stem  # no sharing
    level = head.levels[0]
    assert level.stem[0].kernel_size == (1, 1)
    assert sum(isinstance(m, nn.Conv2d) for m in level.cls_convs.modules()) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in level.reg_convs.modules()) == 3
    prior = -math.log(99)  # logit of 0.01
    assert torch.allclose(level.cls_pred.bias, torch.full((5,), prior))
    assert level.obj_pred.bias.item() == pytest.approx(prior)
    with pytest.raises(ValueError, match=r"2 levels .* got 1 feature maps"):
        head(feats[:1])


@pytest.mark.parametrize("head_conv", ["dense", "depthwise"])
def test_head_handles_one_by_one_maps_and_batch_one(head_conv):
    head = YOLOXHead(8, num_classes=2, strides=(32,), num_convs=2, head_conv=head_conv).train()
    cls, reg, obj = head([torch.randn(1, 8, 1, 1)])  # BatchNorm would fail here
    assert torch.isfinite(cls[0]).all() and torch.isfinite(reg[0]).all() and torch.isfinite(obj[0]).all()


def test_depthwise_towers_use_yolox_dwconv_and_keep_stem_and_predictions():
    dense = YOLOXHead(16, num_classes=5, strides=(8, 16), num_convs=2)
    dw = YOLOXHead(16, num_classes=5, strides=(8, 16), num_convs=2, head_conv="depthwise")
    level = dw.levels[0]
    for tower in (level.cls_convs, level.reg_convs):
        assert len(tower) == 2  # one DWConv pair per dense 3x3 layer
        for layer in tower:
            assert [type(m) for m in layer] == [nn.Conv2d, nn.GroupNorm, nn.SiLU] * 2
            assert [(m.kernel_size, m.groups) for m in layer if isinstance(m, nn.Conv2d)] == [((3, 3), 16), ((1, 1), 1)]
    assert level.stem[0].kernel_size == (1, 1) and level.cls_pred.kernel_size == (1, 1)
    # per layer: dense 16*16*9 + GroupNorm 32; depthwise 16*9 + 16*16 + two GroupNorms 64
    assert sum(p.numel() for p in dense.levels[0].cls_convs.parameters()) == 2 * 2336
    assert sum(p.numel() for p in level.cls_convs.parameters()) == 2 * 464
    cls, reg, obj = dw([torch.randn(2, 16, 8, 10), torch.randn(2, 16, 4, 5)])
    assert [tuple(c.shape) for c in cls] == [(2, 5, 8, 10), (2, 5, 4, 5)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 10), (2, 4, 4, 5)]
    assert [tuple(o.shape) for o in obj] == [(2, 1, 8, 10), (2, 1, 4, 5)]
    with pytest.raises(ValueError, match=r"YOLOXHead\(head_conv='dw'\)"):
        YOLOXHead(16, num_classes=5, strides=(8,), head_conv="dw")


def test_dense_keeps_its_checkpoint_keys():
    keys = [k for k in YOLOXHead(8, num_classes=2, strides=(8,), num_convs=1).state_dict() if "convs" in k]
    assert keys == [f"levels.0.{t}.0.{i}.{p}" for t in ("cls_convs", "reg_convs") for i, p in ((0, "weight"), (1, "weight"), (1, "bias"))]
