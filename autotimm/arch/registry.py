"""Which ``detection_arch`` names exist, and how the detector builds one.

Adding an architecture: write its :class:`~autotimm.arch.base.DenseArchitecture` subclass in one
module and add one line to :data:`ARCHITECTURES` (or call :func:`register_architecture` from your
own code); the detector, the widgets, ONNX export and :class:`~autotimm.export.OnnxDetector` read it
from here.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from autotimm.arch.base import DenseArchitecture, LossWeights
from autotimm.arch.fcos import FCOS
from autotimm.arch.yolox import YOLOX
from autotimm.losses.registry import build_loss
from autotimm.models.heads.layers import HeadConv

ARCHITECTURES: dict[str, type[DenseArchitecture]] = {
    FCOS.name: FCOS,
    YOLOX.name: YOLOX,
}


def register_architecture(arch: type[DenseArchitecture], *, overwrite: bool = False) -> type[DenseArchitecture]:
    """Make ``ObjectDetector(detection_arch=arch.name)`` build ``arch``; usable as a class decorator.

    Example:
        >>> @register_architecture
        ... class MyArch(DenseArchitecture):  # doctest: +SKIP
        ...     name = "mine"
    """
    if not (isinstance(arch, type) and issubclass(arch, DenseArchitecture)):
        raise TypeError(f"register_architecture expects a DenseArchitecture subclass, got {arch!r}.")
    missing = [a for a in ("name", "quality", "output_prefixes", "default_cls_loss", "default_reg_loss") if not hasattr(arch, a)]
    if missing:
        raise TypeError(f"{arch.__name__} must set the class attributes {missing} (see autotimm.arch.base.DenseArchitecture).")
    if arch.name in ARCHITECTURES and ARCHITECTURES[arch.name] is not arch and not overwrite:
        raise ValueError(f"detection_arch {arch.name!r} is already registered ({ARCHITECTURES[arch.name].__name__}); pass overwrite=True.")
    ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: str) -> type[DenseArchitecture]:
    """The registered class for ``name``; an unknown name lists the valid ones."""
    arch = ARCHITECTURES.get(name)
    if arch is None:
        raise ValueError(f"Unknown detection_arch {name!r}. Valid: {', '.join(sorted(ARCHITECTURES))}.")
    return arch


def build_arch(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    strides: Sequence[int],
    num_convs: int,
    cls_loss_fn: str | nn.Module | None = None,
    reg_loss_fn: str | nn.Module | None = None,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    weights: LossWeights = LossWeights(),
    regress_ranges: Sequence[tuple[float, float]] | None = None,
    head_conv: HeadConv = "dense",
) -> DenseArchitecture:
    """Build the registered architecture ``name`` with its losses resolved from the loss registry.

    Args: as :class:`~autotimm.arch.base.DenseArchitecture`, with the losses given as
    ``ObjectDetector`` takes them (a registered name, a module, or None for the architecture's default).
    """
    arch = get_architecture(name)
    cls_loss = build_loss(cls_loss_fn, "cls", arch.default_cls_loss, alpha=focal_alpha, gamma=focal_gamma)
    reg_loss = build_loss(reg_loss_fn, "reg", arch.default_reg_loss)
    return arch(
        in_channels=in_channels, num_classes=num_classes, strides=strides, num_convs=num_convs,
        cls_loss=cls_loss, reg_loss=reg_loss, weights=weights, regress_ranges=regress_ranges, head_conv=head_conv,
    )
