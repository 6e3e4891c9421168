"""FCOS criterion: focal classification over ALL points, box loss on decoded boxes, centerness BCE."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from autotimm.assigners.fcos import FCOSTargets
from autotimm.losses.functional import summed
from autotimm.ops.coders import DistanceCoder


def centerness_target(points: Tensor, boxes: Tensor) -> Tensor:
    """FCOS centerness sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)). [N, 2], [N, 4] -> [N]."""
    ltrb = DistanceCoder.encode(boxes, points)  # [N, 4]
    lr, tb = ltrb[:, 0::2], ltrb[:, 1::2]  # [N, 2] each
    ratio = (lr.amin(1) / lr.amax(1).clamp(min=1e-6)) * (tb.amin(1) / tb.amax(1).clamp(min=1e-6))
    return ratio.clamp(min=0).sqrt()


class FCOSLoss(nn.Module):
    """Weighted FCOS losses, each normalised by the number of positive points.

    Args:
        cls_loss: elementwise classification loss (logits [N, K], targets [N, K]).
        reg_loss: box loss (pred [M, 4], target [M, 4]) on decoded boxes.
        cls_weight / reg_weight / centerness_weight: the reference's loss weights.
    """

    def __init__(self, cls_loss: nn.Module, reg_loss: nn.Module, cls_weight: float = 1.0, reg_weight: float = 1.0, centerness_weight: float = 1.0) -> None:
        super().__init__()
        self.cls_loss = cls_loss
        self.reg_loss = reg_loss
        self.cls_weight, self.reg_weight, self.centerness_weight = cls_weight, reg_weight, centerness_weight

    def forward(self, cls_logits: Tensor, box_dists: Tensor, ctr_logits: Tensor, points: Tensor, targets: FCOSTargets) -> dict[str, Tensor]:
        """Compute the losses.

        Args:
            cls_logits: Tensor[B, P, K]; box_dists: Tensor[B, P, 4] (input-frame pixels);
            ctr_logits: Tensor[B, P]; points: Tensor[P, 2]; targets: assigned per-point targets.

        Returns:
            dict with ``loss`` (weighted total), ``cls_loss``, ``reg_loss``, ``centerness_loss``.
        """
        num_classes = cls_logits.shape[-1]
        positive = targets.positive  # [B, P]
        num_pos = positive.sum().clamp(min=1).float()
        onehot = F.one_hot(targets.labels.clamp(min=0), num_classes).float() * positive[..., None]  # [B, P, K]
        cls_all = self.cls_loss(cls_logits.reshape(-1, num_classes), onehot.reshape(-1, num_classes))
        if cls_all.ndim:
            keep = (~targets.ignore).reshape(-1, *([1] * (cls_all.ndim - 1))).float()
            cls_all = cls_all * keep
        cls = summed(cls_all) / num_pos

        pos_points = points[None].expand(positive.shape[0], -1, -1)[positive]  # [M, 2]
        pos_boxes = DistanceCoder.decode(box_dists[positive].float(), pos_points)  # [M, 4]
        gt_boxes = targets.boxes[positive]  # [M, 4]
        reg = summed(self.reg_loss(pos_boxes, gt_boxes)) / num_pos
        ctr_t = centerness_target(pos_points, gt_boxes)
        ctr = F.binary_cross_entropy_with_logits(ctr_logits[positive].float(), ctr_t, reduction="sum") / num_pos
        total = self.cls_weight * cls + self.reg_weight * reg + self.centerness_weight * ctr
        return {"loss": total, "cls_loss": cls, "reg_loss": reg, "centerness_loss": ctr}
