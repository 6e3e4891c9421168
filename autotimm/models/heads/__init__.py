"""Detection heads, one module per architecture."""

from autotimm.models.heads.fcos import FCOSHead

__all__ = ["FCOSHead"]
