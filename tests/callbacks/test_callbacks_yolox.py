"""YOLOX training pieces: the last-epochs callback, the ramped EMA and the one-line recipe."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.callbacks.yolox import YOLOXEMA, YOLOXLastEpochs, yolox_ema_avg_fn
from autotimm.data.examples import example
from autotimm.data.transforms import AugmentConfig
from autotimm.recipes import Recipe, yolox_recipe

from synthetic import collate, make_samples


def _tiny_yolox(**kw):
    return ObjectDetector(
        FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, detection_arch="yolox",
        fpn_channels=16, head_num_convs=1, strides=(8, 16, 32), compile_model=False, deterministic=False, **kw,
    )


def _trainer(callbacks, max_epochs=2, **kw):
    return L.Trainer(
        max_epochs=max_epochs, limit_train_batches=1, limit_val_batches=0, callbacks=callbacks, accelerator="cpu",
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kw,
    )


class Record(L.Callback):
    """What the model and data looked like at each epoch start and which losses were logged."""

    def __init__(self):
        self.phases, self.logged = [], []

    def on_train_epoch_start(self, trainer, pl_module):
        dataset = trainer.datamodule.train_dataset
        self.phases.append((trainer.current_epoch, pl_module.detection_head.use_l1, dataset.strong_augment))

    def on_train_epoch_end(self, trainer, pl_module):
        self.logged.append(sorted(k for k in trainer.callback_metrics if k.startswith("train/")))


def test_last_epochs_switch_l1_on_and_mosaic_off_with_ema(tmp_path):
    dm = example("shapes").datamodule(image_size=64, batch_size=2, num_workers=0, image_check="none", augment="strong")
    model = _tiny_yolox()
    record, ema = Record(), YOLOXEMA(decay=0.5, ramp_steps=1.0)
    _trainer([YOLOXLastEpochs(last_epochs=1), ema, record], max_epochs=2).fit(model, datamodule=dm)
    assert record.phases == [(0, False, True), (1, True, False)]
    assert "train/l1_loss" not in " ".join(record.logged[0])
    assert any(k.startswith("train/l1_loss") for k in record.logged[1])
    assert any(k.startswith("train/obj_loss") for k in record.logged[1])
    # Two optimizer steps were averaged, and the model ends with the averaged weights.
    assert int(ema._average_model.n_averaged) == 2
    for averaged, current in zip(ema._average_model.module.parameters(), model.parameters()):
        assert torch.equal(averaged, current)


def test_last_epochs_switch_back_for_an_earlier_epoch():
    # The phase follows trainer.current_epoch: a second fit from epoch 0 turns strong augmentation back on.
    dm = example("shapes").datamodule(image_size=64, batch_size=2, num_workers=0, image_check="none", augment="strong")
    model = _tiny_yolox()
    record = Record()
    _trainer([YOLOXLastEpochs(last_epochs=1), record], max_epochs=1).fit(model, datamodule=dm)
    _trainer([YOLOXLastEpochs(last_epochs=0), record], max_epochs=1).fit(model, datamodule=dm)
    assert record.phases == [(0, True, False), (0, False, True)]


def test_last_epochs_fails_early_on_fcos_and_on_plain_data():
    fcos = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
                          head_num_convs=1, strides=(8, 16, 32), compile_model=False, deterministic=False)
    loader = DataLoader(make_samples(2, 64), batch_size=2, collate_fn=collate)
    with pytest.raises(ValueError, match=r"detection_arch='yolox'.*got detection_arch='fcos'.*l1_loss=False"):
        _trainer([YOLOXLastEpochs(1)]).fit(fcos, loader)
    with pytest.raises(ValueError, match=r"set_strong_augment.*disable_strong_augment=False"):
        _trainer([YOLOXLastEpochs(1)]).fit(_tiny_yolox(), loader)
    # L1 only works with any data.
    model = _tiny_yolox()
    _trainer([YOLOXLastEpochs(1, disable_strong_augment=False)], max_epochs=1).fit(model, loader)
    assert model.detection_head.use_l1


def test_callback_options_are_validated():
    with pytest.raises(ValueError, match=r"last_epochs must be an int >= 0; got -1"):
        YOLOXLastEpochs(-1)
    with pytest.raises(ValueError, match=r"would do nothing"):
        YOLOXLastEpochs(5, l1_loss=False, disable_strong_augment=False)
    with pytest.raises(ValueError, match=r"decay=1.0.*\[0, 1\)"):
        YOLOXEMA(decay=1.0)
    with pytest.raises(ValueError, match=r"ramp_steps=0"):
        YOLOXEMA(ramp_steps=0)


def test_ramped_ema_by_hand():
    ema = yolox_ema_avg_fn(decay=0.5, ramp_steps=2000)
    averaged, current = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    d = 0.5 * (1 - math.exp(-1))  # after 2000 updates
    out = ema(averaged, current, torch.tensor(2000))
    assert out.tolist() == pytest.approx([1 - d, 2 * d], rel=1e-6)
    # At the start the decay is ~0: the average follows the model.
    assert ema(averaged, current, torch.tensor(0)).tolist() == pytest.approx([1.0, 0.0])
    # Integer buffers (BatchNorm's counter) take the current value.
    assert ema(torch.tensor([3]), torch.tensor([7]), torch.tensor(5)).tolist() == [7]


def test_yolox_recipe_settings():
    recipe = yolox_recipe(batch_size=32, max_epochs=100, no_aug_epochs=10, warmup_epochs=3)
    assert isinstance(recipe, Recipe) and set(recipe.as_dict()) == {"datamodule_kwargs", "model_kwargs", "trainer_kwargs"}
    m = recipe.model_kwargs
    assert m["detection_arch"] == "yolox" and m["strides"] == (8, 16, 32)
    assert m["optimizer"] == "sgd" and m["optimizer_kwargs"] == {"momentum": 0.9, "nesterov": True}
    assert m["lr"] == pytest.approx(0.01 * 32 / 64) and m["weight_decay"] == 5e-4
    assert m["scheduler"] == "cosine"
    assert m["scheduler_kwargs"] == {"eta_min": pytest.approx(0.05 * 0.005), "interval": "epoch", "warmup_epochs": 3}
    d = recipe.datamodule_kwargs
    assert isinstance(d["augment"], AugmentConfig) and d["augment"].mosaic_prob == 1.0 and d["augment"].mixup_prob == 1.0
    assert d["batch_size"] == 32 and d["image_size"] == 640
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
        ({"mixup_prob": 1.5}, r"mixup_prob must be in \[0, 1\]; got 1.5"),
        ({"steps_per_epoch": 0}, r"steps_per_epoch=0"),
        ({"image_size": 16}, r"image_size=16"),
    ],
)
def test_yolox_recipe_rejects_bad_settings(override, match):
    with pytest.raises(ValueError, match=match):
        yolox_recipe(**override)
