"""The fast path, decided at run time: bf16 autocast + channels_last where the hardware runs bf16
fast (CPUs with AMX or AVX-512-BF16, CUDA GPUs with bf16), plain fp32 elsewhere."""

from __future__ import annotations

import functools
import logging
from typing import Literal

import torch

log = logging.getLogger("autotimm")

Precision = Literal["auto", "bf16", "fp32"]


@functools.lru_cache(maxsize=None)
def bf16_is_fast(device_type: str = "cpu") -> bool:
    """Whether bf16 matmuls/convolutions run natively (and so faster than fp32) on ``device_type``."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type != "cpu":
        return False
    return onednn_bf16_supported()


def onednn_bf16_supported() -> bool:
    """Whether oneDNN (torch's CPU convolution library) runs bf16 natively on this CPU.

    torch has no public query for this; its oneDNN op ``mkldnn._is_mkldnn_bf16_supported`` answers
    it. This is the one place that calls it (``tests/utils/test_precision.py`` fails loudly if torch
    drops it); should it be missing at run time, autotimm stays in fp32 and says so.
    """
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if probe is None:
        log.warning("torch %s has no mkldnn._is_mkldnn_bf16_supported; precision='auto' stays in fp32.", torch.__version__)
        return False
    return bool(probe())


def resolve_precision(precision: Precision | str, device_type: str = "cpu") -> Literal["bf16", "fp32"]:
    """Map "auto" to "bf16" or "fp32" for ``device_type``; validate explicit choices."""
    aliases = {"bf16": "bf16", "bf16-mixed": "bf16", "fp32": "fp32", "32": "fp32", "32-true": "fp32", "auto": "auto"}
    key = aliases.get(str(precision).lower())
    if key is None:
        raise ValueError(f"precision must be one of 'auto', 'bf16', 'fp32' (or Lightning's 'bf16-mixed', '32-true'); got {precision!r}.")
    if key == "auto":
        return "bf16" if bf16_is_fast(device_type) else "fp32"
    return key


def lightning_precision(precision: Precision | str, device_type: str = "cpu") -> str:
    """The Lightning Trainer ``precision`` string for our precision choice."""
    return "bf16-mixed" if resolve_precision(precision, device_type) == "bf16" else "32-true"
