"""Detector presets: named constructor arguments that build, print as runnable code, and cost what they say."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import autotimm
from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.presets import DETECTOR_PRESETS, DetectorPreset, preset
from autotimm.recipes import Recipe


def test_preset_names_and_sizes_increase():
    assert list(DETECTOR_PRESETS) == ["nano", "small", "medium"]
    gflops = [preset(n).gflops for n in DETECTOR_PRESETS]
    assert gflops == sorted(gflops) and 0.8 < gflops[0] < 2.5 and 4 < gflops[1] < 7 and 10 < gflops[2] < 20
    assert autotimm.preset("nano") is DETECTOR_PRESETS["nano"]
    assert isinstance(autotimm.preset("small"), autotimm.DetectorPreset)


@pytest.mark.parametrize("bad", ["tiny", "Nano", "", None, 3])
def test_unknown_preset_lists_the_valid_names(bad):
    with pytest.raises(ValueError, match=r"unknown preset; expected one of \['nano', 'small', 'medium'\]"):
        preset(bad)


def test_recipe_is_a_fresh_copy_each_call():
    p = preset("nano")
    recipe = p.recipe()
    assert isinstance(recipe, Recipe)
    recipe.model_kwargs["scheduler_kwargs"]["warmup_steps"] = 999
    recipe.datamodule_kwargs["image_size"] = 64
    assert p.recipe().model_kwargs["scheduler_kwargs"]["warmup_steps"] == 50
    assert p.recipe().datamodule_kwargs["image_size"] == 256


def test_warm_up_is_per_step_in_every_preset():
    for p in DETECTOR_PRESETS.values():
        kwargs = p.model_kwargs["scheduler_kwargs"]
        assert kwargs["interval"] == "step" and kwargs["warmup_steps"] > 0, p.name


def test_from_preset_builds_the_preset_and_applies_overrides():
    model = ObjectDetector.from_preset("nano", num_classes=3, pretrained=False, lr=5e-4, compile_model=False)
    hp = model.hparams
    assert hp.backbone.model_name == "mobilenetv4_conv_small" and hp.backbone.pretrained is False
    assert hp.fpn_channels == 64 and hp.head_num_convs == 2 and tuple(hp.strides) == (8, 16, 32)
    assert hp.lr == 5e-4 and hp.detection_arch == "fcos"
    out = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(c.shape) for c in out[0]] == [(1, 3, 8, 8), (1, 3, 4, 4), (1, 3, 2, 2)]


def test_from_preset_refuses_a_backbone_override():
    with pytest.raises(ValueError, match=r"backbone='resnet18'.*preset's \('mobilenetv4_conv_small'\)"):
        ObjectDetector.from_preset("nano", num_classes=1, pretrained=False, backbone="resnet18")
    with pytest.raises(ValueError, match="unknown preset"):
        ObjectDetector.from_preset("large", num_classes=1)


def test_code_runs_and_builds_what_the_preset_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shapes = autotimm.example("shapes")
    p = preset("small")
    code = p.code(train=str(shapes.train), val=str(shapes.val), images_dir=None, pretrained=False, fit=False)
    assert "trainer.fit" not in code and "pretrained=False" in code
    assert "trainer.fit(model, datamodule=data)" in p.code()
    namespace: dict = {}
    exec(compile(code, "<preset code>", "exec"), namespace)  # noqa: S102 - our own generated code
    model, data, trainer = namespace["model"], namespace["data"], namespace["trainer"]
    assert model.hparams.backbone.model_name == "cs3darknet_m" and model.hparams.fpn_channels == 96
    assert model.hparams.scheduler_kwargs == {"interval": "step", "warmup_steps": 50}
    assert data.image_size == 256 and data.batch_size == 8
    assert trainer.max_epochs == 30


@pytest.mark.parametrize("name", list(DETECTOR_PRESETS))
def test_stated_flops_and_parameters_are_measured(name):
    p: DetectorPreset = preset(name)
    model = ObjectDetector(FeatureBackboneConfig(p.backbone, pretrained=False), num_classes=1, compile_model=False,
                           **p.model_kwargs).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.raw_outputs(torch.zeros(1, 3, 256, 256))
    assert counter.get_total_flops() / 1e9 == pytest.approx(p.gflops, rel=0.02)
    assert sum(t.numel() for t in model.parameters()) / 1e6 == pytest.approx(p.params_m, rel=0.02)
