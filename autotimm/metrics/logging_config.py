"""Training diagnostics the detector can log: learning rate, gradient norm, weight norm.

How ``ObjectDetector`` uses it (``cfg = self.logging_config``)::

    def training_step(self, batch, batch_idx):
        ...
        if cfg.log_learning_rate:
            self.log("train/lr", learning_rate(self.optimizers()), on_step=True, on_epoch=False)

    def on_before_optimizer_step(self, optimizer):
        # gradients are unscaled (AMP) and not yet clipped here
        if cfg.log_gradient_norm:
            self.log("train/grad_norm", gradient_norm(self, cfg.norm_type), on_step=True)
        if cfg.log_weight_norm:
            self.log("train/weight_norm", weight_norm(self, cfg.norm_type), on_step=True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class LoggingConfig:
    """Which training diagnostics to log.

    Args:
        log_learning_rate: Log ``train/lr``, the learning rate of the first parameter group.
        log_gradient_norm: Log ``train/grad_norm``, the total norm of all gradients before the
            optimizer step (before gradient clipping).
        log_weight_norm: Log ``train/weight_norm``, the total norm of all parameters.
        norm_type: Order of the norms: a positive number (2.0 = Euclidean) or ``math.inf``.

    Raises:
        ValueError: A flag is not a bool, or ``norm_type`` is not positive.

    Example:
        >>> cfg = LoggingConfig(log_gradient_norm=True)
        >>> cfg.log_learning_rate, cfg.norm_type
        (True, 2.0)
    """

    log_learning_rate: bool = True
    log_gradient_norm: bool = False
    log_weight_norm: bool = False
    norm_type: float = 2.0

    def __post_init__(self) -> None:
        for flag in ("log_learning_rate", "log_gradient_norm", "log_weight_norm"):
            value = getattr(self, flag)
            if not isinstance(value, bool):
                raise ValueError(f"LoggingConfig.{flag} must be True or False, got {value!r}.")
        norm = self.norm_type
        if isinstance(norm, bool) or not isinstance(norm, (int, float)) or not norm > 0:
            raise ValueError(
                f"LoggingConfig.norm_type must be a positive number or math.inf, got {norm!r}."
            )
        self.norm_type = float(norm)


def _params(module: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    return list(module.parameters() if isinstance(module, nn.Module) else module)


@torch.no_grad()
def gradient_norm(module: nn.Module | Iterable[Tensor], norm_type: float = 2.0) -> Tensor:
    """Total norm of the gradients of all parameters that have one.

    The norm of the per-parameter norms, i.e. the norm of all gradients concatenated (what
    ``clip_grad_norm_`` measures). Parameters without ``.grad`` (frozen, unused) are skipped.

    Args:
        module: A module or an iterable of parameters.
        norm_type: Positive order or ``math.inf``.

    Returns:
        0-d float32 tensor on the gradients' device; 0 when no parameter has a gradient.

    Example:
        >>> w = nn.Parameter(torch.zeros(2)); w.grad = torch.tensor([3.0, 4.0])
        >>> gradient_norm([w])
        tensor(5.)
    """
    grads = [p.grad for p in _params(module) if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads, norm_type).float()


@torch.no_grad()
def weight_norm(module: nn.Module | Iterable[Tensor], norm_type: float = 2.0) -> Tensor:
    """Total norm of all parameters (frozen ones included), as one concatenated vector.

    Args:
        module: A module or an iterable of parameters.
        norm_type: Positive order or ``math.inf``.

    Returns:
        0-d float32 tensor; 0 for a module without parameters.
    """
    return torch.nn.utils.get_total_norm([p.detach() for p in _params(module)], norm_type).float()


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """Learning rate of the optimizer's first parameter group (what ``train/lr`` logs).

    Accepts Lightning's ``LightningOptimizer`` wrapper too.

    Raises:
        ValueError: The optimizer has no parameter groups.
    """
    groups = getattr(optimizer, "param_groups", None)
    if not groups:
        raise ValueError(
            f"learning_rate: {type(optimizer).__name__} has no param_groups; "
            "pass a torch optimizer."
        )
    lr = groups[0]["lr"]
    return float(lr.item() if isinstance(lr, Tensor) else lr)
