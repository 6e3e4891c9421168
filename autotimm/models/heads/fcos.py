"""FCOS head shared across pyramid levels: classification, box distances and centerness."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autotimm.models.heads.layers import HeadConv, check_head_conv, depthwise_separable, group_norm


def conv_tower(channels: int, num_convs: int, head_conv: HeadConv = "dense") -> nn.Sequential:
    """``num_convs`` layers of 3x3 conv + GroupNorm + ReLU ("dense"), or of
    :func:`~autotimm.models.heads.layers.depthwise_separable` with ReLU ("depthwise"), in one flat Sequential."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        if head_conv == "depthwise":
            layers += depthwise_separable(channels, nn.ReLU)
        else:
            layers += [nn.Conv2d(channels, channels, 3, padding=1), group_norm(channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Scale(nn.Module):
    """A learnable scalar per level, so one shared head can regress each level's size range."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class FCOSHead(nn.Module):
    """FCOS head (Tian et al. 2019) with centerness on the regression tower and stride-normalised boxes.

    Args:
        in_channels: channels of every pyramid level (``fpn_channels``).
        num_classes: number of object classes (no background class: sigmoid scores).
        strides: stride of each level; box distances are predicted in units of the stride.
        num_convs: conv + GroupNorm + ReLU layers in each tower (``head_num_convs``).
        head_conv: what each tower layer is (``head_conv``): "dense", a 3x3 conv, or "depthwise", a
            depthwise 3x3 + pointwise 1x1 pair (:func:`~autotimm.models.heads.layers.depthwise_separable`).
            The three prediction convs stay dense 3x3 either way.
        prior_prob: initial foreground probability of the classifier (focal-loss init).
        bbox_prior: initial box distance in strides (bias of the distance conv); must be > 0 so that
            every distance starts on ReLU's live side.
    """

    def __init__(
        self, in_channels: int, num_classes: int, strides: Sequence[int], num_convs: int = 4, prior_prob: float = 0.01,
        bbox_prior: float = 1.0, head_conv: HeadConv = "dense",
    ) -> None:
        super().__init__()
        check_head_conv(head_conv, "FCOSHead")
        if not bbox_prior > 0:
            raise ValueError(f"FCOSHead(bbox_prior={bbox_prior!r}): expected a positive distance in strides, such as 1.0.")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.head_conv = head_conv
        self.cls_subnet = conv_tower(in_channels, num_convs, head_conv)
        self.bbox_subnet = conv_tower(in_channels, num_convs, head_conv)
        self.cls_logits = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in self.strides)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:  # the depthwise-separable layers have none
                    nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        # Start every distance at one stride (a 2-stride box around each point) instead of ~0: with a
        # zero bias, half the outputs sit in ReLU's flat half from the first step, and one early push
        # below zero can kill a distance channel for good (seen with AdamW: the bottom distance stuck
        # at 0 everywhere, mAP50 0.12 instead of 0.5). A positive start also gives GIoU a real box.
        nn.init.constant_(self.bbox_pred.bias, bbox_prior)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per-level raw outputs.

        Args:
            feats: one Tensor[B, C, H_l, W_l] per level.

        Returns:
            (cls, reg, ctr): lists over levels of classification logits Tensor[B, K, H_l, W_l],
            box distances (left, top, right, bottom) in input-frame pixels Tensor[B, 4, H_l, W_l]
            (non-negative), and centerness logits Tensor[B, 1, H_l, W_l].
        """
        cls_out, reg_out, ctr_out = [], [], []
        for feat, scale, stride in zip(feats, self.scales, self.strides):
            cls_feat = self.cls_subnet(feat)
            box_feat = self.bbox_subnet(feat)
            cls_out.append(self.cls_logits(cls_feat))
            reg_out.append(F.relu(scale(self.bbox_pred(box_feat))) * stride)
            ctr_out.append(self.centerness(box_feat))
        return cls_out, reg_out, ctr_out
