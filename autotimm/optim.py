"""Optimizers and learning-rate schedulers by name; lengths in epochs (default) or steps, stepped per optimizer step."""

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
    *,
    steps_per_epoch: int | None = None,
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config dict, or None.

    ``spec`` is a name from :data:`SCHEDULERS` or a dict ``{"name": ..., **kwargs}``. Options taken
    from the kwargs: ``interval``, the unit of the schedule's lengths ("epoch" by default, so
    ``milestones=[8, 11]`` are epochs; "step" counts optimizer steps); ``warmup_epochs`` (may be a
    fraction such as 0.5) or ``warmup_steps`` (linear warm-up; one of them); ``warmup_factor`` (start
    factor, 0.001); ``monitor`` for plateau; ``frequency``.

    When ``steps_per_epoch`` (optimizer steps per epoch, after gradient accumulation) is known, every
    schedule except "plateau" steps once per optimizer step whatever unit the lengths were given in:
    epochs are multiplied by ``steps_per_epoch``, so a one-epoch warm-up ramps over that epoch's steps
    instead of holding lr x 0.001 for the whole epoch, and the cosine decays smoothly within epochs
    (multistep/step decays still fall on the same epoch boundaries). Without it (a model outside a
    Trainer) epoch lengths step per epoch, and ``warmup_steps`` needs ``interval="step"``.

    Args:
        max_epochs: the horizon in epochs (cosine ``T_max`` and the default milestones).
        total_steps: the horizon in optimizer steps (Lightning's ``estimated_stepping_batches``).
        steps_per_epoch: optimizer steps per epoch, or None when unknown.
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
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be None or an int >= 1, got {steps_per_epoch!r}.")
    unit = kwargs.pop("interval", "step" if name == "onecycle" else "epoch")
    if unit not in ("epoch", "step"):
        raise ValueError(f"scheduler interval must be 'epoch' or 'step', got {unit!r}.")
    warmup_epochs, warmup_steps = kwargs.pop("warmup_epochs", None), kwargs.pop("warmup_steps", None)
    if warmup_epochs is not None and warmup_steps is not None:
        raise ValueError(
            f"scheduler_kwargs has both warmup_epochs={warmup_epochs!r} and warmup_steps={warmup_steps!r}; give one."
        )
    for key, value in (("warmup_epochs", warmup_epochs), ("warmup_steps", warmup_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0):
            raise ValueError(f"scheduler_kwargs {key}={value!r}: expected a number >= 0.")
    warmup_factor = float(kwargs.pop("warmup_factor", 1e-3))
    monitor = kwargs.pop("monitor", "val/loss")
    frequency = int(kwargs.pop("frequency", 1))
    if name == "plateau":  # reacts to a validation metric: per epoch by nature
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
        return {"scheduler": sched, "interval": "epoch", "monitor": monitor, "frequency": frequency}

    per_step = steps_per_epoch is not None or unit == "step"
    # scale: optimizer steps per unit of the user's lengths (1 when the scheduler steps in that unit)
    scale = steps_per_epoch if (unit == "epoch" and steps_per_epoch is not None) else 1
    if warmup_steps is not None and not per_step:
        raise ValueError(
            f"scheduler_kwargs warmup_steps={warmup_steps!r} needs optimizer steps: train the model with a "
            "Trainer (the steps per epoch are then known), or pass interval='step', or use warmup_epochs."
        )
    if warmup_steps is not None:
        warmup = int(round(warmup_steps))
    elif warmup_epochs is not None:
        warmup = int(round(warmup_epochs * (steps_per_epoch if per_step and steps_per_epoch else 1)))
    else:
        warmup = 0
    horizon = max(1, total_steps if per_step else max_epochs)  # in the scheduler's own steps

    if name == "cosine":
        kwargs["T_max"] = kwargs["T_max"] * scale if "T_max" in kwargs else max(1, horizon - warmup)
        kwargs.setdefault("eta_min", 0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, **kwargs)
    elif name == "multistep":
        if "milestones" in kwargs:
            kwargs["milestones"] = [int(m) * scale for m in kwargs["milestones"]]
        else:
            epochs_or_steps = max_epochs if (unit == "epoch") else horizon
            kwargs["milestones"] = [math.ceil(epochs_or_steps * 2 / 3) * scale, math.ceil(epochs_or_steps * 8 / 9) * scale]
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, **kwargs)
    elif name == "step":
        if "step_size" in kwargs:
            kwargs["step_size"] = int(kwargs["step_size"]) * scale
        else:
            kwargs["step_size"] = max(1, (max_epochs if unit == "epoch" else horizon) // 3) * scale
        sched = torch.optim.lr_scheduler.StepLR(optimizer, **kwargs)
    else:  # onecycle
        kwargs.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
        kwargs.setdefault("total_steps", total_steps if per_step else max_epochs)
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, **kwargs)
        warmup = 0  # OneCycle has its own warm-up
    if warmup > 0:
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup)
        sched = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, sched], milestones=[warmup])
    return {"scheduler": sched, "interval": "step" if per_step else "epoch", "frequency": frequency}


def trainable(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params if p.requires_grad)
