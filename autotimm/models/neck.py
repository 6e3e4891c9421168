"""Feature pyramid: backbone maps -> P-levels at the detector's strides (P3-P7 by default)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, FeaturePyramidNetwork


def check_strides(strides: Sequence[int]) -> tuple[int, ...]:
    """Validate detector strides: positive powers of two, strictly increasing."""
    strides = tuple(int(s) for s in strides)
    if not strides:
        raise ValueError("strides must name at least one level, got ().")
    bad = [s for s in strides if s < 1 or s & (s - 1)]
    if bad or list(strides) != sorted(set(strides)):
        raise ValueError(
            f"strides must be strictly increasing powers of two like (8, 16, 32, 64, 128); got {strides}."
        )
    return strides


class ExtraLevels(ExtraFPNBlock):
    """Levels above the backbone's deepest stride (P6, P7): stride-2 3x3 convs on the last FPN map."""

    def __init__(self, channels: int, num_levels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(num_levels))
        for conv in self.convs:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, results: list[Tensor], x: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        level = results[-1]
        # These maps are tiny, so fp32 costs nothing here; and in bf16 a stride-2 conv on a 1x1 map (P7
        # of a small image) gets a garbage weight gradient from oneDNN (seen with torch 2.14: 1e28 / NaN).
        with torch.autocast(level.device.type, enabled=False):
            level = level.to(self.convs[0].weight.dtype)  # float32 (also under autocast); float16 in a half() export
            for i, conv in enumerate(self.convs):
                level = conv(F.relu(level) if i else level)  # FCOS: P6 from P5, ReLU before P7
                results.append(level)
                names.append(f"extra{i}")
        return results, names


class FPN(nn.Module):
    """Top-down FPN over the backbone maps, plus extra stride-2 levels.

    A backbone stage is used for each stride it provides. Strides finer than the backbone's finest map
    (a plain ViT at stride 16 asked for stride 8) are made by 2x transposed convolutions, as in ViTDet's
    simple feature pyramid. Strides coarser than the deepest map come from :class:`ExtraLevels`.

    Args:
        in_channels: channels of each backbone map.
        reductions: stride of each backbone map.
        strides: output strides, e.g. (8, 16, 32, 64, 128).
        out_channels: channels of every output level (``fpn_channels``).
    """

    def __init__(self, in_channels: Sequence[int], reductions: Sequence[int], strides: Sequence[int], out_channels: int) -> None:
        super().__init__()
        strides = check_strides(strides)
        deepest = max(reductions)
        in_strides = [s for s in strides if s <= deepest]
        extra = [s for s in strides if s > deepest]
        if not in_strides:
            raise ValueError(
                f"strides {strides} start above the backbone's deepest stride {deepest}; the first "
                f"stride must be at most {deepest} (backbone strides: {sorted(set(reductions))})."
            )
        expected = [in_strides[-1] * 2 ** (i + 1) for i in range(len(extra))]
        if extra != expected:
            raise ValueError(f"strides above the backbone's {deepest} must double each level; got {strides}.")
        by_stride = {r: i for i, r in enumerate(reductions)}  # deepest stage per stride wins
        finest = min(reductions)
        self.sources: list[int] = []
        self.upsamplers = nn.ModuleDict()
        fpn_in: list[int] = []
        for s in in_strides:
            if s in by_stride:
                self.sources.append(by_stride[s])
                fpn_in.append(in_channels[by_stride[s]])
                continue
            factor = finest // s
            if s > finest or factor & (factor - 1):
                raise ValueError(
                    f"stride {s} is not produced by the backbone (its strides are {sorted(set(reductions))}); "
                    "choose strides from those, finer powers of two, or doubling levels above them."
                )
            src = by_stride[finest]
            self.sources.append(src)
            self.upsamplers[str(s)] = _upsampler(in_channels[src], factor)
            fpn_in.append(in_channels[src] // factor)
        self.in_strides = in_strides
        self.strides = strides
        self.fpn = FeaturePyramidNetwork(fpn_in, out_channels, extra_blocks=ExtraLevels(out_channels, len(extra)) if extra else None)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """feats: backbone maps -> one Tensor[B, out_channels, H / s, W / s] per stride."""
        inputs = OrderedDict()
        for s, src in zip(self.in_strides, self.sources):
            x = feats[src]
            if str(s) in self.upsamplers:
                x = self.upsamplers[str(s)](x)
            inputs[str(s)] = x
        return list(self.fpn(inputs).values())


def _upsampler(channels: int, factor: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = channels
    while factor > 1:
        layers += [nn.ConvTranspose2d(c, c // 2, 2, stride=2)]
        c //= 2
        factor //= 2
        if factor > 1:
            layers += [nn.GELU()]
    return nn.Sequential(*layers)
