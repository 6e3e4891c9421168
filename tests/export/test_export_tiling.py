"""OnnxDetector.predict(tile=...): the same tiled predictions as the PyTorch model, tiles of the graph's size."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou

from autotimm.export import OnnxDetector

from export_helpers import make_detector


def test_onnx_tiled_predict_matches_pytorch(tmp_path):
    model = make_detector("resnet18")
    model.image_size = 128
    path = model.to_onnx(str(tmp_path / "det.onnx"))
    detector = OnnxDetector(path)
    g = torch.Generator().manual_seed(3)
    image = torch.randint(0, 256, (3, 150, 300), dtype=torch.uint8, generator=g)
    ours = model.predict(image, tile=128, overlap=0.25, precision="fp32")[0]
    onnx = detector.predict(image, tile=128, overlap=0.25)[0]
    assert ours.num_detections > 0 and onnx.image_size == (150, 300)
    assert onnx.num_detections == ours.num_detections
    # the same boxes; rows of (nearly) tied scores from neighbouring tiles may swap places
    iou = box_iou(onnx["boxes"], ours["boxes"]) * (onnx["labels"][:, None] == ours["labels"][None])  # [N, N]
    assert float((iou.max(1).values > 0.99).float().mean()) >= 0.95
    auto = detector.predict(image, tile="auto")[0]  # 300 <= 2 x 128? no: tiled with 128 px tiles
    assert auto.num_detections > 0
    with pytest.raises(ValueError, match="tile=64.*takes 128 x 128 inputs"):
        detector.predict(image, tile=64)
