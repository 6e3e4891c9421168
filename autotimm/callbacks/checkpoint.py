"""Checkpoints that never lose or poison a user's work.

* :class:`AtomicCheckpointIO`: every checkpoint is written to a temporary file in the destination
  folder, flushed to disk and renamed over the old file, so a full disk or a crash leaves either the
  previous good file or the new complete one, never a truncated one.
* :class:`DetectionCheckpoint`: Lightning's ``ModelCheckpoint`` (best by a monitored metric) plus a
  ``last.ckpt`` rewritten after every validation and every training epoch whatever the monitor does,
  no checkpoint of non-finite weights or after a non-finite val metric, a failed write that keeps
  pointing at the previous good file, and a ``last.ckpt`` of the last completed step on Ctrl+C.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

LAST_NAME = "last"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic: temp file in the same folder, fsync, rename.

    Lightning's default writes through an fsspec transaction whose temporary file lives in the system
    temp folder and is then *copied* across filesystems, which leaves a truncated file when the disk
    fills up. Here the temporary file is ``.<name>.<random>.tmp`` beside the destination; on any
    failure it is removed and the exception propagates, so the destination keeps its previous content.
    Remote paths (``s3://`` ...) go to Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        target = str(path)
        if "://" in target and not target.startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target_path = Path(target.removeprefix("file://"))
        target_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target_path.name}.", suffix=".tmp", dir=target_path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_folder(target_path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def first_non_finite(named: Iterable[tuple[str, Any]]) -> str | None:
    """Name of the first floating tensor with a NaN or Inf among ``(name, tensor)`` pairs, else None."""
    for name, value in named:
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


def non_finite_in_checkpoint(checkpoint: dict[str, Any]) -> str | None:
    """First non-finite weight of a checkpoint dict: its ``state_dict`` and, with Lightning's weight
    averaging, the ``current_model_state`` kept beside the averaged (EMA) weights."""
    for key in ("state_dict", "current_model_state"):
        state = checkpoint.get(key)
        if isinstance(state, dict):
            bad = first_non_finite(state.items())
            if bad is not None:
                return f"{key}['{bad}']"
    return None


class DetectionCheckpoint(ModelCheckpoint):
    """Best checkpoint by ``monitor`` plus a ``last.ckpt`` that always holds the latest state.

    Differences from Lightning's ``ModelCheckpoint(save_last=True)``:

    * ``last.ckpt`` is rewritten after every validation and at the end of every training epoch (Lightning
      only rewrites it when a top-k file is saved, so with a flat metric it falls behind and a resume
      silently goes back in time).
    * Before each save the monitored metric, ``val/loss`` and the weights (EMA included) must be finite;
      otherwise the run stops with a ``FloatingPointError`` and the previous checkpoints stay as they are.
    * A write that fails with an ``OSError`` (disk full) leaves no partial file (with
      :class:`AtomicCheckpointIO`), keeps ``best_model_path`` / ``last_model_path`` at the previous good
      files, warns once and lets training go on.
    * On ``KeyboardInterrupt`` (Ctrl+C, the notebook's Stop button) ``last.ckpt`` is written with the
      state of the last completed optimizer step; ``interrupt_message`` says what was kept.

    Args:
        dirpath: folder of the checkpoints.
        monitor / mode: metric that picks the best checkpoint (None keeps the latest as "best").
        save_last: keep ``last.ckpt`` (as above).
        save_top_k: how many best checkpoints to keep.
        filename: name pattern of the best checkpoints.

    Attributes:
        interrupt_message: after an interrupted ``fit``, one line saying which checkpoint holds the work
            (None otherwise).

    Example:
        >>> trainer = L.Trainer(callbacks=[DetectionCheckpoint("runs/x/checkpoints")],
        ...                     plugins=[AtomicCheckpointIO()])  # doctest: +SKIP
    """

    def __init__(
        self,
        dirpath: str | os.PathLike | None = None,
        monitor: str | None = "val/mAP",
        mode: str = "max",
        save_last: bool = True,
        save_top_k: int = 1,
        filename: str = "best-epoch{epoch:03d}",
    ) -> None:
        # Lightning's own "last" logic stays off: this class writes last.ckpt itself (see above).
        super().__init__(dirpath=dirpath, monitor=monitor, mode=mode, save_last=False, save_top_k=save_top_k,
                         filename=filename, auto_insert_metric_name=False)
        self.keep_last = bool(save_last)
        self.interrupt_message: str | None = None
        self._last_saved_step = -1
        self._in_update = False  # between on_before_optimizer_step and on_train_batch_end
        self._warned_write = False

    # ------------------------------------------------------------------ public helpers
    @property
    def last_path(self) -> str:
        """Where ``last.ckpt`` goes (``<dirpath>/last.ckpt``)."""
        return self.format_checkpoint_name({}, LAST_NAME)

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.interrupt_message = None
        self._in_update = False

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self._in_update = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._in_update = False
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._saving(trainer):
            return
        self._check_metrics(trainer)
        self._guarded(trainer, lambda: super(DetectionCheckpoint, self).on_validation_end(trainer, pl_module))
        self._save_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._saving(trainer):
            return
        best_before = self.best_model_path
        self._guarded(trainer, lambda: super(DetectionCheckpoint, self).on_train_epoch_end(trainer, pl_module))
        # A no-op when validation just saved this step, unless a new best was saved since (its path is
        # part of last.ckpt's state).
        self._save_last(trainer, force=self.best_model_path != best_before)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # Runs after WeightAveraging's hook (Lightning orders checkpoint callbacks last), so the EMA
        # weights are in checkpoint["state_dict"] and the raw ones in "current_model_state".
        bad = non_finite_in_checkpoint(checkpoint)
        if bad is not None:
            raise FloatingPointError(self._non_finite_message(trainer, f"weight {bad} is NaN or Inf"))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != TrainerFn.FITTING:
            return
        kept = self.last_model_path if self.last_model_path and os.path.isfile(self.last_model_path) else None
        if not self.keep_last or trainer.sanity_checking or trainer.world_size > 1:
            self.interrupt_message = _kept_line(kept, "no interrupt checkpoint with save_last=False, during the sanity check or with several processes")
            return
        if self._in_update:  # the weights may be half-updated: do not save them
            self.interrupt_message = _kept_line(kept, "interrupted during a weight update; nothing new was saved")
            return
        try:
            self._save_last(trainer, force=True)
        except FloatingPointError as err:
            self.interrupt_message = _kept_line(kept, f"not saved: {err}")
            return
        path = self.last_path
        if self._last_saved_step == trainer.global_step and os.path.isfile(path):
            self.interrupt_message = (
                f"Interrupted at epoch {trainer.current_epoch}, global step {trainer.global_step}: saved '{path}'."
            )
        else:
            self.interrupt_message = _kept_line(kept, "the interrupt checkpoint could not be written")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_saved_step": self._last_saved_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._last_saved_step = int(state_dict.get("last_saved_step", -1))

    # ------------------------------------------------------------------ internals
    def _saving(self, trainer: L.Trainer) -> bool:
        return not (bool(trainer.fast_dev_run) or trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking)

    def _check_metrics(self, trainer: L.Trainer) -> None:
        metrics = trainer.callback_metrics
        loss = metrics.get("val/loss")
        loss_finite = loss is None or math.isfinite(float(loss))
        for name in [n for n in dict.fromkeys(("val/loss", self.monitor)) if n]:
            value = metrics.get(name)
            if value is None or math.isfinite(float(value)):
                continue
            # A NaN metric beside a finite loss is an undefined one (mAP of a split without boxes), not a
            # diverged model; Lightning ranks it last.
            if name != "val/loss" and math.isnan(float(value)) and loss_finite and loss is not None:
                continue
            raise FloatingPointError(self._non_finite_message(trainer, f"{name} = {float(value)}"))

    def _non_finite_message(self, trainer: L.Trainer, what: str) -> str:
        good = [p for p in (self.last_model_path, self.best_model_path) if p and os.path.isfile(p)]
        kept = f"the last good checkpoint is kept: '{good[0]}'" if good else "no checkpoint was written yet"
        return (
            f"Non-finite values at epoch {trainer.current_epoch}, global step {trainer.global_step}: {what}. "
            f"Nothing was saved for this step; {kept}. Lower the lr, enable gradient clipping "
            "(AutoTrainer(gradient_clip_val=...)), or check the data's boxes; resume with ckpt_path='last'."
        )

    def _snapshot(self) -> dict[str, Any]:
        names = ("best_model_path", "best_model_score", "kth_best_model_path", "kth_value", "current_score", "last_model_path")
        state = {name: getattr(self, name) for name in names}
        state["best_k_models"] = dict(self.best_k_models)
        return state

    def _guarded(self, trainer: L.Trainer, save: Callable[[], None]) -> None:
        """Run one of Lightning's saves; on failure restore the paths and scores it had changed."""
        before = self._snapshot()
        try:
            save()
        except OSError as err:
            self._restore(before)
            self._warn_write(err)
        except BaseException:
            self._restore(before)
            raise

    def _restore(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def _warn_write(self, err: OSError) -> None:
        if self._warned_write:
            return
        self._warned_write = True
        previous = self.best_model_path or "none yet"
        warnings.warn(
            f"A checkpoint could not be written to '{self.dirpath}' ({type(err).__name__}: {err}). No partial file "
            f"was left; best_model_path still points at the last good checkpoint ({previous}) and last.ckpt "
            f"holds step {self._last_saved_step if self._last_saved_step >= 0 else 'none yet'}. Training goes on; "
            "free some disk space so the next epochs are saved. (This warning is shown once.)",
            stacklevel=2,
        )

    def _save_last(self, trainer: L.Trainer, force: bool = False) -> None:
        if not self.keep_last:
            return
        path = self.last_path
        if not force and self._last_saved_step == trainer.global_step and os.path.isfile(path):
            return
        before = (self.last_model_path, self._last_saved_step)
        # set first: both are part of the saved state
        self.last_model_path, self._last_saved_step = path, trainer.global_step
        try:
            trainer.save_checkpoint(path)
        except OSError as err:
            self.last_model_path, self._last_saved_step = before
            self._warn_write(err)
        except BaseException:
            self.last_model_path, self._last_saved_step = before
            raise


def _kept_line(kept: str | None, reason: str) -> str:
    where = f"the previous '{kept}' is kept" if kept else "no checkpoint exists yet"
    return f"Interrupted ({reason}); {where}."
