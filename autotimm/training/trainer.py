"""AutoTrainer: Lightning's Trainer with detection defaults.

Defaults: keep the checkpoint with the best ``val/mAP`` (mode max) and the last epoch; a CSV log; a
progress bar that renders in a terminal and in Jupyter; gradient clipping; bf16 + channels_last where
the hardware runs bf16 fast (``precision="auto"``); optional weight EMA and live plot.

Checkpoints are written by Lightning through an fsspec transaction (a temporary file moved into place),
so an interrupted write never corrupts the previous good checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from autotimm.utils.precision import lightning_precision

log = logging.getLogger("autotimm")


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
        checkpoint_dir: where checkpoints go (default ``<default_root_dir>/checkpoints``).
        save_last: also keep ``last.ckpt`` so ``fit(..., ckpt_path="last")`` resumes exactly.
        gradient_clip_val: clip the global gradient norm (35, as mmdetection's FCOS); None disables.
        ema: keep an exponential moving average of the weights (Lightning's EMAWeightAveraging); a float
            sets its decay.
        live_plot: add :class:`autotimm.callbacks.LivePlot` (loss, mAP and lr curves).
        csv_log: write metrics to ``<default_root_dir>/metrics.csv`` through Lightning's CSVLogger.
        seed: seed every RNG (``lightning.seed_everything(seed, workers=True)``) for reproducible
            runs; None leaves them alone (an ``ObjectDetector(seed=...)`` then seeds its own fit).
        deterministic: Lightning's ``Trainer(deterministic=...)``: True, "warn" (warn-only) or False;
            None leaves it to ``ObjectDetector(deterministic=...)`` (warn-only during fit, by default).

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
        default_root_dir: str | Path | None = None,
        accelerator: str = "auto",
        callbacks: list[Callback] | Callback | None = None,
        logger: Any = None,
        enable_checkpointing: bool = True,
        seed: int | None = None,
        deterministic: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        self.seed = seed
        if seed is not None:
            L.seed_everything(seed, workers=True, verbose=False)
        if mode not in ("max", "min"):
            raise ValueError(f"AutoTrainer(mode={mode!r}): expected 'max' or 'min'.")
        if not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"AutoTrainer(max_epochs={max_epochs!r}): expected an int >= 1.")
        root = Path(default_root_dir) if default_root_dir is not None else Path.cwd() / "runs" / "autotimm"
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else ([callbacks] if callbacks else [])
        if enable_checkpointing and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            callbacks.append(
                ModelCheckpoint(
                    dirpath=str(checkpoint_dir or root / "checkpoints"),
                    monitor=monitor,
                    mode=mode,
                    save_last=save_last,
                    save_top_k=1,
                    filename="best-epoch{epoch:03d}",
                    auto_insert_metric_name=False,
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
        if logger is None and csv_log:
            logger = CSVLogger(save_dir=str(root), name="", version="")
        device_type = "cuda" if accelerator in ("gpu", "cuda") else accelerator
        if device_type == "auto":
            import torch

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
