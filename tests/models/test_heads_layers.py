"""Layers shared by the heads: the depthwise-separable tower layer (YOLOX's DWConv) and ``head_conv`` checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from autotimm.models.heads import fcos
from autotimm.models.heads.layers import HEAD_CONVS, check_head_conv, depthwise_separable, group_norm
from autotimm.models.heads.yolox import conv_norm_act


def flops(module: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def test_depthwise_separable_is_depthwise_3x3_then_pointwise_1x1():
    block = depthwise_separable(64, nn.SiLU)
    assert [type(m) for m in block] == [nn.Conv2d, nn.GroupNorm, nn.SiLU, nn.Conv2d, nn.GroupNorm, nn.SiLU]
    dw, pw = block[0], block[3]
    assert (dw.kernel_size, dw.groups, dw.padding, dw.bias) == ((3, 3), 64, (1, 1), None)
    assert (pw.kernel_size, pw.groups, pw.bias) == ((1, 1), 1, None)
    assert block[1].num_groups == block[4].num_groups == 32  # group_norm(64)
    assert block[2].inplace and isinstance(depthwise_separable(8, nn.ReLU)[5], nn.ReLU)
    x = torch.randn(2, 64, 5, 7)
    assert block(x).shape == (2, 64, 5, 7)


def test_depthwise_separable_costs_about_an_eighth_of_a_dense_3x3():
    dense, dw = conv_norm_act(64, 64, 3), depthwise_separable(64, nn.SiLU)
    # dense: 64 * 64 * 9 weights + GroupNorm 2 * 64; depthwise: 64 * 9 + 64 * 64 weights + two GroupNorms
    assert sum(p.numel() for p in dense.parameters()) == 36864 + 128
    assert sum(p.numel() for p in dw.parameters()) == 576 + 4096 + 2 * 128
    x = torch.randn(1, 64, 8, 8)  # 64 points; a multiply-add counts 2
    assert flops(dense, x) == 2 * 64 * 64 * 9 * 64
    assert flops(dw, x) == 2 * 64 * 9 * 64 + 2 * 64 * 64 * 64  # 7.9x fewer


def test_head_conv_values_and_refusal():
    assert HEAD_CONVS == ("dense", "depthwise")
    for value in HEAD_CONVS:
        check_head_conv(value, "FCOSHead")
    for bad in ("separable", "Depthwise", None, 1):
        with pytest.raises(ValueError, match=rf"FCOSHead\(head_conv={bad!r}\): expected one of \['dense', 'depthwise'\]"):
            check_head_conv(bad, "FCOSHead")


def test_group_norm_still_importable_from_the_fcos_head():
    assert fcos.group_norm is group_norm
    assert group_norm(48).num_groups == 16 and group_norm(2).num_groups == 1
