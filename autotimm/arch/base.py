"""The architecture interface: what a dense detection architecture supplies to ``ObjectDetector``.

The detector owns the backbone and the FPN; an architecture owns everything after the pyramid:
its head, its target assignment and loss, and the decoding of raw outputs into boxes. It is a
:class:`DenseArchitecture` with three hooks, each over the same per-level outputs:

* ``forward(feats) -> (cls, reg, quality)``: three lists over pyramid levels, class logits
  Tensor[B, K, H_l, W_l], box regression Tensor[B, 4, H_l, W_l] (its meaning is the architecture's box
  coder) and one quality logit Tensor[B, 1, H_l, W_l] whose meaning :attr:`~DenseArchitecture.quality`
  names (FCOS: centerness, YOLOX: objectness);
* ``loss(outputs, points, level, targets) -> dict`` with at least ``loss`` (the weighted total);
* ``decode(outputs, points) -> (scores [B, P, K] in [0, 1], boxes [B, P, 4] x1y1x2y2)``, traceable.

Naming of tensor dims: B images, K classes, L levels, P points over all levels (level by level,
row-major; see :mod:`autotimm.ops.points`), G ground-truth boxes per image (padded). Every box is in
the input frame (pixels of the letterboxed tensor). Constructors are keyword-only; adding an
architecture is one module with its subclass and one line in :mod:`autotimm.arch.registry` (or a
call to :func:`~autotimm.arch.registry.register_architecture`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

from torch import Tensor, nn

from autotimm.models.heads.layers import HeadConv, check_head_conv
from autotimm.ops.targets import PaddedTargets

RawOutputs = tuple[list[Tensor], list[Tensor], list[Tensor]]  # (cls, reg, quality), each a list over levels

# Keys a loss dict may hold; the detector logs those present as <stage>/<key>.
LOSS_NAMES = ("loss", "cls_loss", "reg_loss", "centerness_loss", "obj_loss", "l1_loss")


@dataclass(frozen=True)
class LossWeights:
    """Weights of an architecture's three loss terms, by meaning rather than position.

    Attributes:
        cls: classification (``cls_loss_weight``).
        box: box regression (``reg_loss_weight``).
        quality: the third output's loss (``centerness_loss_weight``): centerness for FCOS,
            objectness for YOLOX (see the architecture's ``quality``).
    """

    cls: float = 1.0
    box: float = 1.0
    quality: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cls", "box", "quality"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"LossWeights({name}={value!r}): expected a float >= 0.")


class DenseArchitecture(nn.Module, ABC):
    """Base class of a dense (one prediction per feature-map point) detection architecture.

    Subclasses set the class attributes, build their head, assigner and criterion in ``__init__``
    (after ``super().__init__(**common)``) and implement the three hooks of the module docstring.

    Args (keyword-only):
        in_channels: channels of every pyramid level (``fpn_channels``).
        num_classes: number of object classes (no background class).
        strides: stride of each pyramid level.
        num_convs: conv layers per head tower (``head_num_convs``).
        head_conv: what each head tower layer is, "dense" (3x3 conv) or "depthwise" (depthwise 3x3 +
            pointwise 1x1, see :mod:`autotimm.models.heads.layers`); must be one of :attr:`head_convs`.
        cls_loss / reg_loss: elementwise loss modules, resolved by the registry from
            ``cls_loss_fn`` / ``reg_loss_fn`` (defaults: the class's ``default_*_loss``).
        weights: the three loss weights.
        regress_ranges: per-level box-size ranges, for architectures that assign levels by size
            (``accepts_regress_ranges``); must be None for the others.

    Class attributes:
        name: the ``detection_arch`` string.
        quality: what the third output scores, e.g. "centerness" or "objectness".
        output_prefixes: ONNX output name prefixes of the three outputs, e.g. ("cls", "reg", "ctr").
        default_cls_loss / default_reg_loss: registered loss names used when none is given.
        accepts_regress_ranges: whether ``regress_ranges`` means something here.
        head_convs: the ``head_conv`` values its head builds (default: "dense" only).
    """

    name: ClassVar[str]
    quality: ClassVar[str]
    output_prefixes: ClassVar[tuple[str, str, str]]
    default_cls_loss: ClassVar[str]
    default_reg_loss: ClassVar[str]
    accepts_regress_ranges: ClassVar[bool] = False
    head_convs: ClassVar[tuple[str, ...]] = ("dense",)

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        strides: Sequence[int],
        num_convs: int,
        cls_loss: nn.Module,
        reg_loss: nn.Module,
        weights: LossWeights = LossWeights(),
        regress_ranges: Sequence[tuple[float, float]] | None = None,
        head_conv: HeadConv = "dense",
    ) -> None:
        super().__init__()
        check_head_conv(head_conv, type(self).__name__)
        if head_conv not in self.head_convs:
            raise ValueError(
                f"ObjectDetector(detection_arch={self.name!r}, head_conv={head_conv!r}): the {self.name!r} head has no "
                f"{head_conv!r} variant; it builds head_conv in {list(self.head_convs)}."
            )
        if regress_ranges is not None and not self.accepts_regress_ranges:
            raise ValueError(
                f"ObjectDetector(detection_arch={self.name!r}, regress_ranges={regress_ranges!r}): regress_ranges is an "
                f"FCOS setting (levels chosen by box size); {self.name!r} picks the level of every box itself. Leave it None."
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.weights = weights
        self.head_conv = head_conv

    @abstractmethod
    def forward(self, feats: Sequence[Tensor]) -> RawOutputs:
        """Pyramid levels Tensor[B, C, H_l, W_l] -> raw ``(cls, reg, quality)`` lists over levels."""

    @abstractmethod
    def loss(self, outputs: RawOutputs, points: Tensor, level: Tensor, targets: PaddedTargets) -> dict[str, Tensor]:
        """Losses of one batch: ``loss`` (weighted total) and the named terms of :data:`LOSS_NAMES`.

        Args:
            outputs: :meth:`forward`'s lists; points: Tensor[P, 2] cell centres (input frame);
            level: int64[P] level of each point; targets: ground truth padded to [B, G, ...].
        """

    @abstractmethod
    def decode(self, outputs: RawOutputs, points: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs -> (scores Tensor[B, P, K] in [0, 1], boxes Tensor[B, P, 4] x1y1x2y2, input frame).

        Must trace for ONNX (no data-dependent Python control flow) and use no learned weights.
        """
