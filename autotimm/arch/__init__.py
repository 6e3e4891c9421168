"""Detection architectures after the pyramid: head -> assignment/loss -> decoding, behind one interface.

See :mod:`autotimm.arch.base` for the interface and :mod:`autotimm.arch.registry` to add one.
"""

from autotimm.arch.base import LOSS_NAMES, DenseArchitecture, LossWeights, RawOutputs
from autotimm.arch.fcos import FCOS
from autotimm.arch.registry import ARCHITECTURES, build_arch, get_architecture, register_architecture
from autotimm.arch.yolox import YOLOX

__all__ = [
    "ARCHITECTURES",
    "FCOS",
    "LOSS_NAMES",
    "YOLOX",
    "DenseArchitecture",
    "LossWeights",
    "RawOutputs",
    "build_arch",
    "get_architecture",
    "register_architecture",
]
