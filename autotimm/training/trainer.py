"""AutoTrainer: Lightning's Trainer with detection defaults.

Defaults: keep the checkpoint with the best ``val/mAP`` (mode max) and a ``last.ckpt`` rewritten after
every epoch; a CSV log; a progress bar that renders in a terminal and in Jupyter; gradient clipping; bf16 +
channels_last where the hardware runs bf16 fast (``precision="auto"``); optional weight EMA and live plot.

Work is never lost: checkpoints are written atomically (temporary file in the same folder, then a rename)
and never with non-finite weights; every ``fit`` gets its own run folder (``runs/exp``, ``runs/exp2``,
...) unless it resumes, and a resume appends to its run's ``metrics.csv``; Ctrl+C saves ``last.ckpt``
and returns with one line saying how to resume (see :mod:`autotimm.callbacks.checkpoint`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import CheckpointIO
from lightning.pytorch.trainer.states import TrainerStatus

from autotimm.callbacks.checkpoint import AtomicCheckpointIO, DetectionCheckpoint
from autotimm.training.runs import (
    RESUME_IF_PRESENT, find_last, next_run_dir, open_log_for_append, run_dir_of_checkpoint,
)
from autotimm.training.threads import ThreadPlan, plan_threads
from autotimm.utils.precision import lightning_precision

log = logging.getLogger("autotimm")


class _InterruptWatch(Callback):
    """Remembers whether ``fit`` ended by a KeyboardInterrupt (Lightning turns it into ``SystemExit(1)``)."""

    def __init__(self) -> None:
        self.interrupted = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.interrupted = isinstance(exception, KeyboardInterrupt)


class _MonitorCheck(Callback):
    """Fail at the end of the first validation if the monitored metric was never logged."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor in trainer.callback_metrics:
            return
        logged = sorted(trainer.callback_metrics)
        raise KeyError(
            f"AutoTrainer(monitor='{self.monitor}'): that metric was never logged. Logged metrics: {logged}. "
            "Pass one of them as monitor=..., or configure the metric (e.g. MetricConfig(name='mAP', stages=['val']))."
        )


class AutoTrainer(L.Trainer):
    """A ``lightning.Trainer`` with detection defaults; every Trainer argument still works.

    Args:
        max_epochs: epochs to train.
        precision: "auto" (bf16 mixed + channels_last where bf16 is fast, else fp32), or any Lightning
            precision such as "32-true" / "bf16-mixed".
        monitor / mode: metric that picks the best checkpoint (``val/mAP``, max).
        checkpoint_dir: where checkpoints go (default ``<run folder>/checkpoints``).
        save_last: keep ``last.ckpt``, rewritten after every validation and epoch, so that
            ``fit(..., ckpt_path="last")`` resumes exactly where the run stopped.
        gradient_clip_val: clip the global gradient norm (35, as mmdetection's FCOS); None disables.
        ema: keep an exponential moving average of the weights (Lightning's EMAWeightAveraging); a float
            sets its decay.
        live_plot: add :class:`autotimm.callbacks.LivePlot` (loss, mAP and lr curves).
        csv_log: write metrics to ``<run folder>/metrics.csv`` through Lightning's CSVLogger.
        seed: seed every RNG (``lightning.seed_everything(seed, workers=True)``) for reproducible
            runs; None leaves them alone (an ``ObjectDetector(seed=...)`` then seeds its own fit).
        deterministic: Lightning's ``Trainer(deterministic=...)``: True, "warn" (warn-only) or False;
            None leaves it to ``ObjectDetector(deterministic=...)`` (warn-only during fit, by default).
        default_root_dir: the run folder (default ``runs/autotimm``). When it already holds an earlier
            run, a new ``fit`` writes to ``<folder>2``, ``<folder>3``, ... instead (see :attr:`run_dir`);
            a resumed ``fit`` writes to the folder it resumes.
        report: at the end of ``fit``, write the evaluation report of the best checkpoint on the
            validation split into ``<run folder>/report`` (:attr:`run_dir`; :class:`autotimm.callbacks.ReportCallback`:
            PR curves, F1 vs confidence, confusion matrix as PNGs, every number as json/csv).
        num_threads: torch threads during ``fit``. "auto" (default): from the cores other processes
            leave free (:func:`autotimm.training.threads.plan_threads`; never more than torch's current
            count, so a lower ``torch.set_num_threads`` of the user's stays), which also sizes the workers
            of a ``DetectionDataModule`` built with ``num_workers=None``; the choice is printed once
            per fit and torch's thread count is restored afterwards. An int fixes the thread count
            (workers still planned); "off" leaves torch and the workers as they are. An
            ``OMP_NUM_THREADS`` environment variable counts as a fixed thread count.

    ``fit(..., ckpt_path=...)`` also takes ``"last"`` (this run folder's ``last.ckpt``; an error that names
    the folder when there is none) and ``"last_if_present"`` (resume when it exists, else start afresh).

    Example:
        >>> trainer = AutoTrainer(max_epochs=12, default_root_dir="runs/exp1")
        >>> trainer.fit(model, datamodule=data)
        >>> trainer.fit(model, datamodule=data, ckpt_path="last")  # resume
    """

    def __init__(
        self,
        max_epochs: int = 12,
        precision: str | int | None = "auto",
        monitor: str | None = "val/mAP",
        mode: str = "max",
        checkpoint_dir: str | Path | None = None,
        save_last: bool = True,
        gradient_clip_val: float | None = 35.0,
        ema: bool | float = False,
        live_plot: bool = False,
        csv_log: bool = True,
        report: bool = True,
        default_root_dir: str | Path | None = None,
        accelerator: str = "auto",
        callbacks: list[Callback] | Callback | None = None,
        logger: Any = None,
        enable_checkpointing: bool = True,
        seed: int | None = None,
        deterministic: bool | str | None = None,
        plugins: Any = None,
        num_threads: int | Literal["auto", "off"] = "auto",
        **kwargs: Any,
    ) -> None:
        if num_threads not in ("auto", "off") and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
        ):
            raise ValueError(f"AutoTrainer(num_threads={num_threads!r}): expected 'auto', 'off' or an int >= 1.")
        self.num_threads = num_threads
        self.thread_plan: ThreadPlan | None = None
        self.seed = seed
        if seed is not None:
            L.seed_everything(seed, workers=True, verbose=False)
        if mode not in ("max", "min"):
            raise ValueError(f"AutoTrainer(mode={mode!r}): expected 'max' or 'min'.")
        if not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"AutoTrainer(max_epochs={max_epochs!r}): expected an int >= 1.")
        root = Path(default_root_dir) if default_root_dir is not None else Path.cwd() / "runs" / "autotimm"
        self._requested_dir = root
        self._run_dir = root
        self._own_checkpoint_dir = checkpoint_dir is None
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else ([callbacks] if callbacks else [])
        if enable_checkpointing and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks.append(
                DetectionCheckpoint(
                    dirpath=str(checkpoint_dir or root / "checkpoints"),
                    monitor=monitor,
                    mode=mode,
                    save_last=save_last,
                    save_top_k=1,
                    filename="best-epoch{epoch:03d}",
                )
            )
        if monitor is not None and enable_checkpointing:
            callbacks.append(_MonitorCheck(monitor))
        if ema:
            decay = 0.999 if ema is True else float(ema)
            if not 0.0 < decay < 1.0:
                raise ValueError(f"AutoTrainer(ema={ema!r}): expected True or a decay in (0, 1).")
            callbacks.append(EMAWeightAveraging(decay=decay))
        if live_plot:
            from autotimm.callbacks import LivePlot

            callbacks.append(LivePlot())
        if report and enable_checkpointing:
            from autotimm.callbacks.report import ReportCallback

            callbacks.append(ReportCallback())  # writes into run_dir / "report" (the numbered run folder)
        self._interrupt_watch = _InterruptWatch()
        callbacks.append(self._interrupt_watch)
        self._own_logger = logger is None and csv_log
        if self._own_logger:
            logger = CSVLogger(save_dir=str(root), name="", version="")
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else ([plugins] if plugins is not None else [])
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        device_type = "cuda" if accelerator in ("gpu", "cuda") else accelerator
        if device_type == "auto":
            device_type = "cuda" if torch.cuda.is_available() else "cpu"
        if precision in (None, "auto"):
            precision = lightning_precision("auto", device_type)
        super().__init__(
            max_epochs=max_epochs,
            precision=precision,
            gradient_clip_val=gradient_clip_val,
            default_root_dir=str(root),
            accelerator=accelerator,
            callbacks=callbacks,
            logger=logger if logger is not None else False,
            enable_checkpointing=enable_checkpointing,
            deterministic=deterministic,
            plugins=plugins,
            **kwargs,
        )
        self.deterministic = deterministic
        log.info("AutoTrainer: precision=%s (%s)", self.precision, "bf16 fast path" if str(self.precision).startswith("bf16") else "fp32")
        print(f"autotimm: precision {self.precision} on {device_type}" + (" with channels_last" if str(self.precision).startswith("bf16") else ""))

    @property
    def best_model_path(self) -> str:
        """Path of the best checkpoint so far ('' before the first one)."""
        cb = self.checkpoint_callback
        return cb.best_model_path if cb is not None else ""

    @property
    def run_dir(self) -> Path:
        """The folder this run writes to (``default_root_dir``, or a numbered sibling; set by ``fit``)."""
        return self._run_dir

    def fit(
        self,
        model: L.LightningModule,
        train_dataloaders: Any = None,
        val_dataloaders: Any = None,
        datamodule: L.LightningDataModule | None = None,
        ckpt_path: str | os.PathLike | None = None,
        weights_only: bool | None = None,
    ) -> None:
        """Lightning's ``fit`` in its own run folder; returns cleanly on Ctrl+C after saving ``last.ckpt``.

        Args:
            ckpt_path: None (a new run), ``"last"`` (resume this run folder's ``last.ckpt``; a
                ``FileNotFoundError`` naming the folder when there is none), ``"last_if_present"`` (resume
                when it exists, else a new run), a checkpoint file, or Lightning's ``"best"`` / ``"hpc"``.
            Others: as ``lightning.Trainer.fit``.
        """
        ckpt_path = self._prepare_run(ckpt_path)
        handler = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
        self._interrupt_watch.interrupted = False
        threads_before = self._apply_thread_plan(datamodule if datamodule is not None else train_dataloaders)
        try:
            super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, weights_only)
        except SystemExit:
            if not (self._interrupt_watch.interrupted and self.state.status == TrainerStatus.INTERRUPTED):
                raise
            self._report_interrupt()
        finally:
            if handler is not None:  # Lightning ignores SIGINT after an interrupt; give Ctrl+C back
                signal.signal(signal.SIGINT, handler)
            if threads_before is not None:
                torch.set_num_threads(threads_before)

    # ------------------------------------------------------------------ internals
    def _apply_thread_plan(self, data: Any) -> int | None:
        """Size torch's threads (and auto-sized data module workers) to the free cores; say it once.

        Returns torch's thread count before, to restore after ``fit`` (None when nothing changed).
        Only a single-process fit is planned: Lightning divides the cores among DDP processes itself.
        """
        if self.num_threads == "off" or self.world_size > 1:
            self.thread_plan = None
            return None
        fixed = self.num_threads if isinstance(self.num_threads, int) else None
        if fixed is None and os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
            fixed = max(1, int(os.environ["OMP_NUM_THREADS"]))
        auto_workers = bool(getattr(data, "num_workers_auto", False))
        workers = None if auto_workers else getattr(data, "num_workers", None)
        device = "cpu" if self.strategy.root_device.type == "cpu" else "gpu"
        before = torch.get_num_threads()
        plan = plan_threads(device, num_threads=fixed, num_workers=workers if isinstance(workers, int) else None,
                            max_threads=before)  # never above what torch (or the user) has set
        self.thread_plan = plan
        if auto_workers:
            data.num_workers = plan.num_workers
        torch.set_num_threads(plan.num_threads)
        log.info("AutoTrainer: %s", plan.describe())
        if self.is_global_zero:
            print(f"autotimm: {plan.describe()}")
        return before

    def _detection_checkpoint(self) -> DetectionCheckpoint | None:
        cb = self.checkpoint_callback
        return cb if isinstance(cb, DetectionCheckpoint) else None

    def _prepare_run(self, ckpt_path: Any) -> Any:
        """Pick the run folder, resolve "last", and point the checkpoints and the CSV log at the folder."""
        checkpoint = self.checkpoint_callback
        requested = self._requested_dir
        resume_from: Path | None = None
        if ckpt_path in ("last", RESUME_IF_PRESENT) and checkpoint is not None:
            base = self._run_dir  # the folder of this trainer's last fit, else default_root_dir
            ours = isinstance(checkpoint, DetectionCheckpoint) and self._own_checkpoint_dir
            ckpt_dir = Path(checkpoint.dirpath) if checkpoint.dirpath and not ours else base / "checkpoints"
            try:
                resume_from = find_last(ckpt_dir, base)
            except FileNotFoundError:
                if ckpt_path == "last":
                    raise
                print(f"autotimm: no last.ckpt in '{ckpt_dir}'; starting a new run.")
            ckpt_path = str(resume_from) if resume_from is not None else None
            run_dir = base if resume_from is not None else next_run_dir(requested)
        elif ckpt_path == RESUME_IF_PRESENT:
            raise ValueError(f"fit(ckpt_path='{RESUME_IF_PRESENT}') needs checkpointing; this trainer has none.")
        elif ckpt_path is not None and ckpt_path not in ("best", "hpc") and Path(ckpt_path).is_file():
            resume_from = Path(ckpt_path)
            run_dir = run_dir_of_checkpoint(resume_from) or requested
        elif ckpt_path is not None:
            run_dir = requested
        else:
            rank = int(os.environ.get("LOCAL_RANK", 0)) + int(os.environ.get("NODE_RANK", 0))
            run_dir = next_run_dir(requested) if rank == 0 else requested
            if run_dir != requested:
                print(f"autotimm: '{requested}' holds an earlier run; this run writes to '{run_dir}'.")
        self._run_dir = run_dir
        if checkpoint is not None and self._own_checkpoint_dir and isinstance(checkpoint, DetectionCheckpoint):
            checkpoint.dirpath = str(run_dir / "checkpoints")
        if self._own_logger and isinstance(self.logger, CSVLogger) and Path(self.logger.log_dir) != run_dir:
            self.loggers = [CSVLogger(save_dir=str(run_dir), name="", version="")]
        if resume_from is not None and self._own_logger and isinstance(self.logger, CSVLogger) and self.is_global_zero:
            open_log_for_append(self.logger)
        return ckpt_path

    def _report_interrupt(self) -> None:
        cb = self._detection_checkpoint()
        message = cb.interrupt_message if cb is not None and cb.interrupt_message else "Interrupted; checkpointing is off, nothing was saved."
        saved = cb is not None and cb.last_model_path and os.path.isfile(cb.last_model_path)
        how = ' Resume with trainer.fit(model, datamodule=..., ckpt_path="last").' if saved else ""
        print(f"autotimm: {message}{how}")
