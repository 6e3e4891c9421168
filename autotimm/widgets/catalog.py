"""The backbone catalogue behind the picker: search, families and per-model facts (no ipywidgets here).

Facts come from building the backbone exactly as the detector does (``autotimm.models.backbone``),
but on the ``meta`` device: shapes and parameter counts without allocating or initialising weights,
so even a 600M-parameter ViT answers in well under a second. Results are cached.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

import timm
import torch

from autotimm.models.backbone import Backbone, FeatureBackboneConfig, list_backbones
from autotimm.models.neck import check_strides

DEFAULT_STRIDES = (8, 16, 32, 64, 128)
ALL_FAMILIES = "all"


@dataclass(frozen=True)
class BackboneInfo:
    """What a detector built on this backbone would see.

    Attributes:
        name: timm model name.
        family: timm module that defines it ("resnet", "convnext", "vision_transformer", ...).
        num_params: parameters of the features-only backbone (classifier head excluded).
        channels: channels of each feature map the detector takes.
        reductions: stride (input pixels per feature cell) of each of those maps.
        out_indices: timm stage indices of those maps.
        nhwc: whether timm returns channels-last maps (Swin); the detector permutes them.
    """

    name: str
    family: str
    num_params: int
    channels: tuple[int, ...]
    reductions: tuple[int, ...]
    out_indices: tuple[int, ...]
    nhwc: bool

    def summary(self) -> str:
        """One line such as ``resnet18 (resnet): 11.2M params, channels [128, 256, 512] at strides [8, 16, 32]``."""
        return (
            f"{self.name} ({self.family}): {self.num_params / 1e6:.1f}M params, channels "
            f"{list(self.channels)} at strides {list(self.reductions)}"
        )


@functools.lru_cache(maxsize=1)
def families() -> dict[str, str]:
    """timm model name -> family (the timm module defining it), for every backbone-capable model."""
    usable = set(list_backbones("*"))
    table: dict[str, str] = {}
    for module in timm.list_modules():
        for name in timm.list_models(module=module):
            if name in usable:
                table[name] = module
    return table


def family_names() -> list[str]:
    """Sorted family names, for the family filter."""
    return sorted(set(families().values()))


def search_backbones(query: str = "", family: str = ALL_FAMILIES) -> list[str]:
    """Backbone names matching ``query`` within ``family``.

    Args:
        query: a substring ("convnext") or a shell wildcard ("resnet*d"); case-insensitive; "" = all.
        family: a name from :func:`family_names` or "all".

    Raises:
        ValueError: unknown family.
    """
    query = query.strip().lower()
    pattern = query if any(c in query for c in "*?[") else f"*{query}*"
    names = list_backbones(pattern)
    if family == ALL_FAMILIES:
        return names
    table = families()
    if family not in set(table.values()):
        raise ValueError(f"Unknown backbone family {family!r}; valid: 'all' or one of {family_names()[:20]}...")
    return [n for n in names if table.get(n) == family]


def close_names(query: str, n: int = 5) -> list[str]:
    """Backbone names that look like a mistyped ``query``."""
    return difflib.get_close_matches(query.strip().lower(), list_backbones("*"), n=n, cutoff=0.6)


@functools.lru_cache(maxsize=512)
def backbone_info(name: str, strides: tuple[int, ...] = DEFAULT_STRIDES) -> BackboneInfo:
    """Facts about ``name`` as a detection backbone for these detector strides (cached).

    Raises:
        ValueError: unknown name (the message lists close names) or a model timm cannot turn into a
            feature extractor.
    """
    strides = check_strides(strides)
    if name not in families():
        close = close_names(name)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(f"Unknown backbone {name!r}: not a timm model usable for detection.{hint}")
    try:
        with torch.device("meta"):  # shapes only: no memory, no weight init, no download
            backbone = Backbone(FeatureBackboneConfig(name, pretrained=False), strides)
    except Exception as err:  # noqa: BLE001 - timm raises many kinds for models without feature maps
        raise ValueError(
            f"Backbone {name!r} cannot serve as a feature extractor: {type(err).__name__}: {str(err)[:200]}"
        ) from err
    return BackboneInfo(
        name=name,
        family=families()[name],
        num_params=sum(p.numel() for p in backbone.parameters()),
        channels=tuple(backbone.channels),
        reductions=tuple(backbone.reductions),
        out_indices=tuple(backbone.config.out_indices or ()),
        nhwc=backbone.nhwc,
    )
