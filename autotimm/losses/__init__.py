"""Losses: elementwise building blocks, a registry, and the per-architecture criteria."""

from autotimm.losses.registry import build_loss, list_losses, register_loss

__all__ = ["build_loss", "list_losses", "register_loss"]
