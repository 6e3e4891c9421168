"""Smoke tests of benchmarks.tiling: its mAP counts hundreds of objects per image, and the predict
paths it compares run on a model (no figure is asserted)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import tiling


def _grid(n: int) -> torch.Tensor:
    xy = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"), -1).reshape(-1, 2).float() * 20
    return torch.cat([xy, xy + 10], 1)  # [n * n, 4], 10 px boxes on a 20 px grid


def test_coco_ap_counts_more_than_100_detections_per_image():
    boxes = _grid(15)  # 225 objects in one image
    labels = torch.zeros(len(boxes), dtype=torch.int64)
    target = {"boxes": boxes, "labels": labels}
    perfect = {"boxes": boxes, "labels": labels, "scores": torch.linspace(1.0, 0.5, len(boxes))}
    assert tiling.coco_ap([perfect], [target]) == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0), "detections": 225}
    half = {k: v[::2] for k, v in perfect.items()}  # 113 of 225 found, all right: recall 113/225
    assert tiling.coco_ap([half], [target])["AP50"] == pytest.approx(113 / 225, abs=0.02)
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
    assert tiling.coco_ap([none], [target])["AP"] == 0.0


def test_plain_and_tiled_paths_run(tmp_path):
    from PIL import Image

    from autotimm import FeatureBackboneConfig, ObjectDetector

    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, fpn_channels=32,
                           head_num_convs=1, compile_model=False, deterministic=False, seed=0)
    path = tmp_path / "scene.png"
    Image.new("RGB", (700, 400), (90, 120, 90)).save(path)
    plain = tiling.predict_plain(model, [str(path)])
    tiled = tiling.predict_tiled(model, [str(path)], batch_size=4)
    assert len(plain) == len(tiled) == 1 and set(tiled[0]) == {"boxes", "scores", "labels"}
    sahi = pytest.importorskip("sahi")  # benchmark-only dependency (a separate venv), see the module docstring
    assert sahi is not None and len(tiling.predict_sahi(model, [str(path)], batch_size=4)) == 1
