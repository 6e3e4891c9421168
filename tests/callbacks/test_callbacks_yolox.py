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
