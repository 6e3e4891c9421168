"""Helpers for the export tests: small detectors whose heads give clear, varied scores, and images."""

from __future__ import annotations

import torch
from torch import nn

from autotimm import FeatureBackboneConfig, ObjectDetector

NUM_CLASSES = 3


def make_detector(backbone: str = "resnet18", detection_arch: str = "fcos", cls_bias: float | None = None, **kwargs) -> ObjectDetector:
    """A tiny untrained detector in eval mode whose scores spread out.

    At initialisation every class logit is about the prior bias, so all scores tie near 0.07 and NMS
    order is arbitrary. Wider random weights in the class (K outputs) and centerness/objectness
    (1 output) convolutions give distinct scores per location.
    """
    torch.manual_seed(0)
    args = dict(num_classes=NUM_CLASSES, fpn_channels=32, head_num_convs=1, compile_model=False, deterministic=False)
    model = ObjectDetector(FeatureBackboneConfig(backbone, pretrained=False), detection_arch=detection_arch, **{**args, **kwargs})
    for module in model.detection_head.head.modules():
        if isinstance(module, nn.Conv2d) and module.out_channels == NUM_CLASSES:
            nn.init.normal_(module.weight, std=0.1)
            if cls_bias is not None:
                nn.init.constant_(module.bias, cls_bias)
        elif isinstance(module, nn.Conv2d) and module.out_channels == 1:
            nn.init.normal_(module.weight, std=0.1)
            nn.init.zeros_(module.bias)
    return model.eval()


def make_images() -> list[torch.Tensor]:
    """Three noise images (uint8 CxHxW, original frame): square, slightly wide, and a larger one."""
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, shape, dtype=torch.uint8, generator=g) for shape in [(3, 128, 128), (3, 120, 128), (3, 200, 180)]]
