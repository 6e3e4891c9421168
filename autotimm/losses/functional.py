"""Elementwise detection losses (no reduction); torchvision.ops wherever it has them."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss, sigmoid_focal_loss

from autotimm.ops.boxes import aligned_box_iou


def summed(loss: Tensor) -> Tensor:
    """The sum of a loss: registered losses return per-element values, user modules may return a
    scalar that is already summed."""
    return loss if loss.ndim == 0 else loss.sum()


class FocalLoss(nn.Module):
    """Sigmoid focal loss (Lin et al. 2017), per element.

    forward(logits Tensor[N, K], targets Tensor[N, K] in [0, 1]) -> Tensor[N, K].
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if not (alpha < 0 or 0 <= alpha <= 1):
            raise ValueError(f"focal_alpha must be in [0, 1] (or negative to disable), got {alpha}.")
        if gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {gamma}.")
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return sigmoid_focal_loss(logits.float(), targets.float(), alpha=self.alpha, gamma=self.gamma, reduction="none")


class BCELoss(nn.Module):
    """Binary cross-entropy on logits, per element: forward(logits, targets) -> same shape."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")


class _BoxLoss(nn.Module):
    """Base for box losses: forward(pred Tensor[N, 4], target Tensor[N, 4]) x1y1x2y2 -> Tensor[N]."""


class IoULoss(_BoxLoss):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return 1.0 - aligned_box_iou(pred.float(), target.float())


class GIoULoss(_BoxLoss):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return generalized_box_iou_loss(pred.float(), target.float(), reduction="none", eps=1e-7)


class DIoULoss(_BoxLoss):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return distance_box_iou_loss(pred.float(), target.float(), reduction="none", eps=1e-7)


class CIoULoss(_BoxLoss):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return complete_box_iou_loss(pred.float(), target.float(), reduction="none", eps=1e-7)


class L1Loss(_BoxLoss):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred.float() - target.float()).abs().sum(dim=-1)


class SmoothL1Loss(_BoxLoss):
    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred.float(), target.float(), beta=self.beta, reduction="none").sum(dim=-1)
