"""FCOS (Tian et al. 2019) as a :class:`~autotimm.arch.base.DenseArchitecture`: shared head with
centerness, size-range assignment with centre sampling, focal + box + centerness losses."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from autotimm.arch.base import DenseArchitecture, RawOutputs
from autotimm.assigners.fcos import FCOSAssigner, default_regress_ranges
from autotimm.losses.fcos import FCOSLoss
from autotimm.models.heads.fcos import FCOSHead
from autotimm.models.heads.layers import HEAD_CONVS
from autotimm.ops.coders import DistanceCoder
from autotimm.ops.points import flatten_levels
from autotimm.ops.targets import PaddedTargets


class FCOS(DenseArchitecture):
    """FCOS: :class:`FCOSHead`, :class:`FCOSAssigner`, :class:`FCOSLoss` and distance decoding.

    Keyword arguments as :class:`~autotimm.arch.base.DenseArchitecture`; ``regress_ranges`` None
    takes :func:`~autotimm.assigners.fcos.default_regress_ranges` of the strides. The regression
    output is ``(l, t, r, b)`` in input-frame pixels (:class:`~autotimm.ops.coders.DistanceCoder`).
    """

    name = "fcos"
    quality = "centerness"
    output_prefixes = ("cls", "reg", "ctr")
    default_cls_loss = "focal"
    default_reg_loss = "giou"
    accepts_regress_ranges = True
    head_convs = HEAD_CONVS

    def __init__(self, *, regress_ranges: Sequence[tuple[float, float]] | None = None, **common) -> None:  # noqa: ANN003
        super().__init__(regress_ranges=regress_ranges, **common)
        self.head = FCOSHead(self.in_channels, self.num_classes, self.strides, common["num_convs"], head_conv=self.head_conv)
        ranges = regress_ranges if regress_ranges is not None else default_regress_ranges(self.strides)
        self.assigner = FCOSAssigner(ranges)
        w = self.weights
        self.criterion = FCOSLoss(common["cls_loss"], common["reg_loss"], cls_weight=w.cls, reg_weight=w.box, centerness_weight=w.quality)

    def forward(self, feats: Sequence[Tensor]) -> RawOutputs:
        return self.head(feats)

    def loss(self, outputs: RawOutputs, points: Tensor, level: Tensor, targets: PaddedTargets) -> dict[str, Tensor]:
        cls, reg, ctr = (flatten_levels(o) for o in outputs)  # [B, P, K], [B, P, 4], [B, P, 1]
        assigned = self.assigner(points, level, self.strides, targets)
        return self.criterion(cls, reg, ctr[..., 0], points, assigned)

    def decode(self, outputs: RawOutputs, points: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs -> (scores Tensor[B, P, K] in [0, 1], boxes Tensor[B, P, 4] input frame)."""
        cls, reg, ctr = (flatten_levels(o).float() for o in outputs)
        scores = (cls.sigmoid() * ctr.sigmoid()).sqrt()  # geometric mean, as in torchvision's FCOS
        return scores, DistanceCoder.decode(reg, points)
