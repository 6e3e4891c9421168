"""AutoTrainer: best/last checkpoints, exact resume, monitored metric, bad input, reloading."""

from __future__ import annotations

import pytest
import torch

from autotimm import AutoTrainer, ObjectDetector

from training_utils import quiet, tiny_model


def test_fit_keeps_best_and_last_and_resumes_exactly(tiny_data, tmp_path):
    model = tiny_model()
    trainer = AutoTrainer(max_epochs=1, default_root_dir=tmp_path, precision="32-true", **quiet())
    trainer.fit(model, datamodule=tiny_data)
    ckpts = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    assert "last.ckpt" in ckpts and any(n.startswith("best-epoch000") for n in ckpts)
    assert trainer.global_step == 3  # 12 images / batch 4
    assert (tmp_path / "metrics.csv").read_text().count("val/mAP") >= 1

    resumed = AutoTrainer(max_epochs=2, default_root_dir=tmp_path, precision="32-true", **quiet())
    model2 = tiny_model(seed=1)  # different init: resume must restore weights and optimizer state
    resumed.fit(model2, datamodule=tiny_data, ckpt_path="last")
    assert resumed.global_step == 6 and resumed.current_epoch == 2


def test_checkpoint_reload_gives_identical_predictions(tiny_data, tmp_path):
    model = tiny_model(score_thresh=0.0)
    trainer = AutoTrainer(max_epochs=1, default_root_dir=tmp_path, precision="32-true", **quiet())
    trainer.fit(model, datamodule=tiny_data)
    loaded = ObjectDetector.load_from_checkpoint(trainer.best_model_path)
    assert loaded.image_size == 96 and loaded.class_names == ["circle", "square", "triangle"]
    image = torch.randint(0, 255, (3, 80, 120), dtype=torch.uint8)
    model.load_state_dict(loaded.state_dict())  # the best epoch is the only epoch
    a = model.predict(image, precision="fp32")[0]
    b = loaded.predict(image, precision="fp32")[0]
    assert len(a["boxes"]) > 0
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])


def test_missing_monitored_metric_lists_logged_ones(tiny_data, tmp_path):
    trainer = AutoTrainer(max_epochs=1, monitor="val/nope", default_root_dir=tmp_path, precision="32-true",
                          num_sanity_val_steps=0, **quiet())
    with pytest.raises(KeyError, match=r"val/nope.*val/loss"):
        trainer.fit(tiny_model(), datamodule=tiny_data)


def test_num_classes_mismatch_fails_before_the_first_step(tiny_data, tmp_path):
    model = tiny_model(num_classes=5)
    trainer = AutoTrainer(max_epochs=1, default_root_dir=tmp_path, **quiet())
    with pytest.raises(ValueError, match="num_classes=5 but the data module has 3"):
        trainer.fit(model, datamodule=tiny_data)
    assert trainer.global_step == 0


def test_nan_loss_names_step_and_images_and_keeps_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    model = tiny_model()
    AutoTrainer(max_epochs=1, default_root_dir=tmp_path, precision="32-true", **quiet()).fit(model, datamodule=tiny_data)
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    original = model.compute_loss

    def poisoned(images, targets, outputs=None):
        out = original(images, targets, outputs)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(model, "compute_loss", poisoned)
    with pytest.raises(FloatingPointError, match=r"global step 3 .*image ids \["):
        AutoTrainer(max_epochs=2, default_root_dir=tmp_path, precision="32-true", **quiet()).fit(
            model, datamodule=tiny_data, ckpt_path="last")
    assert last.read_bytes() == before
    assert torch.load(last, weights_only=False)["global_step"] == 3


def test_interrupted_checkpoint_write_keeps_previous_file(tiny_data, tmp_path, monkeypatch):
    import autotimm.callbacks.checkpoint as checkpoint_module

    model = tiny_model()
    trainer = AutoTrainer(max_epochs=1, default_root_dir=tmp_path, precision="32-true", **quiet())
    trainer.fit(model, datamodule=tiny_data)
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def crash(src, dst):  # the process dies after writing the temporary file, before moving it into place
        raise KeyboardInterrupt("simulated crash during checkpoint write")

    monkeypatch.setattr(checkpoint_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(last)
    assert last.read_bytes() == before
    assert sorted(p.name for p in last.parent.iterdir() if p.name.endswith(".tmp")) == []  # temp file removed


def test_bad_trainer_arguments():
    with pytest.raises(ValueError, match="mode='up'"):
        AutoTrainer(mode="up")
    with pytest.raises(ValueError, match="ema=2.0"):
        AutoTrainer(ema=2.0)


def test_checkpoint_of_a_pretrained_backbone_loads_offline(tiny_data, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from autotimm import FeatureBackboneConfig

    weights = tmp_path / "resnet18.pth"
    import timm

    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), weights)
    model = tiny_model(backbone=FeatureBackboneConfig("resnet18", weights_file=str(weights)))
    trainer = AutoTrainer(max_epochs=1, default_root_dir=tmp_path, precision="32-true", limit_train_batches=1, **quiet())
    trainer.fit(model, datamodule=tiny_data)
    weights.unlink()  # neither the weights file nor the hub is needed to reload
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    loaded = ObjectDetector.load_from_checkpoint(trainer.best_model_path)
    assert torch.equal(loaded.backbone.model.conv1.weight, model.backbone.model.conv1.weight)
