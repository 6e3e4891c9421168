"""YOLOX training callbacks: the "last epochs" switch and YOLOX's ramped EMA of the weights.

* :class:`YOLOXLastEpochs`: for the last N epochs, mosaic/mixup off and the L1 loss on raw box
  offsets on (YOLOX trains its last 15 of 300 epochs this way).
* :class:`YOLOXEMA`: Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging` with YOLOX's
  EMA, whose decay ramps up from 0 (``decay * (1 - exp(-updates / ramp_steps))``), so short runs
  are not dominated by the random initial weights as with a fixed decay.
"""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor

from autotimm.callbacks.strong_augment import DisableStrongAugment


class YOLOXLastEpochs(DisableStrongAugment):
    """For the last ``last_epochs`` epochs of ``trainer.fit``: mosaic/mixup off, L1 box loss on.

    The phase is recomputed from ``trainer.current_epoch`` at every epoch start, so resuming from a
    checkpoint lands in the right phase, and an earlier epoch (e.g. a second ``fit``) switches back.

    Args:
        last_epochs: how many final epochs (YOLOX: 15 of 300). 0 never switches.
        l1_loss: switch the detector's L1 loss on raw offsets on (needs ``detection_arch="yolox"``).
        disable_strong_augment: switch mosaic/mixup off (needs an autotimm training set, which has
            ``set_strong_augment``); False for other data.

    Attributes:
        active: whether the current epoch is one of the last ones.

    Example:
        >>> trainer = L.Trainer(max_epochs=300, callbacks=[YOLOXLastEpochs(last_epochs=15)])  # doctest: +SKIP
    """

    def __init__(self, last_epochs: int = 15, l1_loss: bool = True, disable_strong_augment: bool = True) -> None:
        super().__init__(last_epochs)
        if not (l1_loss or disable_strong_augment):
            raise ValueError(
                "YOLOXLastEpochs(l1_loss=False, disable_strong_augment=False) would do nothing; "
                "enable at least one of them."
            )
        self.l1_loss = bool(l1_loss)
        self.disable_strong_augment = bool(disable_strong_augment)
        self.active = False

    @staticmethod
    def _head(pl_module: L.LightningModule) -> Any:
        head = getattr(pl_module, "detection_head", None)
        if not hasattr(head, "use_l1"):
            arch = getattr(pl_module, "detection_arch", type(pl_module).__name__)
            raise ValueError(
                f"YOLOXLastEpochs(l1_loss=True) needs an ObjectDetector(detection_arch='yolox'), got "
                f"detection_arch={arch!r}. Pass l1_loss=False to only switch mosaic/mixup off."
            )
        return head

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.l1_loss:
            self._head(pl_module)  # fail before the first epoch, not at the last ones

    def is_last_phase(self, trainer: L.Trainer) -> bool:
        """True when ``trainer.current_epoch`` is among the last ``last_epochs`` of ``max_epochs``."""
        max_epochs = trainer.max_epochs
        if max_epochs is None or max_epochs < 0:
            raise ValueError(f"YOLOXLastEpochs needs a finite Trainer(max_epochs=...); got {max_epochs}.")
        return self.last_epochs > 0 and trainer.current_epoch >= max_epochs - self.last_epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.active = self.is_last_phase(trainer)
        if self.l1_loss:
            self._head(pl_module).use_l1 = self.active
        if self.disable_strong_augment:
            try:
                dataset = self._dataset(trainer)
            except ValueError as err:
                raise ValueError(f"{err} Pass disable_strong_augment=False to YOLOXLastEpochs for other data.") from None
            dataset.set_strong_augment(not self.active)


def yolox_ema_avg_fn(decay: float = 0.9998, ramp_steps: float = 2000.0) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """YOLOX's EMA update as an ``AveragedModel`` ``avg_fn``.

    ``averaged <- d * averaged + (1 - d) * current`` with ``d = decay * (1 - exp(-n / ramp_steps))``,
    ``n`` the number of updates so far.
    """

    def ema(averaged: Tensor, current: Tensor, num_averaged: Tensor) -> Tensor:
        if not averaged.is_floating_point():  # counters such as BatchNorm's num_batches_tracked
            return current
        d = decay * (1 - torch.exp(-num_averaged.to(torch.float32) / ramp_steps))
        return averaged + (current - averaged) * (1 - d).to(averaged.dtype)

    return ema


class YOLOXEMA(WeightAveraging):
    """Exponential moving average of the weights with YOLOX's ramped decay, updated every optimizer step.

    Lightning validates with the averaged weights, saves them as the checkpoint's ``state_dict``
    and copies them into the model when training ends.

    Args:
        decay: the decay the EMA ramps up to (YOLOX: 0.9998).
        ramp_steps: updates over which the decay ramps up (YOLOX: 2000).
        device: where the averaged copy lives (default: the model's device).
        use_buffers: also average buffers such as BatchNorm statistics (as YOLOX does).

    Example:
        >>> trainer = L.Trainer(max_epochs=300, callbacks=[YOLOXEMA()])  # doctest: +SKIP
    """

    def __init__(
        self,
        decay: float = 0.9998,
        ramp_steps: float = 2000.0,
        device: torch.device | str | int | None = None,
        use_buffers: bool = True,
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"YOLOXEMA(decay={decay!r}): expected a float in [0, 1), e.g. 0.9998.")
        if not ramp_steps > 0:
            raise ValueError(f"YOLOXEMA(ramp_steps={ramp_steps!r}): expected a positive number of updates, e.g. 2000.")
        super().__init__(device=device, use_buffers=use_buffers, avg_fn=yolox_ema_avg_fn(decay, ramp_steps))
        self.decay = float(decay)
        self.ramp_steps = float(ramp_steps)
