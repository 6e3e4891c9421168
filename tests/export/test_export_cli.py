"""python -m autotimm.export: a real Lightning checkpoint in, an ONNX file and a parity report out."""

from __future__ import annotations

import subprocess
import sys

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from autotimm.export import OnnxDetector, read_metadata
from autotimm.export_cli import load_detector, main

from export_helpers import make_detector
from synthetic import collate, make_samples


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint after one training step, saved by Lightning, with class names and training size."""
    folder = tmp_path_factory.mktemp("ckpt")
    model = make_detector("resnet18", metrics=[])
    model.class_names, model.image_size = ["red", "green", "blue"], 128
    model.train()
    loader = DataLoader(make_samples(2, 64), batch_size=2, collate_fn=collate)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, default_root_dir=folder)
    trainer.fit(model, loader)
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return path, model.eval()


def test_load_detector_needs_no_model_hub(checkpoint, tmp_path):
    path, trained = checkpoint
    state = torch.load(path, map_location="cpu", weights_only=False)
    state["hyper_parameters"]["backbone"] = "resnet18"  # a plain name means pretrained=True: would download
    rewritten = tmp_path / "plain_name.ckpt"
    torch.save(state, rewritten)
    model = load_detector(rewritten)
    assert not model.training and model.class_names == ["red", "green", "blue"] and model.image_size == 128
    assert not model.backbone.config.pretrained
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(model(x)[0], trained(x)[0]):
            assert torch.equal(a, b)  # the weights are the checkpoint's


@pytest.mark.parametrize("e2e", [False, True])
def test_main_exports_and_reports_parity(checkpoint, tmp_path, capsys, e2e):
    out = tmp_path / "detector.onnx"
    argv = ["--checkpoint", str(checkpoint[0]), "--output", str(out), "--score-thresh", "0.1"] + (["--e2e"] if e2e else [])
    assert main(argv) == 0
    text = capsys.readouterr().out
    kind = "end-to-end (decode + NMS inside)" if e2e else "raw per-level outputs"
    assert f"wrote {out} (" in text and f"{kind}, fp32, input [B, 3, 128, 128], opset 18, " in text  # training size by default
    assert "parity check on 2 images at 128x128 (fp32):" in text and "detections at 128x128: match" in text
    raw_diff = float(text.split("raw outputs: max abs diff ")[1].split()[0])
    assert raw_diff < 1e-4
    meta = read_metadata(out)
    assert meta.end_to_end == e2e and meta.class_names == ["red", "green", "blue"] and meta.score_thresh == 0.1
    assert OnnxDetector(out).input_size == (128, 128)


def test_main_image_size_and_images(checkpoint, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "img.png"
    Image.fromarray(make_samples(1, 100)[0][0].permute(1, 2, 0).numpy()).save(image)
    out = tmp_path / "d.onnx"
    assert main(["--checkpoint", str(checkpoint[0]), "--output", str(out), "--image-size", "256", "--images", str(image)]) == 0
    text = capsys.readouterr().out
    assert "input [B, 3, 256, 256]" in text and "parity check on 1 images at 256x256" in text
    assert main(["--checkpoint", str(checkpoint[0]), "--output", str(out), "--no-check"]) == 0
    assert "parity" not in capsys.readouterr().out


def test_bad_arguments(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Checkpoint not found: '.*nope.ckpt'"):
        main(["--checkpoint", str(tmp_path / "nope.ckpt"), "--output", str(tmp_path / "x.onnx")])
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match=r"bare.ckpt' has no ObjectDetector hyperparameters \(keys: \['state_dict'\]\)"):
        main(["--checkpoint", str(tmp_path / "bare.ckpt"), "--output", str(tmp_path / "x.onnx")])
    with pytest.raises(ValueError, match=r"image_size=200.*multiples of 32"):
        main(["--checkpoint", str(checkpoint[0]), "--output", str(tmp_path / "x.onnx"), "--image-size", "200"])
    with pytest.raises(SystemExit):
        main(["--output", "x.onnx"])  # --checkpoint is required


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "autotimm.export", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "usage: python -m autotimm.export" in result.stdout and "--e2e" in result.stdout and "--image-size" in result.stdout
    assert "--dynamic" in result.stdout and "--half" in result.stdout


def test_main_dynamic_end_to_end_reports_every_size(checkpoint, tmp_path, capsys):
    out = tmp_path / "dyn.onnx"
    argv = ["--checkpoint", str(checkpoint[0]), "--output", str(out), "--e2e", "--dynamic", "--check-sizes", "128", "160", "--score-thresh", "0.1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "input [B, 3, H, W] (H, W multiples of 32; default 128)" in text
    for size in (128, 160):
        line = text.split(f"detections at {size}x{size}: ")[1].splitlines()[0]
        assert line.startswith("match (eager ") and ", matched " in line and "max box diff" in line and "max score diff" in line
    meta = read_metadata(out)
    assert meta.dynamic and meta.end_to_end and meta.precision == "fp32"
