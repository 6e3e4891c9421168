"""DetectorBuilder driven from Python: settings -> config, built model, generated code, refusals."""

from __future__ import annotations

import inspect
import math

import pytest

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.arch.registry import ARCHITECTURES
from autotimm.widgets import DetectorBuilder

MODEL_KEYS = {
    "backbone", "num_classes", "detection_arch", "lr", "weight_decay", "optimizer", "scheduler",
    "fpn_channels", "head_num_convs", "focal_alpha", "focal_gamma", "cls_loss_weight", "reg_loss_weight",
    "centerness_loss_weight", "score_thresh", "nms_thresh", "max_detections_per_image", "freeze_backbone",
    "compile_model", "deterministic",
}


def test_config_is_exact_keyword_sets(tiny_settings):
    builder = DetectorBuilder("resnet18", **tiny_settings)
    config = builder.config
    assert set(config) == {"model", "data", "trainer"}
    assert set(config["model"]) == MODEL_KEYS
    assert MODEL_KEYS <= set(inspect.signature(ObjectDetector).parameters)
    assert config["data"] == {"image_size": 64, "batch_size": 4}
    assert config["trainer"] == {"max_epochs": 2}
    assert config["model"] == builder.model_kwargs and config["data"] == builder.data_kwargs
    assert config["model"]["backbone"] == FeatureBackboneConfig("resnet18", pretrained=False, fallback_to_scratch=False)


def test_moving_controls_changes_config(tiny_settings):
    builder = DetectorBuilder("resnet18", **tiny_settings)
    c = builder.controls
    c["lr"].value = 10 ** -2.5  # log slider: 0.0031622776... is reported as a person would type it
    c["weight_decay"].value = 1e-3
    c["focal_alpha"].value = 0.3  # slider arithmetic gives 0.30000000000000004
    c["score_thresh"].value = 0.3
    c["max_detections_per_image"].value = 17
    c["scheduler"].value = "none"
    builder.picker.search.value = "resnet34"
    kw = builder.model_kwargs
    assert kw["lr"] == 0.00316 and kw["weight_decay"] == 0.001
    assert kw["focal_alpha"] == 0.3 and kw["score_thresh"] == 0.3
    assert kw["max_detections_per_image"] == 17 and kw["scheduler"] is None
    assert kw["backbone"].model_name == "resnet34"


def test_built_model_has_the_settings(tiny_settings):
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    builder.set(lr=1e-3, focal_gamma=1.5, reg_loss_weight=2.0, nms_thresh=0.6, head_num_convs=2, fpn_channels=24)
    model = builder.build()
    assert model is builder.model
    hp = model.hparams
    assert (hp.lr, hp.focal_gamma, hp.reg_loss_weight, hp.nms_thresh) == (1e-3, 1.5, 2.0, 0.6)
    assert model.detection_head.head.cls_logits.in_channels == 24
    assert sum(type(m).__name__ == "Conv2d" for m in model.detection_head.head.cls_subnet) == 2
    assert model.detection_head.criterion.cls_loss.gamma == 1.5
    assert model.backbone.config.model_name == "test_resnet" and model.num_classes == 3
    assert "Built ObjectDetector" in builder.message.value
    # The training panel overrides num_classes with the data module's.
    assert builder.build(num_classes=5).num_classes == 5


def test_generated_code_rebuilds_the_same_model(tiny_settings):
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    builder.set(lr=3e-4, centerness_loss_weight=0.5, max_epochs=3)
    code = builder.code
    assert builder.code_view.value == code
    assert "trainer.fit(model, datamodule=data)" in code and "max_epochs=3" in code
    namespace: dict = {}
    exec(code.split("data = DetectionDataModule(")[0], namespace)  # imports + model, not the data files
    rebuilt = namespace["model"]
    assert dict(rebuilt.hparams) == dict(builder.build().hparams)


def test_pretrained_falls_back_to_scratch_with_a_message(tiny_settings):
    builder = DetectorBuilder("test_resnet", **{**tiny_settings, "pretrained": True})
    assert builder.model_kwargs["backbone"].fallback_to_scratch is True
    model = builder.build()  # tests run with HF_HUB_OFFLINE=1: no weights can be had
    assert isinstance(model, ObjectDetector)
    assert any("training from scratch" in note for note in builder.notes)
    assert "training from scratch" in builder.message.value


def test_architecture_toggle_offers_registered_architectures(tiny_settings, monkeypatch):
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    assert builder.controls["detection_arch"].options[0] == "fcos"
    assert ("yolox" in builder.controls["detection_arch"].options) == ("yolox" in ARCHITECTURES)
    if "yolox" not in ARCHITECTURES:  # until YOLOX lands: register FCOS's spec under the name
        monkeypatch.setitem(ARCHITECTURES, "yolox", ARCHITECTURES["fcos"])
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    assert builder.controls["detection_arch"].options[:2] == ("fcos", "yolox")
    builder.controls["detection_arch"].value = "yolox"
    assert builder.model_kwargs["detection_arch"] == "yolox"
    assert builder.controls["centerness_loss_weight"].disabled  # FCOS only


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("fpn_channels", 100, "fpn_channels=100: expected a multiple of 8"),
        ("fpn_channels", 0, "fpn_channels=0"),
        ("cls_loss_weight", 0.0, "cls_loss_weight=0.0: expected > 0"),
        ("image_size", 100, "image_size=100: expected a multiple of 32"),
    ],
)
def test_invalid_settings_are_refused_in_the_widget(tiny_settings, setting, value, message):
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    assert builder.errors == [] and not builder.build_button.disabled
    builder.controls[setting].value = value
    assert any(message in e for e in builder.errors)
    assert message.split(":")[0] in builder.message.value and builder.build_button.disabled
    assert builder.code_view.value.startswith("# Fix these settings first")
    builder.build_button.click()  # a click reports, it does not raise
    assert builder.model is None
    with pytest.raises(ValueError, match=message.split(":")[0]):
        builder.build()
    with pytest.raises(ValueError, match="Invalid detector settings"):
        builder.config


def test_unknown_backbone_and_frozen_random_backbone_are_refused(tiny_settings):
    builder = DetectorBuilder("test_resnet", **tiny_settings)
    builder.picker.search.value = "resnnet18"
    assert "No backbone matches 'resnnet18'" in builder.message.value and builder.build_button.disabled
    builder.picker.value = "resnnet18"
    assert "Unknown backbone" in builder.message.value and "resnet18" in builder.message.value
    builder.picker.value = "test_resnet"
    builder.controls["freeze_backbone"].value = True
    assert "freeze_backbone=True with pretrained=False" in builder.message.value
    builder.controls["pretrained"].value = True
    assert builder.errors == [] and "valid" in builder.message.value


def test_bad_constructor_values():
    with pytest.raises(ValueError, match="no setting 'learning_rate'"):
        DetectorBuilder("test_resnet", learning_rate=1e-3)
    with pytest.raises(ValueError, match=r"lr=0.5\): expected a value in \[1e-06, 0.1\]"):
        DetectorBuilder("test_resnet", lr=0.5)
    with pytest.raises(ValueError, match="optimizer='lion'"):
        DetectorBuilder("test_resnet", optimizer="lion")
    assert math.isclose(DetectorBuilder("test_resnet", lr=0.1).model_kwargs["lr"], 0.1)


def test_controls_start_at_the_signature_defaults():
    builder = DetectorBuilder("resnet18")
    params = inspect.signature(ObjectDetector.__init__).parameters
    for name in ("lr", "weight_decay", "fpn_channels", "head_num_convs", "focal_alpha", "score_thresh", "nms_thresh",
                 "max_detections_per_image", "optimizer", "scheduler", "detection_arch", "deterministic"):
        assert builder.controls[name].value == params[name].default, name


def test_preset_sets_the_controls_levels_and_warm_up():
    from autotimm.presets import preset

    builder = DetectorBuilder("resnet18", num_classes=2, pretrained=False)
    assert builder.controls["preset"].value == "custom" and builder.preset_extras == {}
    builder.controls["preset"].value = "nano"  # as a click in the dropdown does
    nano = preset("nano")
    config = builder.config
    assert config["model"]["backbone"] == FeatureBackboneConfig("mobilenetv4_conv_small", pretrained=False, fallback_to_scratch=False)
    for key in ("detection_arch", "fpn_channels", "head_num_convs", "lr", "weight_decay", "optimizer", "scheduler",
                "strides", "scheduler_kwargs"):
        assert config["model"][key] == nano.model_kwargs[key], key
    assert config["data"] == {"image_size": 256, "batch_size": 8} and config["trainer"] == {"max_epochs": 30}
    assert "strides=(8, 16, 32)" in builder.code and "'warmup_steps': 50" in builder.code
    builder.controls["lr"].value = 1e-3  # a control still wins after the preset
    assert builder.model_kwargs["lr"] == 1e-3 and builder.model_kwargs["strides"] == (8, 16, 32)
    builder.controls["preset"].value = "custom"
    assert "strides" not in builder.model_kwargs and "scheduler_kwargs" not in builder.model_kwargs


def test_preset_in_the_constructor_and_explicit_values_win():
    builder = DetectorBuilder("resnet18", preset="small", num_classes=3, fpn_channels=64, pretrained=False)
    assert builder.picker.value == "cs3darknet_m"
    assert builder.model_kwargs["fpn_channels"] == 64 and builder.model_kwargs["head_num_convs"] == 2
    assert builder.model_kwargs["strides"] == (8, 16, 32)
    with pytest.raises(ValueError, match=r"preset='huge'.*\['custom', 'nano', 'small', 'medium'\]"):
        DetectorBuilder("resnet18", preset="huge")
