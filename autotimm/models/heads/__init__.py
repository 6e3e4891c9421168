"""Detection heads, one module per architecture, and the layers they share (:mod:`.layers`)."""

from autotimm.models.heads.fcos import FCOSHead
from autotimm.models.heads.layers import HEAD_CONVS, HeadConv, depthwise_separable

__all__ = ["FCOSHead", "HEAD_CONVS", "HeadConv", "depthwise_separable"]
