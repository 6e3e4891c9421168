"""It actually learns: a from-scratch tiny FCOS overfits a few synthetic images."""

from __future__ import annotations

import torch

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.metrics import MetricManager

from synthetic import collate, make_samples


def test_tiny_fcos_overfits_synthetic_images_to_map50_above_0_9():
    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, fpn_channels=32,
                           head_num_convs=1, compile_model=False, deterministic=False, seed=0)
    images, targets = collate(make_samples(4, 128, max_objects=2))
    x = model.normalize(images)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        loss = model.compute_loss(x, targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        detections = model.detect(model(x), (128, 128))
    metrics = MetricManager.default()
    metrics.update("val", detections, targets)
    result = metrics.compute("val")
    assert result["val/mAP_50"] >= 0.9, result
