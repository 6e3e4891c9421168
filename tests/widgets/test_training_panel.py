"""TrainingPanel: a real short fit in a background thread, the Stop button, refusals shown in the panel."""

from __future__ import annotations

import time

import pytest

from autotimm.data import example
from autotimm.widgets import DetectorBuilder, TrainingPanel
from autotimm.widgets.training_panel import make_datamodule


def trainer_kwargs(tmp_path) -> dict:
    # fp32: tiny random models at 64 px are not what the bf16 fast path is for.
    return dict(
        default_root_dir=str(tmp_path), accelerator="cpu", precision="32-true", limit_train_batches=2,
        limit_val_batches=1, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, logger=False,
    )


def test_start_trains_in_the_background_and_draws_the_live_plot(tiny_settings, shapes_data, tmp_path):
    builder = DetectorBuilder("test_resnet", **{**tiny_settings, "num_classes": 1})
    panel = TrainingPanel(builder, shapes_data, trainer_kwargs=trainer_kwargs(tmp_path), plot_every_n_steps=1)
    assert panel.start() is True
    assert panel.start_button.disabled and not panel.stop_button.disabled
    assert panel.join(timeout=300), "training did not finish"
    assert panel.error is None, panel.status.value
    assert "Finished after 2 epoch(s), 4 steps" in panel.status.value
    history = panel.live_plot.history
    assert history["step"] == [1.0, 2.0, 3.0, 4.0] and history["val_epoch"] == [0.0, 1.0]
    assert bytes(panel.plot.value).startswith(b"\x89PNG") and bytes(panel.plot.value) == panel.live_plot.last_png
    assert panel.model is builder.model and panel.model.num_classes == 3  # from the data module
    assert panel.datamodule.image_size == 64 and panel.datamodule.batch_size == 4
    assert not panel.start_button.disabled and panel.stop_button.disabled


def test_stop_button_ends_a_long_fit_early(tiny_settings, shapes_data, tmp_path):
    builder = DetectorBuilder("test_resnet", **{**tiny_settings, "max_epochs": 200})
    panel = TrainingPanel(builder, shapes_data, trainer_kwargs=trainer_kwargs(tmp_path), show_builder=False)
    assert builder not in panel.children
    assert panel.start()
    deadline = time.monotonic() + 120
    while not panel.live_plot.history["step"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert panel.live_plot.history["step"], "no training step within 120 s"
    assert panel.start() is False and "already running" in panel.status.value
    panel.stop_button.click()
    assert panel.join(timeout=120)
    assert panel.error is None and "Stopped after" in panel.status.value
    assert panel.trainer.global_step < 20 and panel.trainer.current_epoch < 200


def test_refusals_are_messages_in_the_panel(tiny_settings, shapes_data, tmp_path):
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    panel = TrainingPanel(builder, shapes_data, trainer_kwargs=trainer_kwargs(tmp_path))
    panel.stop()
    assert "Nothing to stop" in panel.status.value
    builder.controls["fpn_channels"].value = 100
    panel.start_button.click()
    assert panel.thread is None and "Could not start: ValueError" in panel.status.value
    assert "fpn_channels=100" in panel.status.value
    builder.controls["fpn_channels"].value = 16
    bad = TrainingPanel(builder, data="data/shapes/train.json", trainer_kwargs=trainer_kwargs(tmp_path))
    assert bad.start() is False and "expected a LightningDataModule" in bad.status.value
    with pytest.raises(ValueError, match="callbacks through callbacks="):
        TrainingPanel(builder, shapes_data, trainer_kwargs={"callbacks": []})
    with pytest.raises(ValueError, match="expected a DetectorBuilder, got dict"):
        TrainingPanel({}, shapes_data)


def test_make_datamodule_accepts_modules_examples_and_factories():
    ds = example("shapes")
    ready = ds.datamodule(image_size=96, batch_size=2, num_workers=0)
    assert make_datamodule(ready, {"image_size": 64, "batch_size": 4}) is ready  # used as is
    from_example = make_datamodule(ds, {"image_size": 64, "batch_size": 4})
    assert from_example.batch_size == 4 and from_example.num_classes == 3
    with pytest.raises(ValueError, match="returned list, not a LightningDataModule"):
        make_datamodule(lambda **kw: [], {"image_size": 64, "batch_size": 4})
