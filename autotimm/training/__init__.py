"""Training: AutoTrainer (Lightning's Trainer with detection defaults)."""

from autotimm.training.runs import latest_checkpoint
from autotimm.training.trainer import AutoTrainer

__all__ = ["AutoTrainer", "latest_checkpoint"]
