"""YOLOX decoupled head (Ge et al. 2021): one head per pyramid level, boxes as stride-relative offsets.

The 4 regression channels are ``(dx, dy, log_w, log_h)`` in stride units; their meaning (encode and
decode) is :class:`autotimm.ops.coders.OffsetLogSizeCoder`.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from autotimm.models.heads.layers import HeadConv, check_head_conv, depthwise_separable, group_norm


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv + GroupNorm + SiLU. GroupNorm instead of YOLOX's BatchNorm: a 1x1 top level with batch 1
    has a single value per channel, which BatchNorm cannot normalise in training."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        group_norm(out_channels),
        nn.SiLU(inplace=True),
    )


def tower_layer(channels: int, head_conv: HeadConv) -> nn.Sequential:
    """One tower layer: a 3x3 :func:`conv_norm_act` ("dense") or YOLOX's DWConv pair ("depthwise", see
    :func:`~autotimm.models.heads.layers.depthwise_separable`), both with GroupNorm and SiLU."""
    if head_conv == "depthwise":
        return depthwise_separable(channels, nn.SiLU)
    return conv_norm_act(channels, channels, 3)


class YOLOXLevelHead(nn.Module):
    """The head of one level: 1x1 stem, then a classification tower and a regression tower.

    The regression tower feeds both the box and the objectness predictions, as in YOLOX. Each tower
    layer is a :func:`tower_layer`; the stem and the 1x1 prediction convs are the same for every ``head_conv``.
    """

    def __init__(self, in_channels: int, num_classes: int, num_convs: int, prior_prob: float, head_conv: HeadConv = "dense") -> None:
        super().__init__()
        check_head_conv(head_conv, "YOLOXLevelHead")
        self.stem = conv_norm_act(in_channels, in_channels, 1)
        self.cls_convs = nn.Sequential(*(tower_layer(in_channels, head_conv) for _ in range(num_convs)))
        self.reg_convs = nn.Sequential(*(tower_layer(in_channels, head_conv) for _ in range(num_convs)))
        self.cls_pred = nn.Conv2d(in_channels, num_classes, 1)
        self.reg_pred = nn.Conv2d(in_channels, 4, 1)
        self.obj_pred = nn.Conv2d(in_channels, 1, 1)
        bias = -math.log((1 - prior_prob) / prior_prob)  # every point starts as "1% object"
        nn.init.constant_(self.cls_pred.bias, bias)
        nn.init.constant_(self.obj_pred.bias, bias)
        nn.init.zeros_(self.reg_pred.bias)  # a box of one stride on the point itself

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Tensor[B, C, H, W] -> cls Tensor[B, K, H, W], reg Tensor[B, 4, H, W], obj Tensor[B, 1, H, W]."""
        x = self.stem(feat)
        cls_feat = self.cls_convs(x)
        reg_feat = self.reg_convs(x)
        return self.cls_pred(cls_feat), self.reg_pred(reg_feat), self.obj_pred(reg_feat)


class YOLOXHead(nn.Module):
    """YOLOX decoupled head: an independent :class:`YOLOXLevelHead` for every pyramid level.

    Args:
        in_channels: channels of every pyramid level (``fpn_channels``); also the head's width.
        num_classes: number of object classes (sigmoid scores, no background class).
        strides: stride of each level (one head per level).
        num_convs: 3x3 conv + GroupNorm + SiLU layers in each tower (``head_num_convs``; YOLOX uses 2).
        prior_prob: initial classification and objectness probability.
        head_conv: what each tower layer is (``head_conv``): "dense", a 3x3 conv, or "depthwise",
            YOLOX's DWConv (depthwise 3x3 + pointwise 1x1; see :func:`tower_layer`).

    Example:
        >>> head = YOLOXHead(64, num_classes=3, strides=(8, 16, 32), num_convs=2)
        >>> cls, reg, obj = head([torch.zeros(1, 64, 8, 8), torch.zeros(1, 64, 4, 4), torch.zeros(1, 64, 2, 2)])
        >>> [tuple(c.shape) for c in cls]
        [(1, 3, 8, 8), (1, 3, 4, 4), (1, 3, 2, 2)]
    """

    def __init__(
        self, in_channels: int, num_classes: int, strides: Sequence[int], num_convs: int = 2, prior_prob: float = 0.01,
        head_conv: HeadConv = "dense",
    ) -> None:
        super().__init__()
        check_head_conv(head_conv, "YOLOXHead")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.head_conv = head_conv
        self.levels = nn.ModuleList(YOLOXLevelHead(in_channels, num_classes, num_convs, prior_prob, head_conv) for _ in self.strides)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per-level raw outputs.

        Args:
            feats: one Tensor[B, C, H_l, W_l] per level (as many as ``strides``).

        Returns:
            (cls, reg, obj): lists over levels of classification logits Tensor[B, K, H_l, W_l], raw box
            regression ``(dx, dy, log_w, log_h)`` Tensor[B, 4, H_l, W_l] in stride units (decode with
            :class:`~autotimm.ops.coders.OffsetLogSizeCoder`; input frame after decoding), and objectness logits Tensor[B, 1, H_l, W_l].
        """
        if len(feats) != len(self.levels):
            raise ValueError(f"YOLOXHead has {len(self.levels)} levels (strides {self.strides}) but got {len(feats)} feature maps.")
        outs = [level(feat) for level, feat in zip(self.levels, feats)]
        cls, reg, obj = (list(t) for t in zip(*outs))
        return cls, reg, obj
