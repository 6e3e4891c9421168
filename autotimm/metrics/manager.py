"""Metric configuration and the per-stage metric holder used by ``ObjectDetector``.

``MetricConfig`` names one metric (a torchmetrics class by name, or a custom
``torchmetrics.Metric``) and the stages that run it. ``MetricManager`` is an ``nn.Module`` holding
one metric instance per (config, stage), so Lightning moves metric states to the model's device
and torchmetrics syncs them across DDP processes in ``compute``. Metric states are not persistent:
the manager adds nothing to checkpoints.

Data contract (both lists hold one dict per image, in the ORIGINAL image frame, i.e. the pixels of
the image file, not the letterboxed input tensor):

* predictions: ``boxes`` float Tensor[N, 4] x1y1x2y2 absolute pixels, ``scores`` float Tensor[N],
  ``labels`` int64 Tensor[N] in 0..K-1.
* targets: ``boxes`` float Tensor[M, 4], ``labels`` int64 Tensor[M], optionally ``iscrowd``
  Tensor[M] (0/1; crowd boxes are COCO ignore regions) and ``area`` Tensor[M] (the COCO annotation
  area used for the small/medium/large ranges; without it the box area is used).

Other keys (``image_id``, ``orig_size``, ``letterbox``, ...) may be present and are ignored by the
torchmetrics detection metrics. Custom metrics receive the dicts unchanged.

How a LightningModule drives it (names and flags in the docstrings below)::

    def validation_step(self, batch, batch_idx):
        ...
        for name, value in self.metric_manager.update("val", preds, targets).items():
            self.log(name, value, **self.metric_manager.log_kwargs(name))  # only log_on_step ones

    def on_validation_epoch_end(self):
        for name, value in self.metric_manager.compute("val").items():
            self.log(name, value, **self.metric_manager.log_kwargs(name))
        self.metric_manager.reset("val")
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision

from autotimm.metrics.naming import flatten_metric_output, sanitize_class_name
from autotimm.metrics.registry import (
    mean_ap_defaults,
    resolve_custom_class,
    resolve_torchmetrics_class,
)
from autotimm.metrics.torchmetrics_internals import forget_computed, per_item_list_states

Stage = Literal["train", "val", "test"]
Backend = Literal["torchmetrics", "custom"]
STAGES: tuple[str, ...] = get_args(Stage)
BACKENDS: tuple[str, ...] = get_args(Backend)
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


def _check_stage(stage: Any, where: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"{where}: unknown stage {stage!r}; valid stages: {', '.join(STAGES)}.")
    return stage


@dataclass
class MetricConfig:
    """One metric, where it runs and how it is logged.

    Args:
        name: Logged name (``{stage}/{name}``): letters, digits, ``_`` and ``-``; unique per
            manager.
        backend: ``"torchmetrics"`` (``metric_class`` is a class name searched in all of
            torchmetrics, e.g. ``"MeanAveragePrecision"``) or ``"custom"`` (``metric_class`` is a
            ``torchmetrics.Metric`` subclass or its dotted import path).
        metric_class: Class name, dotted path or class (see ``backend``).
        params: Keyword arguments for the metric constructor. For ``MeanAveragePrecision`` the
            COCO evaluator ``backend`` defaults to ``"faster_coco_eval"`` when installed, else
            ``"pycocotools"``, and ``iou_thresholds`` / ``rec_thresholds`` default to COCOeval's
            exact values (``registry.mean_ap_defaults``); values given here win.
            ``class_metrics=True`` adds per-class values (``val/mAP_class_<name>``).
        stages: Stages that run the metric: any of ``"train"``, ``"val"``, ``"test"``.
        log_on_step: Also compute and log the metric on every batch (costly for mAP). Logged as
            ``{stage}/{name}_step`` when ``log_on_epoch`` is also True, else ``{stage}/{name}``.
        log_on_epoch: Log the value accumulated over the epoch.
        prog_bar: Show the headline value (e.g. ``val/mAP``) in the progress bar; other entries of
            a dict-valued metric go to the logger only.

    Raises:
        ValueError: Unknown backend, class or stage, a bad name, or both log flags False.

    Example:
        >>> cfg = MetricConfig(
        ...     name="mAP",
        ...     backend="torchmetrics",
        ...     metric_class="MeanAveragePrecision",
        ...     params={"box_format": "xyxy", "iou_type": "bbox"},
        ...     stages=["val", "test"],
        ...     prog_bar=True,
        ... )
    """

    name: str
    backend: Backend
    metric_class: str | type[Metric]
    params: dict[str, Any]
    stages: list[Stage]
    log_on_step: bool = False
    log_on_epoch: bool = True
    prog_bar: bool = False
    metric_type: type[Metric] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"MetricConfig(name={self.name!r})"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"MetricConfig name {self.name!r} is invalid: use letters, digits, '_' and '-' "
                "(it becomes the logged key '{stage}/{name}')."
            )
        if hasattr(nn.ModuleDict, self.name):
            raise ValueError(f"{where}: the name is reserved by torch.nn.ModuleDict; pick another.")
        if self.backend not in BACKENDS:
            raise ValueError(
                f"{where}: unknown backend {self.backend!r}; valid backends: {', '.join(BACKENDS)}."
            )
        if self.backend == "torchmetrics":
            if not isinstance(self.metric_class, str):
                raise ValueError(
                    f"{where}: backend 'torchmetrics' takes a class name string, got "
                    f"{self.metric_class!r}; use backend='custom' for class objects."
                )
            self.metric_type = resolve_torchmetrics_class(self.metric_class)
        else:
            self.metric_type = resolve_custom_class(self.metric_class)
        if not isinstance(self.params, Mapping):
            raise ValueError(f"{where}: params must be a dict, got {type(self.params).__name__}.")
        self.params = dict(self.params)
        if self.params.get("box_format", "xyxy") != "xyxy":
            raise ValueError(
                f"{where}: params box_format={self.params['box_format']!r}, but autotimm passes "
                "boxes as x1y1x2y2 everywhere; use 'xyxy' or leave box_format out."
            )
        if isinstance(self.stages, str) or not isinstance(self.stages, Sequence) or not self.stages:
            raise ValueError(
                f"{where}: stages must be a non-empty list such as ['val', 'test'], got "
                f"{self.stages!r}; valid stages: {', '.join(STAGES)}."
            )
        for stage in self.stages:
            _check_stage(stage, where)
        if len(set(self.stages)) != len(self.stages):
            raise ValueError(f"{where}: stages {self.stages!r} contain duplicates.")
        self.stages = list(self.stages)
        for flag in ("log_on_step", "log_on_epoch", "prog_bar"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(
                    f"{where}: {flag} must be True or False, got {getattr(self, flag)!r}."
                )
        if not (self.log_on_step or self.log_on_epoch):
            raise ValueError(
                f"{where}: log_on_step and log_on_epoch are both False; nothing to log."
            )

    @property
    def class_metrics(self) -> bool:
        """Whether per-class values were requested (``params["class_metrics"]``)."""
        return bool(self.params.get("class_metrics", False))

    def build(self) -> Metric:
        """A fresh metric instance built from ``metric_type(**params)``.

        Raises:
            ValueError: The constructor rejected ``params``.
        """
        params = dict(self.params)
        if issubclass(self.metric_type, MeanAveragePrecision):
            params = {**mean_ap_defaults(), **params}
        try:
            return self.metric_type(**params)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"MetricConfig(name={self.name!r}): {self.metric_type.__name__}(**{self.params!r})"
                f" failed: {err}"
            ) from err


def default_metric_configs() -> list[MetricConfig]:
    """The detector's metrics for ``metrics=None``: COCO mAP on val and test, named ``mAP``."""
    return [
        MetricConfig(
            name="mAP",
            backend="torchmetrics",
            metric_class="MeanAveragePrecision",
            params={"box_format": "xyxy", "iou_type": "bbox"},
            stages=["val", "test"],
            prog_bar=True,
        )
    ]


def _check_items(items: Any, kind: str, need_scores: bool) -> None:
    """Check one list of detection dicts against the data contract (shapes and dtypes only)."""
    if isinstance(items, (str, Mapping)) or not isinstance(items, Sequence):
        raise ValueError(
            f"{kind} must be a list with one dict per image, got {type(items).__name__}."
        )
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"{kind}[{i}] must be a dict, got {type(item).__name__}.")
        boxes, labels = item.get("boxes"), item.get("labels")
        if not (isinstance(boxes, Tensor) and boxes.ndim == 2 and boxes.shape[1] == 4):
            got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise ValueError(
                f"{kind}[{i}]['boxes'] must be a float Tensor[N, 4] (x1y1x2y2 pixels, original "
                f"frame), got {got}."
            )
        n = boxes.shape[0]
        if not (
            isinstance(labels, Tensor)
            and labels.shape == (n,)
            and not labels.is_floating_point()
            and not labels.is_complex()
        ):
            got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, Tensor) else labels
            raise ValueError(f"{kind}[{i}]['labels'] must be an int64 Tensor[{n}], got {got}.")
        keys = ("scores",) if need_scores else ("iscrowd", "area")
        for key in keys:
            value = item.get(key)
            if value is None and not need_scores:
                continue
            if not (isinstance(value, Tensor) and value.shape == (n,)):
                got = tuple(value.shape) if isinstance(value, Tensor) else value
                raise ValueError(f"{kind}[{i}]['{key}'] must be a Tensor[{n}], got {got}.")


class MetricManager(nn.Module):
    """Holds one metric per (config, stage) and turns results into flat logged scalars.

    Args:
        configs: The metrics. An empty list means no metrics at all.
        class_names: Optional names of classes 0..K-1, used in per-class keys
            (``val/mAP_class_<name>``; unsafe characters become ``_``).

    Raises:
        ValueError: Duplicate metric names or class names, or items that are not MetricConfig.

    Example:
        >>> manager = MetricManager.default(class_names=["cat", "dog"])
        >>> manager.has_stage("val"), manager.has_stage("train")
        (True, False)
    """

    def __init__(
        self, configs: Sequence[MetricConfig], class_names: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        if isinstance(configs, MetricConfig) or not isinstance(configs, Sequence):
            raise ValueError(
                f"MetricManager takes a list of MetricConfig, got {type(configs).__name__}."
            )
        for i, config in enumerate(configs):
            if not isinstance(config, MetricConfig):
                raise ValueError(
                    f"configs[{i}] must be a MetricConfig, got {type(config).__name__}."
                )
        names = [c.name for c in configs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"MetricManager: metric names must be unique, repeated: {duplicates}.")
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            safe = [sanitize_class_name(n) for n in class_names]
            if len(set(safe)) != len(safe):
                raise ValueError(
                    f"class_names {class_names!r} repeat a name once unsafe characters become '_'."
                )
        self.configs: list[MetricConfig] = list(configs)
        self.class_names: list[str] | None = class_names
        # ModuleDict keys cannot be "train" (an nn.Module method), hence the suffix.
        self.stage_metrics = nn.ModuleDict(
            {
                f"{stage}_metrics": nn.ModuleDict(
                    {c.name: c.build() for c in self.configs if stage in c.stages}
                )
                for stage in STAGES
            }
        )
        self._log_options: dict[str, dict[str, bool]] = {}

    @classmethod
    def default(cls, class_names: Sequence[str] | None = None) -> MetricManager:
        """Manager with ``default_metric_configs()``: logs ``val/mAP``, ``test/mAP`` and friends."""
        return cls(default_metric_configs(), class_names=class_names)

    @classmethod
    def from_metrics(
        cls,
        metrics: MetricManager | Sequence[MetricConfig] | None,
        class_names: Sequence[str] | None = None,
    ) -> MetricManager:
        """Coerce the detector's ``metrics`` argument.

        None -> ``default(class_names)``, a list -> a new manager, a manager -> itself.

        Raises:
            ValueError: ``metrics`` is of another type.
        """
        if metrics is None:
            return cls.default(class_names=class_names)
        if isinstance(metrics, MetricManager):
            return metrics
        if isinstance(metrics, MetricConfig):
            metrics = [metrics]
        if isinstance(metrics, Sequence) and not isinstance(metrics, str):
            return cls(metrics, class_names=class_names)
        raise ValueError(
            "metrics must be a MetricManager, a list of MetricConfig or None, got "
            f"{type(metrics).__name__}."
        )

    # ------------------------------------------------------------------ lookup
    def _stage_dict(self, stage: str) -> nn.ModuleDict:
        return self.stage_metrics[f"{_check_stage(stage, 'MetricManager')}_metrics"]

    def has_stage(self, stage: Stage) -> bool:
        """Whether any metric runs in ``stage``."""
        return len(self._stage_dict(stage)) > 0

    def get_metric(self, stage: Stage, name: str) -> Metric:
        """The metric instance called ``name`` in ``stage``.

        Raises:
            ValueError: Unknown stage, or no such metric in that stage (the message lists them).
        """
        metrics = self._stage_dict(stage)
        if name not in metrics:
            raise ValueError(
                f"No metric {name!r} in stage {stage!r}; "
                f"available: {list(metrics.keys()) or 'none'}."
            )
        return metrics[name]

    def _configs_for(self, stage: str) -> list[MetricConfig]:
        return [c for c in self.configs if stage in c.stages]

    # ------------------------------------------------------------------ update/compute
    def _flatten(
        self, stage: str, config: MetricConfig, output: Any, step: bool
    ) -> dict[str, Tensor]:
        values, headline = flatten_metric_output(
            f"{stage}/{config.name}", output, self.class_names, config.class_metrics
        )
        suffix = "_step" if step and config.log_on_epoch else ""
        renamed: dict[str, Tensor] = {}
        for name, value in values.items():
            renamed[name + suffix] = value
            self._log_options[name + suffix] = {
                "prog_bar": config.prog_bar and name == headline,
                "on_step": step,
                "on_epoch": not step,
            }
        return renamed

    def update(
        self, stage: Stage, preds: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]
    ) -> dict[str, Tensor]:
        """Add one batch to every metric of ``stage``.

        Args:
            stage: ``"train"``, ``"val"`` or ``"test"``.
            preds: One dict per image, ORIGINAL frame: ``boxes`` float[N, 4] x1y1x2y2,
                ``scores`` float[N], ``labels`` int64[N]. Extra keys are allowed.
            targets: One dict per image, ORIGINAL frame: ``boxes`` float[M, 4], ``labels``
                int64[M], optional ``iscrowd`` [M] and ``area`` [M]. Extra keys are allowed.

        Returns:
            Batch values of the metrics with ``log_on_step=True`` (empty for the default mAP),
            to log right away with ``log_kwargs(name)``.

        Raises:
            ValueError: Unknown stage, lists of different lengths, or dicts that break the contract
                (the message names the image index and key).
        """
        metrics = self._stage_dict(stage)
        if not metrics:
            return {}
        _check_items(preds, "preds", need_scores=True)
        _check_items(targets, "targets", need_scores=False)
        if len(preds) != len(targets):
            raise ValueError(
                f"preds and targets must hold one dict per image each, got {len(preds)} preds and "
                f"{len(targets)} targets."
            )
        step_values: dict[str, Tensor] = {}
        for config in self._configs_for(stage):
            metric = metrics[config.name]
            if config.log_on_step:
                # forward() accumulates the epoch state and returns this batch's value.
                step_values.update(self._flatten(stage, config, metric(preds, targets), step=True))
                if not config.log_on_epoch:
                    metric.reset()  # nothing reads the epoch state; do not let it grow
            else:
                metric.update(preds, targets)
        return step_values

    def compute(self, stage: Stage) -> dict[str, Tensor]:
        """Epoch values of the metrics of ``stage`` with ``log_on_epoch=True``.

        Call once per epoch, in ``on_{stage}_epoch_end``, then ``reset(stage)``. In DDP
        torchmetrics gathers the states of all processes first, so every process returns the same
        numbers.

        Returns:
            Logged name -> 0-d float tensor, e.g. ``{"val/mAP": ..., "val/mAP_50": ...,
            "val/mAP_mar_100": ...}`` (naming in ``autotimm.metrics.naming``). Undefined values
            are -1 (torchmetrics' and COCOeval's convention). Empty when the stage has no metrics.
        """
        metrics = self._stage_dict(stage)
        values: dict[str, Tensor] = {}
        for config in self._configs_for(stage):
            if config.log_on_epoch:
                metric = metrics[config.name]
                if _gather_per_item_states(metric):
                    with metric.sync_context(should_sync=False):  # states already hold every process's items
                        result = metric.compute()
                else:
                    result = metric.compute()
                values.update(self._flatten(stage, config, result, False))
        return values

    def reset(self, stage: Stage) -> None:
        """Clear the accumulated state of every metric of ``stage``."""
        for metric in self._stage_dict(stage).values():
            metric.reset()

    def log_kwargs(self, name: str) -> dict[str, bool]:
        """Keyword arguments for ``LightningModule.log(name, value, **kwargs)``.

        Args:
            name: A name returned by ``update`` or ``compute``.

        Returns:
            ``{"prog_bar": bool, "on_step": bool, "on_epoch": bool}``: epoch values have
            ``on_step=False, on_epoch=True`` (as Lightning requires in ``on_*_epoch_end``), batch
            values ``on_step=True, on_epoch=False``; ``prog_bar`` is True only for the headline
            value of a config with ``prog_bar=True``.

        Raises:
            ValueError: ``name`` was not produced by this manager.
        """
        if name not in self._log_options:
            raise ValueError(
                f"{name!r} was not produced by this MetricManager's update()/compute(); known: "
                f"{sorted(self._log_options) or 'none yet'}."
            )
        return dict(self._log_options[name])


def _gather_per_item_states(metric: Metric) -> bool:
    """Gather list states kept per item (one entry per image, ``dist_reduce_fx=None``) from all processes.

    torchmetrics all-gathers such lists element by element, which deadlocks or mismatches when the
    processes hold different numbers of images, as they do with an evaluation sampler that shards
    without padding (so that no image is counted twice). Here each list is gathered whole, as Python
    objects, and the metric then computes without its own sync. Returns whether it gathered.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    names = per_item_list_states(metric)
    if not names:
        return False
    world = dist.get_world_size()
    for name in names:
        local = [t.detach().cpu() if isinstance(t, Tensor) else t for t in getattr(metric, name)]
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, local)
        device = metric.device
        setattr(metric, name, [t.to(device) if isinstance(t, Tensor) else t for part in gathered for t in part])
    forget_computed(metric)
    return True
