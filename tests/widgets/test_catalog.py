"""The backbone catalogue: search, families, facts computed on the meta device."""

from __future__ import annotations

import pytest

from autotimm.widgets.catalog import backbone_info, close_names, families, family_names, search_backbones


def test_search_is_substring_or_wildcard_and_case_insensitive():
    names = search_backbones("ResNet18")
    assert "resnet18" in names and "resnet18d" in names and "resnet50" not in names
    wild = search_backbones("resnet1*")
    assert "resnet18" in wild and "resnet101" in wild and "seresnet18" not in wild
    assert search_backbones("no_such_model_xyz") == []


def test_family_filter_uses_timm_modules():
    assert families()["convnext_tiny"] == "convnext"
    assert families()["vit_base_patch16_224"] == "vision_transformer"
    assert {"resnet", "convnext", "efficientnet"} <= set(family_names())
    convnexts = search_backbones("", "convnext")
    assert "convnext_tiny" in convnexts and all(families()[n] == "convnext" for n in convnexts)
    assert "resnet18" not in search_backbones("18", "convnext")
    with pytest.raises(ValueError, match="Unknown backbone family 'resnett'"):
        search_backbones("", "resnett")


def test_models_without_feature_maps_are_not_listed():
    assert "mixer_b16_224" not in families() and search_backbones("mixer") == []


def test_resnet18_facts_match_hand_counts():
    info = backbone_info("resnet18")
    # 11,689,512 parameters in timm's resnet18 minus its 512 x 1000 + 1000 classifier.
    assert info.num_params == 11_689_512 - 513_000
    assert info.channels == (128, 256, 512) and info.reductions == (8, 16, 32)
    assert info.out_indices == (2, 3, 4) and info.family == "resnet" and not info.nhwc
    assert info.summary() == "resnet18 (resnet): 11.2M params, channels [128, 256, 512] at strides [8, 16, 32]"


def test_four_stage_and_single_stride_backbones():
    convnext = backbone_info("convnext_tiny")
    assert convnext.out_indices == (1, 2, 3) and convnext.channels == (192, 384, 768)
    vit = backbone_info("test_vit")
    assert vit.reductions == (16,) and len(vit.channels) == 1
    # Strides only the deeper stages provide: a stride-16/32 detector takes two resnet stages.
    assert backbone_info("resnet18", (16, 32, 64)).channels == (256, 512)


def test_unknown_backbone_lists_close_names():
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnnet18'.*Close names: resnet18"):
        backbone_info("resnnet18")
    assert close_names("convnext_tinny")[0] == "convnext_tiny"
