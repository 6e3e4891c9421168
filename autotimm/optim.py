"""Optimizers and learning-rate schedulers by name, stepping per EPOCH unless asked otherwise."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
SCHEDULERS = ("cosine", "multistep", "step", "onecycle", "plateau", "none")


def _optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    attr = OPTIMIZERS.get(name.lower(), name)
    if "." in attr:  # a dotted path such as "torch.optim.NAdam"
        module, _, cls = attr.rpartition(".")
        import importlib

        return getattr(importlib.import_module(module), cls)
    candidates = {n.lower(): n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)}
    cls_name = candidates.get(attr.lower())
    if cls_name is None or not issubclass(getattr(torch.optim, cls_name), torch.optim.Optimizer):
        valid = sorted(set(OPTIMIZERS) | {n for n in candidates.values() if issubclass(getattr(torch.optim, n), torch.optim.Optimizer) and n != "Optimizer"})
        raise ValueError(f"Unknown optimizer '{name}'. Valid: {', '.join(valid)} (or a dict with 'class').")
    return getattr(torch.optim, cls_name)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters, with no weight decay on norms, biases and scalars (a standard detection recipe)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(spec: str | dict[str, Any], model: nn.Module, lr: float, weight_decay: float, kwargs: dict[str, Any] | None = None) -> torch.optim.Optimizer:
    """``spec``: a name (adamw, adam, sgd, rmsprop, any torch.optim class) or
    ``{"class": name_or_class, "params": {...}}``."""
    kwargs = dict(kwargs or {})
    if isinstance(spec, dict):
        spec = dict(spec)
        cls = spec.pop("class", spec.pop("name", None))
        if cls is None:
            raise ValueError(f"An optimizer dict needs a 'class' key, got keys {sorted(spec)}.")
        kwargs = {**spec.pop("params", {}), **spec, **kwargs}
        optim_cls = cls if isinstance(cls, type) else _optimizer_class(str(cls))
    elif isinstance(spec, str):
        optim_cls = _optimizer_class(spec)
    else:
        raise ValueError(f"optimizer must be a name or a dict, got {type(spec).__name__}.")
    lr = kwargs.pop("lr", lr)
    wd = kwargs.pop("weight_decay", weight_decay)
    groups = param_groups(model, wd)
    if not any(g["params"] for g in groups):
        raise ValueError("No trainable parameters: is everything frozen?")
    return optim_cls(groups, lr=lr, **kwargs)


def build_scheduler(
    spec: str | dict[str, Any] | None,
    optimizer: torch.optim.Optimizer,
    kwargs: dict[str, Any] | None,
    max_epochs: int,
    total_steps: int,
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config dict, or None.

    ``spec`` is a name from :data:`SCHEDULERS` or a dict ``{"name": ..., **kwargs}``. Options taken
    from the kwargs: ``interval`` ("epoch" by default, so ``milestones=[8, 11]`` are epochs; "step"
    counts optimizer steps), ``warmup_epochs`` / ``warmup_steps`` (linear warm-up in the same unit),
    ``warmup_factor`` (start factor, 0.001), ``monitor`` for plateau, ``frequency``.
    """
    kwargs = dict(kwargs or {})
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", spec.pop("scheduler", None))
        kwargs = {**spec, **kwargs}
    else:
        name = spec
    name = "none" if name is None else str(name).lower()
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler '{name}'. Valid: {', '.join(SCHEDULERS)} (or None).")
    if name == "none":
        return None
    interval = kwargs.pop("interval", "step" if name == "onecycle" else "epoch")
    if interval not in ("epoch", "step"):
        raise ValueError(f"scheduler interval must be 'epoch' or 'step', got {interval!r}.")
    warmup = int(kwargs.pop("warmup_epochs" if interval == "epoch" else "warmup_steps", 0))
    kwargs.pop("warmup_steps" if interval == "epoch" else "warmup_epochs", None)
    warmup_factor = float(kwargs.pop("warmup_factor", 1e-3))
    monitor = kwargs.pop("monitor", "val/loss")
    frequency = int(kwargs.pop("frequency", 1))
    horizon = max(1, max_epochs if interval == "epoch" else total_steps)

    if name == "cosine":
        kwargs.setdefault("T_max", max(1, horizon - warmup))
        kwargs.setdefault("eta_min", 0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **kwargs)
    elif name == "multistep":
        kwargs.setdefault("milestones", [math.ceil(horizon * 2 / 3), math.ceil(horizon * 8 / 9)])
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, **kwargs)
    elif name == "step":
        kwargs.setdefault("step_size", max(1, horizon // 3))
        sched = torch.optim.lr_scheduler.StepLR(optimizer, **kwargs)
    elif name == "onecycle":
        kwargs.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
        kwargs.setdefault("total_steps", horizon)
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, **kwargs)
        warmup = 0  # OneCycle has its own warm-up
    else:  # plateau
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
        return {"scheduler": sched, "interval": "epoch", "monitor": monitor, "frequency": frequency}
    if warmup > 0:
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup)
        sched = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, sched], milestones=[warmup])
    return {"scheduler": sched, "interval": interval, "frequency": frequency}


def trainable(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params if p.requires_grad)
