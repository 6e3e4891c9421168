"""timm backbones as multi-scale feature extractors.

Channels, strides and stage indices are read from timm's ``feature_info`` and never hard-coded, so
5-stage CNNs (ResNet, EfficientNet), 4-stage ones (ConvNeXt), NHWC transformers (Swin) and plain
single-stride ViTs all plug in the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import timm
import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

# Families whose timm models cannot act as dense feature extractors (no spatial features).
_NO_FEATURES = ("*mixer*", "*resmlp*", "*gmlp*", "*tnt_*", "*crossvit*", "*levit*", "*_clip_*")


@dataclass
class FeatureBackboneConfig:
    """How to build a timm backbone; every field is honoured.

    Args:
        model_name: timm model name, e.g. ``"resnet50"``.
        pretrained: load pretrained weights (from the hub, or from ``weights_file``).
        out_indices: timm stage indices to take features from; ``None`` picks the stages whose
            reductions match the detector's strides (for example C3-C5 at strides 8/16/32).
        drop_rate: classifier dropout rate passed to timm.
        drop_path_rate: stochastic depth rate passed to timm.
        extra_kwargs: any other ``timm.create_model`` keyword arguments.
        weights_file: a local ``.pth``/``.safetensors`` file with the backbone's pretrained weights,
            for machines that cannot reach a model hub. Implies ``pretrained=True``.
        fallback_to_scratch: when pretrained weights cannot be had, warn once and build with random
            weights instead of raising (used by the demo and the notebooks).

    Example:
        >>> cfg = FeatureBackboneConfig("resnet18", pretrained=False, out_indices=(2, 3, 4))
    """

    model_name: str
    pretrained: bool = True
    out_indices: tuple[int, ...] | None = None
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    weights_file: str | None = None
    fallback_to_scratch: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model_name, str) or not self.model_name:
            raise ValueError(f"model_name must be a non-empty timm model name, got {self.model_name!r}.")
        if self.out_indices is not None:
            self.out_indices = tuple(int(i) for i in self.out_indices)
        for name in ("drop_rate", "drop_path_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}.")
        if self.weights_file is not None:
            if not Path(self.weights_file).is_file():
                raise ValueError(f"weights_file '{self.weights_file}' does not exist.")
            self.pretrained = True


def list_backbones(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """timm model names that can serve as detection backbones.

    Args:
        pattern: shell-style wildcard, e.g. ``"*resnet*"`` or ``"convnext*"``.
        pretrained: only names with pretrained weights published.
    """
    names = timm.list_models(pattern, pretrained=pretrained)
    return [n for n in names if not any(fnmatch.fnmatch(n, bad) for bad in _NO_FEATURES)]


def _check_name(name: str) -> None:
    base = name.split(".")[0]
    if timm.is_model(base):
        return
    close = difflib.get_close_matches(base, timm.list_models(), n=5, cutoff=0.6)
    hint = f" Close timm names: {', '.join(close)}." if close else ""
    raise ValueError(
        f"Unknown backbone '{name}'.{hint} See autotimm.list_backbones('*pattern*') for names that work."
    )


def _create(cfg: FeatureBackboneConfig, out_indices: Sequence[int] | None, pretrained: bool) -> nn.Module:
    kwargs: dict[str, Any] = dict(
        features_only=True,
        pretrained=pretrained,
        out_indices=tuple(out_indices) if out_indices is not None else None,
    )
    if pretrained and cfg.weights_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(cfg.weights_file))
    kwargs.update(cfg.extra_kwargs)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    optional: dict[str, Any] = {}
    # Dropout rates are required when set, optional at 0: some families (GhostNet, RepViT) take no
    # drop_path_rate at all, and a 0 asks for nothing they lack.
    for name in ("drop_rate", "drop_path_rate"):
        value = getattr(cfg, name)
        if name not in cfg.extra_kwargs:
            (kwargs if value else optional)[name] = value
    # Transformers with a fixed input size (Swin, ViT) accept any size with dynamic_img_size.
    if "dynamic_img_size" not in cfg.extra_kwargs:
        optional["dynamic_img_size"] = True
    # From scratch, start residual blocks with their last norm at 1 rather than timm's classification
    # default of 0 (zero_init_last): detectors trained from scratch learn faster that way (detectron2
    # leaves it off for the same reason; measured in benchmarks/RESULTS.md). Pretrained weights
    # overwrite it anyway.
    if not pretrained and "zero_init_last" not in cfg.extra_kwargs:
        optional["zero_init_last"] = False
    while True:
        try:
            return timm.create_model(cfg.model_name, **kwargs, **optional)
        except TypeError as err:  # this model family does not take one of the optional arguments
            unsupported = [name for name in optional if name in str(err)]
            if not unsupported:
                raise
            for name in unsupported:
                del optional[name]


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached: False at once in offline mode, else a short probe."""
    import os
    import socket

    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return False
    except ImportError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _create_with_weights(cfg: FeatureBackboneConfig, out_indices: Sequence[int] | None) -> nn.Module:
    if not cfg.pretrained:
        return _create(cfg, out_indices, pretrained=False)
    if cfg.fallback_to_scratch and not cfg.weights_file and not hub_reachable():
        warnings.warn(
            f"Pretrained weights for backbone '{cfg.model_name}' cannot be downloaded here (model hub "
            "unreachable); training from scratch. Point FeatureBackboneConfig(weights_file=...) at a "
            "local weights file to start from pretrained weights.",
            stacklevel=3,
        )
        return _create(cfg, out_indices, pretrained=False)
    try:
        return _create(cfg, out_indices, pretrained=True)
    except (OSError, RuntimeError, ValueError) as err:  # hub unreachable, no weights published...
        hint = (
            f"Could not load pretrained weights for backbone '{cfg.model_name}' ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). Point FeatureBackboneConfig(weights_file=...) at a local "
            "weights file, or pass pretrained=False to train from scratch."
        )
        if not cfg.fallback_to_scratch:
            raise RuntimeError(hint) from err
        warnings.warn(hint + " Training from scratch instead.", stacklevel=3)
        return _create(cfg, out_indices, pretrained=False)


class Backbone(nn.Module):
    """A timm ``features_only`` model returning NCHW maps, one per selected stage.

    Attributes:
        channels: channels of each returned map.
        reductions: stride of each returned map relative to the input.
        config: the resolved :class:`FeatureBackboneConfig`.
        data_config: timm's data config (mean, std, input size, interpolation).
    """

    def __init__(self, config: FeatureBackboneConfig | str, strides: Sequence[int] = (8, 16, 32)) -> None:
        super().__init__()
        cfg = FeatureBackboneConfig(config) if isinstance(config, str) else config
        if not isinstance(cfg, FeatureBackboneConfig):
            raise TypeError(
                f"backbone must be a timm model name or a FeatureBackboneConfig, got {type(config).__name__}."
            )
        _check_name(cfg.model_name)
        # Build once without weights to read feature_info, then pick the stages we need.
        probe = _create(replace(cfg, drop_rate=0.0, drop_path_rate=0.0), cfg.out_indices, pretrained=False)
        indices = cfg.out_indices or _select_indices(probe.feature_info, strides)
        same = tuple(probe.feature_info.out_indices) == tuple(indices)
        model = probe if (same and not cfg.pretrained and cfg.drop_path_rate == 0 and cfg.drop_rate == 0) else None
        if model is None:
            del probe
            model = _create_with_weights(cfg, indices)
        self.model = model
        self.config = replace(cfg, out_indices=tuple(model.feature_info.out_indices))
        self.channels: list[int] = list(model.feature_info.channels())
        self.reductions: list[int] = list(model.feature_info.reduction())
        self.nhwc = str(getattr(model, "output_fmt", "NCHW")).upper().endswith("NHWC")
        self.data_config = timm.data.resolve_data_config({}, model=model)

    def forward(self, images: Tensor) -> list[Tensor]:
        """images: Tensor[B, 3, H, W] -> list of Tensor[B, C_i, H / r_i, W / r_i]."""
        feats = self.model(images)
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2) for f in feats]  # [B, H, W, C] -> [B, C, H, W]
        return list(feats)


def _select_indices(feature_info: Any, strides: Sequence[int]) -> tuple[int, ...]:
    """Stage indices whose reduction is one of ``strides`` (the deepest stage for each stride).

    A plain ViT (every stage at one reduction) yields its last stage only.
    """
    infos = feature_info.get_dicts()
    by_reduction: dict[int, int] = {}
    for info in infos:
        by_reduction[info["reduction"]] = info["index"]  # later (deeper) stage wins
    wanted = [by_reduction[s] for s in sorted(set(strides)) if s in by_reduction]
    if not wanted:
        deepest = max(by_reduction)
        wanted = [by_reduction[deepest]]
    return tuple(wanted)
