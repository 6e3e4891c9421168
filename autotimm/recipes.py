"""Training recipes: published training settings as keyword arguments, taken in one line.

A recipe fills the arguments of the three objects a training needs (the data module, the detector and
the Lightning Trainer); anything can still be overridden before they are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from autotimm.data.transforms import PRESETS


@dataclass
class Recipe:
    """Keyword arguments for ``DetectionDataModule``, ``ObjectDetector`` and ``lightning.Trainer``.

    Attributes:
        datamodule_kwargs: for ``DetectionDataModule(train=..., val=..., **datamodule_kwargs)``.
        model_kwargs: for ``ObjectDetector(backbone=..., num_classes=..., **model_kwargs)``.
        trainer_kwargs: for ``lightning.Trainer(**trainer_kwargs)`` (holds fresh callback instances).
    """

    datamodule_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{"datamodule_kwargs": ..., "model_kwargs": ..., "trainer_kwargs": ...}``."""
        return {"datamodule_kwargs": self.datamodule_kwargs, "model_kwargs": self.model_kwargs, "trainer_kwargs": self.trainer_kwargs}


# Below this input size yolox_recipe() leaves mosaic and mixup off unless asked (see its docstring).
MOSAIC_MIN_SIZE = 416


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"yolox_recipe({name}={value!r}): expected {expected}.")


def yolox_recipe(
    image_size: int = 640,
    batch_size: int = 16,
    max_epochs: int = 300,
    no_aug_epochs: int = 15,
    warmup_epochs: int = 5,
    lr_per_image: float = 0.01 / 64,
    lr_min_batch: int = 64,
    min_lr_ratio: float = 0.05,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    mosaic_prob: float | None = None,
    mixup_prob: float | None = None,
    ema: bool = True,
    ema_decay: float = 0.9998,
    steps_per_epoch: int | None = None,
    fpn_channels: int = 256,
    head_num_convs: int = 2,
    strides: tuple[int, ...] = (8, 16, 32),
) -> Recipe:
    """YOLOX's training settings (Ge et al. 2021, Megvii-BaseDetection/YOLOX ``yolox_base.py``).

    What it sets, and the YOLOX value it follows:

    * model: ``detection_arch="yolox"``, three levels P3-P5 (``strides=(8, 16, 32)``), two convs per
      tower; SGD with momentum 0.9 and Nesterov, ``lr = 0.01 / 64`` per image of the batch (batches
      below 64 images keep the batch-64 lr 0.01, see ``lr_min_batch``),
      weight decay 5e-4 (not on norms and biases); linear warm-up for ``warmup_epochs``, then cosine
      down to ``min_lr_ratio * lr``; evaluation at score 0.01 and NMS IoU 0.65.
    * data: mosaic (``mosaic_prob``) and mixup (``mixup_prob``) on top of the "strong" preset's scale
      jitter, flips and colour jitter.
    * trainer: ``max_epochs``; :class:`~autotimm.callbacks.yolox.YOLOXLastEpochs` turns mosaic/mixup
      off and the L1 loss on for the last ``no_aug_epochs``; :class:`~autotimm.callbacks.yolox.YOLOXEMA`
      keeps a ramped EMA of the weights (validated, saved and returned at the end).

    Differences from YOLOX: its warm-up is quadratic per iteration; here it is linear per optimizer
    step (the detector turns ``warmup_epochs`` into steps from the trainer's steps per epoch). YOLOX keeps the minimum lr for the no-aug epochs; here
    the cosine reaches it at the last epoch. Backbone and FPN are autotimm's (any timm model + FPN)
    rather than CSPDarknet + PAFPN, and the head uses GroupNorm instead of BatchNorm.

    Args:
        image_size: training and evaluation size (YOLOX: 640).
        batch_size: images per step; sets the lr.
        max_epochs / no_aug_epochs / warmup_epochs: schedule lengths in epochs (YOLOX: 300 / 15 / 5).
        lr_per_image: lr per image of the batch (YOLOX: 0.01 / 64).
        lr_min_batch: the lr is ``lr_per_image * max(batch_size, lr_min_batch)``. YOLOX trains at batch
            64 and scales linearly; scaled down to batch 8 (0.00125) a short run from scratch barely
            learns slowly (raccoon photos, 256 px: val mAP 0.038 after two epochs against 0.124 at lr
            0.01; level by epoch 3 without mosaic; see benchmarks/RESULTS.md, "YOLOX recipe on small
            data"). 1 gives the strict linear rule.
        min_lr_ratio: final lr as a fraction of the peak (YOLOX: 0.05).
        weight_decay / momentum: SGD settings (YOLOX: 5e-4 / 0.9, Nesterov).
        mosaic_prob / mixup_prob: strong augmentation probabilities (YOLOX: 1.0 / 1.0). None: 1.0 from
            ``image_size`` 416 (YOLOX's smallest training size) up, 0.0 below it: at 256 px on 160 raccoon
            photos, from scratch, mosaic + mixup took val mAP from 0.17-0.19 (off) to 0.04 (on) after 3
            epochs (benchmarks/RESULTS.md, "YOLOX recipe on small data").
        ema / ema_decay: keep an EMA of the weights (YOLOX: yes, 0.9998).
        steps_per_epoch: not needed: warm-up and cosine step every optimizer step anyway, with the
            steps per epoch the trainer counts. When given, the warm-up is fixed to
            ``warmup_epochs * steps_per_epoch`` steps whatever the data.
        fpn_channels / head_num_convs / strides: neck and head size.

    Returns:
        a :class:`Recipe`; its ``trainer_kwargs`` hold new callback instances on every call.

    Example:
        >>> import lightning as L, autotimm
        >>> from autotimm.recipes import yolox_recipe
        >>> recipe = yolox_recipe(batch_size=16, max_epochs=100)
        >>> dm = autotimm.DetectionDataModule(train="train.json", val="val.json", **recipe.datamodule_kwargs)  # doctest: +SKIP
        >>> model = autotimm.ObjectDetector("resnet50", num_classes=dm.num_classes, **recipe.model_kwargs)  # doctest: +SKIP
        >>> L.Trainer(**recipe.trainer_kwargs).fit(model, datamodule=dm)  # doctest: +SKIP
    """
    from autotimm.callbacks.yolox import YOLOXEMA, YOLOXLastEpochs

    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    _check("image_size", image_size, positive_int(image_size) and image_size >= 32, "an int >= 32, e.g. 640")
    _check("batch_size", batch_size, positive_int(batch_size), "an int >= 1")
    _check("max_epochs", max_epochs, positive_int(max_epochs), "an int >= 1")
    _check("no_aug_epochs", no_aug_epochs, isinstance(no_aug_epochs, int) and 0 <= no_aug_epochs < max_epochs,
           f"an int in [0, max_epochs={max_epochs})")
    _check("warmup_epochs", warmup_epochs, isinstance(warmup_epochs, int) and 0 <= warmup_epochs < max_epochs,
           f"an int in [0, max_epochs={max_epochs})")
    _check("lr_per_image", lr_per_image, lr_per_image > 0, "a positive float, e.g. 0.01 / 64")
    _check("lr_min_batch", lr_min_batch, positive_int(lr_min_batch), "an int >= 1 (1: lr strictly per image)")
    _check("min_lr_ratio", min_lr_ratio, 0 <= min_lr_ratio <= 1, "a float in [0, 1]")
    _check("steps_per_epoch", steps_per_epoch, steps_per_epoch is None or positive_int(steps_per_epoch), "None or an int >= 1")

    lr = lr_per_image * max(batch_size, lr_min_batch)
    schedule: dict[str, Any] = {"eta_min": min_lr_ratio * lr}
    if steps_per_epoch is None:
        schedule.update(interval="epoch", warmup_epochs=warmup_epochs)
    else:
        schedule.update(interval="step", warmup_steps=warmup_epochs * steps_per_epoch)
    default_prob = 1.0 if image_size >= MOSAIC_MIN_SIZE else 0.0
    mosaic_prob = default_prob if mosaic_prob is None else mosaic_prob
    mixup_prob = default_prob if mixup_prob is None else mixup_prob
    augment = replace(PRESETS["strong"], mosaic_prob=mosaic_prob, mixup_prob=mixup_prob)  # validates the probabilities

    callbacks: list[Any] = [YOLOXLastEpochs(last_epochs=no_aug_epochs)] if no_aug_epochs else []
    if ema:
        callbacks.append(YOLOXEMA(decay=ema_decay))
    return Recipe(
        datamodule_kwargs={"image_size": image_size, "batch_size": batch_size, "augment": augment},
        model_kwargs={
            "detection_arch": "yolox",
            "fpn_channels": fpn_channels,
            "head_num_convs": head_num_convs,
            "strides": tuple(strides),
            "lr": lr,
            "weight_decay": weight_decay,
            "optimizer": "sgd",
            "optimizer_kwargs": {"momentum": momentum, "nesterov": True},
            "scheduler": "cosine",
            "scheduler_kwargs": schedule,
            "score_thresh": 0.01,
            "nms_thresh": 0.65,
        },
        trainer_kwargs={"max_epochs": max_epochs, "callbacks": callbacks},
    )
