"""ONNX export of depthwise-separable heads (``head_conv="depthwise"``): the grouped convs run in ONNX
Runtime and reproduce the eager model, raw maps and final detections (resnet18, 128 px, P3-P5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from autotimm.export import OnnxDetector
from autotimm.export.parity import match_detections

from export_helpers import make_detector, make_images

SIZE, MAX_DETS = 128, 100
THRESH = {"fcos": 0.2, "yolox": 0.3}  # a few to tens of detections per image from these seeded heads


@pytest.mark.parametrize("arch", ["fcos", "yolox"])
def test_depthwise_head_raw_outputs_and_detections_match_eager(arch, tmp_path):
    # YOLOX's class prior is 0.01 * objectness: lift it for clear scores (as test_export_parity does)
    model = make_detector("resnet18", arch, cls_bias=0.0 if arch == "yolox" else None, head_conv="depthwise", strides=(8, 16, 32))
    assert any(isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1 for m in model.detection_head.head.modules())
    raw = OnnxDetector(model.to_onnx(str(tmp_path / "raw.onnx"), exporter="torchscript", image_size=SIZE))
    x = model.preprocess(make_images(), SIZE)
    got = raw.run(x)
    with torch.no_grad():
        cls, reg, third = model(x)
    assert list(got) == raw.output_names and len(got) == 9
    for name, value in zip(raw.output_names, [*cls, *reg, *third]):
        assert got[name].shape == tuple(value.shape), name
        scale = max(1.0, float(value.abs().max()))  # box distances are pixels
        assert float(np.abs(got[name] - value.numpy()).max()) < 1e-4 * scale, name

    # The end-to-end graph (decode + NMS inside) gives predict()'s detections on the model's own canvases.
    canvases, _, _ = model.letterbox_batch(make_images(), SIZE)
    images = list(canvases)
    thresh = THRESH[arch]
    expected = model.predict(images, image_size=SIZE, precision="fp32", score_thresh=thresh, max_detections=MAX_DETS)
    assert all(0 < len(d["scores"]) < MAX_DETS for d in expected)
    e2e = OnnxDetector(model.to_onnx(str(tmp_path / "e2e.onnx"), include_postprocess=True, exporter="torchscript",
                                     image_size=SIZE, score_thresh=thresh, max_detections=MAX_DETS))
    same, box_diff, score_diff = match_detections(expected, e2e.predict(images, batch_size=3), box_tol=1e-2, score_tol=1e-4)
    assert same, f"box diff {box_diff}, score diff {score_diff}"
