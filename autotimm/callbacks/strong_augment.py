"""Lightning callback that turns mosaic and mixup off for the last epochs (as YOLOX trains).

The flag lives in shared memory (see :mod:`autotimm.data.dataset`), so this works with persistent
DataLoader workers: ``on_train_epoch_start`` runs before Lightning restarts the loader iterator,
so the whole epoch sees the new setting.
"""

from __future__ import annotations

from typing import Any

import lightning as L


class DisableStrongAugment(L.Callback):
    """Switch strong augmentation off for the last ``last_epochs`` epochs of ``trainer.fit``.

    The setting is recomputed at every epoch start from ``trainer.current_epoch``, so resuming
    from a checkpoint lands in the right phase.

    Args:
        last_epochs: how many final epochs train without mosaic/mixup (YOLOX uses 15 of 300).

    Example:
        >>> trainer = L.Trainer(max_epochs=50, callbacks=[DisableStrongAugment(last_epochs=5)])  # doctest: +SKIP
    """

    def __init__(self, last_epochs: int = 15) -> None:
        if not isinstance(last_epochs, int) or last_epochs < 0:
            raise ValueError(f"last_epochs must be an int >= 0; got {last_epochs!r}.")
        self.last_epochs = last_epochs

    @staticmethod
    def _dataset(trainer: L.Trainer) -> Any:
        datamodule = getattr(trainer, "datamodule", None)
        dataset = getattr(datamodule, "train_dataset", None)
        if dataset is None and trainer.train_dataloader is not None:
            dataset = getattr(trainer.train_dataloader, "dataset", None)
        if not hasattr(dataset, "set_strong_augment"):
            raise ValueError(
                "DisableStrongAugment needs a training set with set_strong_augment() (an "
                f"autotimm DetectionDataset); found {type(dataset).__name__}."
            )
        return dataset

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        max_epochs = trainer.max_epochs
        if max_epochs is None or max_epochs < 0:
            raise ValueError(
                f"DisableStrongAugment needs a finite Trainer(max_epochs=...); got {max_epochs}."
            )
        enabled = trainer.current_epoch < max_epochs - self.last_epochs
        self._dataset(trainer).set_strong_augment(enabled)
