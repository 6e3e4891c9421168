"""YOLOX (Ge et al. 2021) as a :class:`~autotimm.arch.base.DenseArchitecture`: decoupled per-level
head with objectness, SimOTA assignment, IoU-aware classification, L1 on raw offsets in the last epochs.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from autotimm.arch.base import DenseArchitecture, RawOutputs
from autotimm.assigners.simota import SimOTAAssigner
from autotimm.losses.yolox import YOLOXLoss
from autotimm.models.heads.layers import HEAD_CONVS
from autotimm.models.heads.yolox import YOLOXHead
from autotimm.ops.coders import OffsetLogSizeCoder
from autotimm.ops.points import flatten_levels, point_strides
from autotimm.ops.targets import PaddedTargets


class YOLOX(DenseArchitecture):
    """YOLOX: :class:`YOLOXHead`, :class:`SimOTAAssigner`, :class:`YOLOXLoss` and offset decoding.

    Keyword arguments as :class:`~autotimm.arch.base.DenseArchitecture`; the weights map to
    classification, box (x 5.0, YOLOX's scale, see :class:`YOLOXLoss`) and objectness
    (``weights.quality``). ``regress_ranges`` must be None (SimOTA chooses the level of each box).
    The regression output is ``(dx, dy, log_w, log_h)`` (:class:`~autotimm.ops.coders.OffsetLogSizeCoder`).

    Attributes:
        use_l1: add the L1 loss on raw offsets (switched on for the last epochs by
            :class:`autotimm.callbacks.yolox.YOLOXLastEpochs`).
    """

    name = "yolox"
    quality = "objectness"
    output_prefixes = ("cls", "reg", "obj")
    default_cls_loss = "bce"
    default_reg_loss = "iou"
    head_convs = HEAD_CONVS

    def __init__(self, **common) -> None:  # noqa: ANN003
        super().__init__(**common)
        self.head = YOLOXHead(self.in_channels, self.num_classes, self.strides, common["num_convs"], head_conv=self.head_conv)
        self.coder = OffsetLogSizeCoder()
        self.assigner = SimOTAAssigner()
        w = self.weights
        self.criterion = YOLOXLoss(
            common["cls_loss"], common["reg_loss"], cls_weight=w.cls, reg_weight=w.box, obj_weight=w.quality, coder=self.coder
        )
        self.use_l1 = False

    def forward(self, feats: Sequence[Tensor]) -> RawOutputs:
        """Per-level ``(cls, reg, obj)``: class logits Tensor[B, K, H_l, W_l], raw
        ``(dx, dy, log_w, log_h)`` Tensor[B, 4, H_l, W_l] and objectness logits Tensor[B, 1, H_l, W_l].

        The reference API returns None as the third element for YOLOX; this one returns the
        objectness logits, which :meth:`decode` needs.
        """
        return self.head(feats)

    def loss(self, outputs: RawOutputs, points: Tensor, level: Tensor, targets: PaddedTargets) -> dict[str, Tensor]:
        """Losses for one batch (input frame); see :class:`YOLOXLoss` for the returned keys.

        Args:
            outputs: :meth:`forward`'s per-level lists.
            points: Tensor[P, 2] cell centres; level: int64[P] level of each point.
            targets: ground truth padded to Tensor[B, G, ...].
        """
        cls, reg, obj = (flatten_levels(o) for o in outputs)  # [B, P, K], [B, P, 4], [B, P, 1]
        stride = torch.as_tensor(self.strides, dtype=torch.float32, device=points.device)[level]  # [P]
        boxes = self.coder.decode(reg.float(), points, stride)  # [B, P, 4]
        assigned = self.assigner(points, stride, cls.detach(), obj[..., 0].detach(), boxes.detach(), targets)
        return self.criterion(cls, reg, obj[..., 0], boxes, points, stride, assigned, use_l1=self.use_l1)

    def decode(self, outputs: RawOutputs, points: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs -> (scores Tensor[B, P, K] = sigmoid(cls) * sigmoid(obj), boxes Tensor[B, P, 4]
        x1y1x2y2 in the input frame)."""
        cls, reg, obj = (flatten_levels(o).float() for o in outputs)
        scores = cls.sigmoid() * obj.sigmoid()  # [B, P, K] * [B, P, 1]
        return scores, self.coder.decode(reg, points, point_strides(outputs[0], self.strides))
