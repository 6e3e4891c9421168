"""yolox_recipe: YOLOX's training recipe as ObjectDetector / DataModule / Trainer settings."""

from __future__ import annotations

import pytest
import torch

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.callbacks.yolox import YOLOXEMA, YOLOXLastEpochs
from autotimm.data.transforms import AugmentConfig
from autotimm.recipes import Recipe, yolox_recipe


def test_yolox_recipe_settings():
    recipe = yolox_recipe(batch_size=32, max_epochs=100, no_aug_epochs=10, warmup_epochs=3)
    assert isinstance(recipe, Recipe) and set(recipe.as_dict()) == {"datamodule_kwargs", "model_kwargs", "trainer_kwargs"}
    m = recipe.model_kwargs
    assert m["detection_arch"] == "yolox" and m["strides"] == (8, 16, 32)
    assert m["optimizer"] == "sgd" and m["optimizer_kwargs"] == {"momentum": 0.9, "nesterov": True}
    assert m["lr"] == pytest.approx(0.01) and m["weight_decay"] == 5e-4  # below batch 64: YOLOX's batch-64 lr
    assert m["scheduler"] == "cosine"
    assert m["scheduler_kwargs"] == {"eta_min": pytest.approx(0.05 * 0.01), "interval": "epoch", "warmup_epochs": 3}
    assert yolox_recipe(batch_size=128).model_kwargs["lr"] == pytest.approx(0.02)  # linear above it
    assert yolox_recipe(batch_size=32, lr_min_batch=1).model_kwargs["lr"] == pytest.approx(0.005)  # strictly linear
    d = recipe.datamodule_kwargs
    assert isinstance(d["augment"], AugmentConfig) and d["augment"].mosaic_prob == 1.0 and d["augment"].mixup_prob == 1.0
    assert d["batch_size"] == 32 and d["image_size"] == 640
    small = yolox_recipe(image_size=256).datamodule_kwargs["augment"]  # below 416: off unless asked
    assert (small.mosaic_prob, small.mixup_prob) == (0.0, 0.0)
    asked = yolox_recipe(image_size=256, mosaic_prob=0.5).datamodule_kwargs["augment"]
    assert (asked.mosaic_prob, asked.mixup_prob) == (0.5, 0.0)
    t = recipe.trainer_kwargs
    assert t["max_epochs"] == 100
    last, ema = t["callbacks"]
    assert isinstance(last, YOLOXLastEpochs) and last.last_epochs == 10
    assert isinstance(ema, YOLOXEMA) and ema.decay == 0.9998
    # Fresh callbacks on every call; per-step warm-up when the epoch length is known.
    assert yolox_recipe().trainer_kwargs["callbacks"][0] is not yolox_recipe().trainer_kwargs["callbacks"][0]
    steps = yolox_recipe(steps_per_epoch=50, warmup_epochs=2, ema=False, no_aug_epochs=0)
    assert steps.model_kwargs["scheduler_kwargs"]["interval"] == "step"
    assert steps.model_kwargs["scheduler_kwargs"]["warmup_steps"] == 100
    assert steps.trainer_kwargs["callbacks"] == []


def test_yolox_recipe_builds_a_model_whose_optimizer_follows_it():
    recipe = yolox_recipe(batch_size=8, max_epochs=10, no_aug_epochs=2, warmup_epochs=2, image_size=64)
    kwargs = {**recipe.model_kwargs, "fpn_channels": 16, "head_num_convs": 1}
    model = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3,
                           compile_model=False, deterministic=False, **kwargs)
    conf = model.configure_optimizers()
    opt = conf["optimizer"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert isinstance(conf["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.SequentialLR)  # warm-up, cosine


@pytest.mark.parametrize(
    "override, match",
    [
        ({"batch_size": 0}, r"batch_size=0"),
        ({"max_epochs": 10, "no_aug_epochs": 10}, r"no_aug_epochs=10.*\[0, max_epochs=10\)"),
        ({"warmup_epochs": -1}, r"warmup_epochs=-1"),
        ({"lr_per_image": 0.0}, r"lr_per_image=0.0"),
        ({"lr_min_batch": 0}, r"lr_min_batch=0\): expected an int >= 1"),
        ({"mixup_prob": 1.5}, r"mixup_prob must be in \[0, 1\]; got 1.5"),
        ({"steps_per_epoch": 0}, r"steps_per_epoch=0"),
        ({"image_size": 16}, r"image_size=16"),
    ],
)
def test_yolox_recipe_rejects_bad_settings(override, match):
    with pytest.raises(ValueError, match=match):
        yolox_recipe(**override)
