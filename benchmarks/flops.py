"""FLOP counts (torch.utils.flop_counter) and the two references a detector's GFLOP/s is read against:
the bare timm backbone and a dense 3x3 convolution, each run in the detector's precision."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.contenders import autocast


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (a multiply-add counts 2), as counted by
    ``FlopCounterMode``: convolutions and matmuls, forward and, if ``fn`` runs one, backward."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def conv3x3_flops(batch: int, channels: int, height: int, width: int) -> int:
    """FLOPs of one ``channels -> channels`` 3x3 convolution with padding 1 on a [B, C, H, W] map."""
    return 2 * batch * channels * height * width * channels * 9


class DenseConv:
    """A dense 3x3 convolution (the FCOS/YOLOX head's building block) at the head's largest map.

    Args:
        channels: in = out channels (``fpn_channels``).
        batch / size: input Tensor[batch, channels, size, size] (``size`` = image_size / 8, P3).
        bf16: bf16 autocast + channels_last, as on the fast path.

    Attributes:
        flops: FLOPs of one call (hand formula, see :func:`conv3x3_flops`).
    """

    def __init__(self, channels: int, batch: int, size: int, bf16: bool) -> None:
        self.bf16 = bf16
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
        self.x = torch.randn(batch, channels, size, size)
        if bf16:
            self.conv.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.flops = conv3x3_flops(batch, channels, size, size)

    def __call__(self) -> Tensor:
        with torch.inference_mode(), autocast(self.bf16):
            return self.conv(self.x)


class BareBackbone:
    """The timm classifier body (``num_classes=0, global_pool=""``) on the normalised batch, eval mode.

    Args:
        name: timm model name (the detectors' backbone).
        images: normalised float Tensor[B, 3, S, S].
        bf16: bf16 autocast + channels_last.
    """

    def __init__(self, name: str, images: Tensor, bf16: bool) -> None:
        import timm

        self.bf16 = bf16
        self.model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="").eval()
        self.x = images
        if bf16:
            self.model.to(memory_format=torch.channels_last)
            self.x = images.contiguous(memory_format=torch.channels_last)

    def __call__(self) -> Tensor:
        with torch.inference_mode(), autocast(self.bf16):
            return self.model(self.x)
