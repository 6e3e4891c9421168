"""A registry of named losses, so ``cls_loss_fn="focal"`` and ``reg_loss_fn="giou"`` work by name.

Classification losses map ``(logits Tensor[N, K], targets Tensor[N, K]) -> Tensor[N, K]``; regression
losses map ``(pred_boxes Tensor[N, 4], target_boxes Tensor[N, 4]) -> Tensor[N]`` (x1y1x2y2). A
registered or user-given module may also return a scalar (already summed); the criterion then
uses it as the sum.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Literal

from torch import nn

from autotimm.losses import functional as L

LossKind = Literal["cls", "reg"]
_REGISTRY: dict[LossKind, dict[str, Callable[..., nn.Module]]] = {
    "cls": {"focal": L.FocalLoss, "bce": L.BCELoss},
    "reg": {
        "giou": L.GIoULoss,
        "iou": L.IoULoss,
        "diou": L.DIoULoss,
        "ciou": L.CIoULoss,
        "l1": L.L1Loss,
        "smooth_l1": L.SmoothL1Loss,
    },
}


def register_loss(name: str, factory: Callable[..., nn.Module] | None = None, *, kind: LossKind = "reg", overwrite: bool = False):
    """Register a loss class or factory under ``name``; usable as a decorator.

    Example:
        >>> @register_loss("my_l1", kind="reg")
        ... class MyL1(nn.Module):
        ...     def forward(self, pred, target):
        ...         return (pred - target).abs().sum(-1)
    """
    if kind not in _REGISTRY:
        raise ValueError(f"kind must be one of {sorted(_REGISTRY)}, got {kind!r}.")

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(fn):
            raise TypeError(f"A loss factory must be callable, got {type(fn).__name__}.")
        if name in _REGISTRY[kind] and not overwrite:
            raise ValueError(f"A {kind} loss named '{name}' is already registered; pass overwrite=True to replace it.")
        _REGISTRY[kind][name] = fn
        return fn

    return add(factory) if factory is not None else add


def list_losses(kind: LossKind | None = None) -> list[str]:
    """Registered loss names, of one kind ("cls" or "reg") or all."""
    kinds = [kind] if kind else list(_REGISTRY)
    return sorted(name for k in kinds for name in _REGISTRY[k])


def build_loss(spec: str | nn.Module | None, kind: LossKind, default: str, **defaults: Any) -> nn.Module:
    """Resolve ``spec`` (a registered name, an ``nn.Module``, or None for ``default``) to a module.

    ``defaults`` (e.g. focal alpha/gamma) are passed to the factory when its signature takes them.
    """
    if isinstance(spec, nn.Module):
        return spec
    name = default if spec is None else spec
    if not isinstance(name, str):
        raise TypeError(
            f"{kind}_loss_fn must be a registered name, an nn.Module or None; got {type(spec).__name__}."
        )
    factory = _REGISTRY[kind].get(name.lower())
    if factory is None:
        raise ValueError(f"Unknown {kind} loss '{name}'. Registered {kind} losses: {list_losses(kind)}.")
    try:
        params = inspect.signature(factory).parameters
        accepted = {k: v for k, v in defaults.items() if k in params}
    except (TypeError, ValueError):
        accepted = {}
    return factory(**accepted)
