"""The architecture seam: each ``detection_arch`` supplies a head, a criterion and a decoder.

FCOS lives here now; YOLOX plugs in by adding an entry to :data:`ARCHITECTURES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from torch import Tensor, nn

from autotimm.assigners.fcos import FCOSAssigner, default_regress_ranges
from autotimm.losses.fcos import FCOSLoss
from autotimm.losses.registry import build_loss
from autotimm.models.heads.fcos import FCOSHead
from autotimm.ops.coders import DistanceCoder
from autotimm.ops.points import flatten_levels
from autotimm.ops.targets import PaddedTargets


class FCOS(nn.Module):
    """FCOS: head, criterion and decoding for one detector."""

    name = "fcos"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        strides: Sequence[int],
        num_convs: int,
        cls_loss: nn.Module,
        reg_loss: nn.Module,
        weights: tuple[float, float, float],
        regress_ranges: Sequence[tuple[float, float]] | None,
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.head = FCOSHead(in_channels, num_classes, strides, num_convs)
        ranges = regress_ranges if regress_ranges is not None else default_regress_ranges(self.strides)
        self.assigner = FCOSAssigner(ranges)
        self.criterion = FCOSLoss(cls_loss, reg_loss, *weights)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        return self.head(feats)

    def loss(self, outputs: tuple[list[Tensor], ...], points: Tensor, level: Tensor, targets: PaddedTargets) -> dict[str, Tensor]:
        cls, reg, ctr = (flatten_levels(o) for o in outputs)  # [B, P, K], [B, P, 4], [B, P, 1]
        assigned = self.assigner(points, level, self.strides, targets)
        return self.criterion(cls, reg, ctr[..., 0], points, assigned)

    def decode(self, outputs: tuple[list[Tensor], ...], points: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs -> (scores Tensor[B, P, K] in [0, 1], boxes Tensor[B, P, 4] input frame)."""
        cls, reg, ctr = (flatten_levels(o).float() for o in outputs)
        scores = (cls.sigmoid() * ctr.sigmoid()).sqrt()  # geometric mean, as in torchvision's FCOS
        return scores, DistanceCoder.decode(reg, points)


LOSS_NAMES = ("loss", "cls_loss", "reg_loss", "centerness_loss", "obj_loss", "l1_loss")  # logged when present


@dataclass(frozen=True)
class ArchSpec:
    build: Callable[..., nn.Module]
    default_cls_loss: str
    default_reg_loss: str


def _yolox(*args: object) -> nn.Module:
    from autotimm.models.yolox import YOLOX  # imported on use: autotimm.models.yolox imports this module

    return YOLOX(*args)


ARCHITECTURES: dict[str, ArchSpec] = {"fcos": ArchSpec(FCOS, "focal", "giou"), "yolox": ArchSpec(_yolox, "bce", "iou")}


def build_arch(
    name: str,
    in_channels: int,
    num_classes: int,
    strides: Sequence[int],
    num_convs: int,
    cls_loss_fn: str | nn.Module | None,
    reg_loss_fn: str | nn.Module | None,
    focal_alpha: float,
    focal_gamma: float,
    weights: tuple[float, float, float],
    regress_ranges: Sequence[tuple[float, float]] | None,
) -> nn.Module:
    spec = ARCHITECTURES.get(name)
    if spec is None:
        raise ValueError(f"Unknown detection_arch '{name}'. Valid: {', '.join(sorted(ARCHITECTURES))}.")
    cls_loss = build_loss(cls_loss_fn, "cls", spec.default_cls_loss, alpha=focal_alpha, gamma=focal_gamma)
    reg_loss = build_loss(reg_loss_fn, "reg", spec.default_reg_loss)
    return spec.build(in_channels, num_classes, strides, num_convs, cls_loss, reg_loss, weights, regress_ranges)
