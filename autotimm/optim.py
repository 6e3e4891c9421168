"""Optimizers and learning-rate schedulers by name; lengths in epochs (default) or steps, stepped per optimizer step."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

OPTIMIZERS = {"adamw": "AdamW", "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
SCHEDULERS = ("cosine", "multistep", "step", "onecycle", "plateau", "none")
SCHEDULE_FORMAT = 2
"""Unit of the scheduler state in autotimm's checkpoints, kept as ``checkpoint["autotimm"]["schedule_format"]``.

1 (checkpoints without the key): schedules with lengths in epochs stepped once per epoch, so their
state counts epochs. 2: every schedule except "plateau" steps once per optimizer step (see
:func:`build_scheduler`), so the state counts optimizer steps. :func:`resume_scheduler_state` converts 1.
"""


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


def _split_spec(spec: str | dict[str, Any] | None, kwargs: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """(lower-case scheduler name, its options) from a name or ``{"name": ..., **options}`` plus ``kwargs``."""
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
    return name, kwargs


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
    name, kwargs = _split_spec(spec, kwargs)
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


@dataclass(frozen=True)
class ScheduleArgs:
    """What :func:`build_scheduler` was given inside a fit, to build the same schedule again.

    Attributes:
        spec / kwargs: the scheduler name or dict and its options.
        lrs: the optimizer's lr per param group before the scheduler changed them.
        max_epochs / total_steps / steps_per_epoch: the fit's horizon and optimizer steps per epoch.
    """

    spec: str | dict[str, Any] | None
    kwargs: dict[str, Any] | None
    lrs: tuple[float, ...]
    max_epochs: int
    total_steps: int
    steps_per_epoch: int | None


class _ScratchOptimizer(torch.optim.Optimizer):
    """An optimizer over throw-away parameters with another optimizer's defaults (momentum or betas, which
    OneCycleLR cycles); its step changes nothing. Lets a schedule be replayed without touching a model."""

    def __init__(self, lrs: Iterable[float], defaults: dict[str, Any]) -> None:
        groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
        super().__init__(groups, dict(defaults))

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        return None


def _replay(args: ScheduleArgs, defaults: dict[str, Any], steps: int, steps_per_epoch: int | None) -> tuple[dict[str, Any], list[float]]:
    """(state, lr per param group) of ``args``' schedule after ``steps`` scheduler steps."""
    scratch = _ScratchOptimizer(args.lrs, defaults)
    config = build_scheduler(args.spec, scratch, args.kwargs, args.max_epochs, args.total_steps, steps_per_epoch=steps_per_epoch)
    assert config is not None
    scheduler = config["scheduler"]
    scratch.step()  # as in training, the optimizer steps before the scheduler (torch warns otherwise)
    for _ in range(steps):
        scheduler.step()
    return scheduler.state_dict(), [float(g["lr"]) for g in scratch.param_groups]


def _same_state(a: Any, b: Any) -> bool:
    """Scheduler states equal in every key both hold (torch versions add or drop bookkeeping keys), floats
    to a relative 1e-9; milestone Counters and lists compare whole."""
    if isinstance(a, Counter) or isinstance(b, Counter):
        return dict(a) == dict(b)
    if isinstance(a, dict) and isinstance(b, dict):
        if "last_epoch" in a or "last_epoch" in b:  # a scheduler's state: the keys both hold
            keys = a.keys() & b.keys()
            return "last_epoch" in keys and all(_same_state(a[k], b[k]) for k in keys)
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return a == b


def _is_per_epoch_state(saved: dict[str, Any], args: ScheduleArgs, defaults: dict[str, Any], epochs: Any) -> bool:
    """Whether ``saved`` is ``args``' schedule stepped once per epoch (format 1) after ``epochs`` epochs."""
    if not isinstance(epochs, int) or epochs < 0:
        return False
    try:
        per_epoch, _ = _replay(args, defaults, epochs, None)
    except ValueError:  # e.g. warmup_steps, which has no per-epoch form
        return False
    return _same_state(saved, per_epoch)


def resume_scheduler_state(
    saved: dict[str, Any],
    args: ScheduleArgs,
    optimizer: torch.optim.Optimizer,
    *,
    global_step: int,
    source: str,
) -> tuple[dict[str, Any], list[float] | None]:
    """The scheduler state to load from a checkpoint of :data:`SCHEDULE_FORMAT` 1, and the lr per param group
    to set on ``optimizer`` with it (None: keep the lrs the checkpoint restored).

    Format 1 stepped schedules with lengths in epochs once per epoch, so ``saved`` counts epochs; loaded
    as it is into this fit's per-step schedule, the lr would restart a warm-up or end a cosine early. When
    ``saved`` is exactly this fit's schedule stepped per epoch (same kind, warm-up, ``max_epochs``) after
    ``global_step // steps_per_epoch`` epochs, the state is converted: this fit's per-step schedule
    replayed for ``global_step`` optimizer steps, so the run continues as if it had always stepped per
    optimizer step (at an epoch boundary that is the lr the old schedule had there). Schedules that meant
    the same then and now ("plateau", lengths in steps, one step per epoch) and states already counting
    steps are kept.

    Args:
        saved: the checkpoint's ``lr_schedulers[0]``.
        args: this fit's schedule (the one :func:`build_scheduler` built for it).
        optimizer: this fit's optimizer (only its defaults are read).
        global_step: the checkpoint's optimizer steps.
        source: the checkpoint, named in the error.

    Raises:
        ValueError: when the conversion cannot be exact (another ``max_epochs``, other steps per epoch, a
            ``frequency`` other than 1), naming ``source``, why, and what to do instead.
    """
    name, kwargs = _split_spec(args.spec, args.kwargs)
    unit = kwargs.get("interval", "step" if name == "onecycle" else "epoch")
    per_epoch = args.steps_per_epoch
    if name in ("none", "plateau") or unit != "epoch" or per_epoch is None or per_epoch == 1:
        return saved, None  # stepped in the same unit then and now
    if global_step == 0:
        return _replay(args, optimizer.defaults, 0, per_epoch)  # nothing scheduled yet: this fit's schedule from its start
    epochs = saved.get("last_epoch")
    if epochs == global_step:
        return saved, None  # already counts optimizer steps (written between the change and the format key)
    frequency = int(kwargs.get("frequency", 1))
    if frequency != 1:
        problem = f"scheduler_kwargs frequency={frequency} (Lightning then steps by batch index, which a checkpoint does not record)"
    elif epochs != global_step // per_epoch:
        problem = (
            f"it is at epoch {epochs} after {global_step} optimizer steps, but this fit has {per_epoch} optimizer steps "
            "per epoch (other data, batch size, accumulate_grad_batches or limit_train_batches)"
        )
    elif not _is_per_epoch_state(saved, args, optimizer.defaults, epochs):
        problem = (
            f"its state is not this fit's '{name}' schedule stepped per epoch (max_epochs={args.max_epochs}, "
            f"scheduler_kwargs={args.kwargs}) after {epochs} epochs (another max_epochs, or a warmup_steps that "
            "version ignored for epoch lengths?)"
        )
    else:
        return _replay(args, optimizer.defaults, global_step, per_epoch)
    raise ValueError(
        f"Checkpoint '{source}' was written by an autotimm that stepped epoch-length schedules once per epoch: its "
        f"'{name}' scheduler state counts epochs, and this version steps once per optimizer step. It cannot be "
        f"converted exactly: {problem}. Resume it with the max_epochs, data, batch size and accumulate_grad_batches "
        f"of the run that wrote it, or start a new run from its weights: "
        f"model = ObjectDetector.load_from_checkpoint('{source}'), then trainer.fit(model, ...) without ckpt_path "
        "(the schedule then starts from its beginning)."
    )


def trainable(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params if p.requires_grad)
