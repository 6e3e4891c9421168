"""Training: AutoTrainer (Lightning's Trainer with detection defaults)."""

from autotimm.training.trainer import AutoTrainer

__all__ = ["AutoTrainer"]
