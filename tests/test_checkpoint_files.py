"""Unreadable checkpoint and ONNX files (truncated, empty, not a checkpoint) give one clear error naming
the file (issue 13, item 12)."""

from __future__ import annotations

import lightning
import pytest
import torch

from autotimm import FeatureBackboneConfig, ObjectDetector


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=2, fpn_channels=16,
                           head_num_convs=1, compile_model=False, deterministic=False)
    path = tmp_path_factory.mktemp("ckpt") / "good.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    return path


def test_good_checkpoint_loads(checkpoint):
    assert ObjectDetector.load_from_checkpoint(checkpoint).num_classes == 2


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "state_dict_only"])
def test_unreadable_checkpoint_names_the_file(checkpoint, tmp_path, kind):
    bad = tmp_path / f"{kind}.ckpt"
    data = checkpoint.read_bytes()
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("model: resnet18\n")
    else:
        torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match=rf"'{bad}' is not a readable autotimm checkpoint"):
        ObjectDetector.load_from_checkpoint(bad)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        ObjectDetector.load_from_checkpoint(tmp_path / "nope.ckpt")
