"""`autotimm predict --checkpoint X --source DIR|VIDEO --save-dir D`: drawn images / video and a COCO json."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.cli import main
from synthetic import collate, make_samples


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint saved by Lightning after one step, with class names, a training size and a low threshold."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
                           head_num_convs=1, compile_model=False, deterministic=False, score_thresh=0.0,
                           max_detections_per_image=4, metrics=[])
    model.class_names, model.image_size = ["red", "green", "blue"], 64
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, default_root_dir=folder)
    trainer.fit(model, DataLoader(make_samples(2, 64), batch_size=2, collate_fn=collate))
    path = folder / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def _images(folder, n=3):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40 + 10 * i, 60, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return folder


def test_predict_folder_writes_drawn_images_and_coco_json(checkpoint, tmp_path):
    source = _images(tmp_path / "imgs")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(checkpoint), "--source", str(source), "--save-dir", str(out),
              "--precision", "fp32", "--draw-thresh", "0"])
    assert exit_info.value.code == 0
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png", "img2.png", "predictions.json"]
    assert Image.open(out / "img1.png").size == (60, 50)  # original size
    data = json.loads((out / "predictions.json").read_text())
    assert [im["file_name"] for im in data["images"]] == [str(source / f"img{i}.png") for i in range(3)]
    assert [c["name"] for c in data["categories"]] == ["red", "green", "blue"]
    assert len(data["annotations"]) == 3 * 4  # score_thresh 0, at most 4 per image
    # The json is a COCO file: pycocotools reads it, and its boxes are predict()'s.
    from pycocotools.coco import COCO

    coco = COCO(str(out / "predictions.json"))
    assert len(coco.getAnnIds(imgIds=[1])) == 4
    from autotimm.export_cli import load_detector

    expected = load_detector(checkpoint).predict(str(source / "img0.png"), precision="fp32")[0]
    first = [a for a in data["annotations"] if a["image_id"] == 1]
    x, y, w, h = first[0]["bbox"]
    assert [x, y, x + w, y + h] == pytest.approx(expected["boxes"][0].tolist(), abs=1e-4)


def test_predict_video_writes_a_drawn_video(checkpoint, tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 4.0, (64, 48))
    for value in (30, 90, 150):
        writer.write(np.full((48, 64, 3), value, dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(checkpoint), "--source", str(path), "--save-dir", str(out), "--draw-thresh", "0"])
    assert exit_info.value.code == 0
    data = json.loads((out / "predictions.json").read_text())
    assert [im["frame_index"] for im in data["images"]] == [0, 1, 2]
    drawn = cv2.VideoCapture(str(out / "clip_pred.mp4"))
    frames = 0
    while drawn.read()[0]:
        frames += 1
    drawn.release()
    assert frames == 3


def test_bad_source_and_lightning_predict_kept(checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image file, folder, glob match or video"):
        main(["predict", "--checkpoint", str(checkpoint), "--source", str(tmp_path / "nope"), "--save-dir", str(tmp_path / "o")])
    # Without --source/--checkpoint, `predict` is still LightningCLI's subcommand (which wants its own options).
    from autotimm.cli import _wants_source_predict

    assert not _wants_source_predict(["--config", "cfg.yaml", "--ckpt_path", "best.ckpt"])
    assert _wants_source_predict(["--source=imgs/", "--checkpoint", "x.ckpt", "--save-dir", "o"])
    assert _wants_source_predict(["--help"]) and not _wants_source_predict(["--config", "c.yaml", "--help"])
