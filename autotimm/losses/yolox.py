"""YOLOX criterion: IoU-aware classification and box loss on SimOTA's foreground, objectness everywhere.

Every term is summed and divided by the number of foreground points of the batch (at least 1), as
YOLOX does. All boxes are in the input frame.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from autotimm.assigners.simota import SimOTATargets
from autotimm.losses.functional import summed
from autotimm.ops.coders import OffsetLogSizeCoder

# YOLOX weighs its IoU loss 5x against classification and objectness; ``reg_loss_weight`` scales on
# top of this, so the reference's default reg_loss_weight=1.0 reproduces YOLOX.
YOLOX_BOX_SCALE = 5.0


class YOLOXLoss(nn.Module):
    """Weighted YOLOX losses.

    Args:
        cls_loss: elementwise classification loss on logits, ``(Tensor[N, K], Tensor[N, K]) -> Tensor[N, K]``
            (default "bce"; targets are soft: one-hot * IoU of the matched prediction).
        reg_loss: box loss on decoded boxes, ``(Tensor[M, 4], Tensor[M, 4]) -> Tensor[M]`` x1y1x2y2
            (default "iou" as in YOLOX; "giou" etc. via ``reg_loss_fn``). The registry's "iou" is
            ``1 - IoU``; YOLOX's own code uses ``1 - IoU**2``.
        cls_weight: weight of the classification loss (``cls_loss_weight``).
        reg_weight: weight of the box loss (``reg_loss_weight``), multiplied by
            :data:`YOLOX_BOX_SCALE` = 5.0.
        obj_weight: weight of the objectness loss (``centerness_loss_weight``: YOLOX has no
            centerness; objectness takes its place).
        l1_weight: weight of the L1 loss on raw offsets, when switched on (YOLOX: 1.0).
        coder: the head's box coder, to encode the L1 loss's targets.
    """

    def __init__(
        self,
        cls_loss: nn.Module,
        reg_loss: nn.Module,
        cls_weight: float = 1.0,
        reg_weight: float = 1.0,
        obj_weight: float = 1.0,
        l1_weight: float = 1.0,
        coder: OffsetLogSizeCoder | None = None,
    ) -> None:
        super().__init__()
        self.coder = coder or OffsetLogSizeCoder()
        self.cls_loss = cls_loss
        self.reg_loss = reg_loss
        self.cls_weight, self.reg_weight, self.obj_weight, self.l1_weight = cls_weight, reg_weight, obj_weight, l1_weight

    def forward(
        self,
        cls_logits: Tensor,
        raw_reg: Tensor,
        obj_logits: Tensor,
        pred_boxes: Tensor,
        points: Tensor,
        stride: Tensor,
        targets: SimOTATargets,
        use_l1: bool = False,
    ) -> dict[str, Tensor]:
        """Compute the losses.

        Args:
            cls_logits: Tensor[B, P, K]; raw_reg: Tensor[B, P, 4] raw ``(dx, dy, log_w, log_h)``;
            obj_logits: Tensor[B, P]; pred_boxes: Tensor[B, P, 4] decoded from ``raw_reg`` (input frame);
            points: Tensor[P, 2] (input frame); stride: Tensor[P]; targets: SimOTA's assignment.
            use_l1: add the L1 loss between raw offsets and the encoded matched boxes (YOLOX's last epochs).

        Returns:
            dict of scalars: ``loss`` (the weighted total), ``cls_loss``, ``reg_loss`` (box loss, before
            weights), ``obj_loss`` (objectness), ``centerness_loss`` (the same objectness value, so the
            reference's logged names hold) and, when ``use_l1``, ``l1_loss``.
        """
        fg = targets.foreground  # [B, P]
        num_fg = fg.sum().clamp(min=1).float()
        num_classes = cls_logits.shape[-1]

        soft = F.one_hot(targets.labels[fg], num_classes).float() * targets.iou[fg][:, None]  # [M, K]
        cls = summed(self.cls_loss(cls_logits[fg].float(), soft)) / num_fg
        reg = summed(self.reg_loss(pred_boxes[fg].float(), targets.boxes[fg])) / num_fg
        keep = ~targets.ignore  # [B, P]
        obj = F.binary_cross_entropy_with_logits(obj_logits[keep].float(), fg[keep].float(), reduction="sum") / num_fg

        total = self.cls_weight * cls + YOLOX_BOX_SCALE * self.reg_weight * reg + self.obj_weight * obj
        out = {"cls_loss": cls, "reg_loss": reg, "obj_loss": obj, "centerness_loss": obj}
        if use_l1:
            b = fg.shape[0]
            fg_points = points[None].expand(b, -1, -1)[fg]  # [M, 2]
            fg_stride = stride[None].expand(b, -1)[fg]  # [M]
            l1_target = self.coder.encode(targets.boxes[fg], fg_points, fg_stride)  # [M, 4]
            l1 = (raw_reg[fg].float() - l1_target).abs().sum() / num_fg
            total = total + self.l1_weight * l1
            out["l1_loss"] = l1
        out["loss"] = total
        return out
