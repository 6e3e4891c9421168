"""YOLOX for ``ObjectDetector(detection_arch="yolox")``: head, SimOTA criterion and decoding.

Registered in :data:`autotimm.models.arch.ARCHITECTURES`; the detector builds the backbone and FPN
and hands this module the pyramid levels.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from autotimm.assigners.simota import SimOTAAssigner
from autotimm.losses.yolox import YOLOXLoss
from autotimm.models.heads.yolox import YOLOXHead
from autotimm.ops.coders import OffsetLogSizeCoder
from autotimm.ops.points import flatten_levels, point_strides
from autotimm.ops.targets import PaddedTargets


class YOLOX(nn.Module):
    """YOLOX (Ge et al. 2021): decoupled per-level head, SimOTA assignment, objectness.

    Args:
        in_channels: FPN channels (``fpn_channels``), also the head's width.
        num_classes: number of object classes.
        strides: stride of each pyramid level.
        num_convs: convs per tower (``head_num_convs``).
        cls_loss / reg_loss: built from ``cls_loss_fn`` (default "bce") / ``reg_loss_fn`` (default "iou").
        weights: ``(cls_loss_weight, reg_loss_weight, centerness_loss_weight)``, mapped to
            classification, box (x 5.0, YOLOX's scale) and objectness; see :class:`YOLOXLoss`.
        regress_ranges: FCOS-only; must be None (SimOTA chooses the level of each box itself).

    Attributes:
        use_l1: add the L1 loss on raw offsets (switched on for the last epochs by
            :class:`autotimm.callbacks.yolox.YOLOXLastEpochs`).
    """

    name = "yolox"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        strides: Sequence[int],
        num_convs: int,
        cls_loss: nn.Module,
        reg_loss: nn.Module,
        weights: tuple[float, float, float],
        regress_ranges: Sequence[tuple[float, float]] | None = None,
    ) -> None:
        super().__init__()
        if regress_ranges is not None:
            raise ValueError(
                f"ObjectDetector(detection_arch='yolox', regress_ranges={regress_ranges!r}): regress_ranges is an "
                "FCOS setting; YOLOX's SimOTA picks the level of every box from its cost. Leave it None."
            )
        self.strides = tuple(strides)
        self.head = YOLOXHead(in_channels, num_classes, self.strides, num_convs)
        self.coder = OffsetLogSizeCoder()
        self.assigner = SimOTAAssigner()
        self.criterion = YOLOXLoss(cls_loss, reg_loss, *weights, coder=self.coder)
        self.use_l1 = False

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per-level ``(cls, reg, obj)``: class logits Tensor[B, K, H_l, W_l], raw
        ``(dx, dy, log_w, log_h)`` Tensor[B, 4, H_l, W_l] and objectness logits Tensor[B, 1, H_l, W_l].

        The reference API returns None as the third element for YOLOX; this one returns the
        objectness logits, which :meth:`decode` needs.
        """
        return self.head(feats)

    def loss(self, outputs: tuple[list[Tensor], ...], points: Tensor, level: Tensor, targets: PaddedTargets) -> dict[str, Tensor]:
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

    def decode(self, outputs: tuple[list[Tensor], ...], points: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs -> (scores Tensor[B, P, K] = sigmoid(cls) * sigmoid(obj), boxes Tensor[B, P, 4]
        x1y1x2y2 in the input frame)."""
        cls, reg, obj = (flatten_levels(o).float() for o in outputs)
        scores = cls.sigmoid() * obj.sigmoid()  # [B, P, K] * [B, P, 1]
        return scores, self.coder.decode(reg, points, point_strides(outputs[0], self.strides))
