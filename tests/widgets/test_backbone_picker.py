"""BackbonePicker driven from Python: typing, family filter, selection, facts, unknown names."""

from __future__ import annotations

import pytest

from autotimm.widgets import BackbonePicker


def test_initial_choice_and_facts():
    picker = BackbonePicker("resnet18")
    assert picker.value == "resnet18" and picker.choices.value == "resnet18" and picker.error == ""
    assert "128, 256, 512" in picker.info.value and "11.18 M" in picker.info.value
    assert picker.backbone_info.reductions == (8, 16, 32)


def test_typing_filters_and_picks_exact_or_first_match():
    picker = BackbonePicker("resnet18")
    picker.search.value = "convnext_t"
    assert set(picker.choices.options) == {"convnext_tiny", "convnext_tiny_hnf"}
    assert picker.value == "convnext_tiny" and "192, 384, 768" in picker.info.value
    picker.search.value = "resnet50d"  # exact name wins over the first match
    assert picker.value == "resnet50d"
    picker.choices.value = picker.choices.options[-1]
    assert picker.value == picker.choices.options[-1]


def test_family_filter_restricts_the_list():
    picker = BackbonePicker("resnet18")
    picker.family.value = "convnext"
    options = picker.choices.options
    assert "convnext_tiny" in options and "test_convnext" in options and "resnet18" not in options
    assert all("convnext" in n for n in options)
    assert picker.value in picker.choices.options
    assert "matching backbones" in picker.count.value


def test_unknown_typed_name_is_a_message_not_an_exception():
    picker = BackbonePicker("resnet18")
    picker.search.value = "resnnet50"
    assert picker.value is None and picker.choices.options == ()
    assert "No backbone matches 'resnnet50'" in picker.error and "resnet50" in picker.error
    assert "resnnet50" in picker.info.value and picker.backbone_info is None
    picker.search.value = "resnet50"  # fixing the typo clears the error
    assert picker.value == "resnet50" and picker.error == ""


def test_unknown_name_set_from_code_keeps_value_and_explains():
    picker = BackbonePicker("resnet18")
    picker.value = "convnext_tinny"
    assert picker.value == "convnext_tinny" and picker.search.value == "convnext_tinny"
    assert "Unknown backbone 'convnext_tinny'" in picker.error and "convnext_tiny" in picker.error
    picker.value = "efficientnet_b0"
    assert picker.error == "" and picker.choices.value == "efficientnet_b0"


def test_bad_arguments():
    with pytest.raises(ValueError, match="family='cnn'"):
        BackbonePicker(family="cnn")
    with pytest.raises(ValueError, match="strides must be strictly increasing"):
        BackbonePicker(strides=(8, 12))
