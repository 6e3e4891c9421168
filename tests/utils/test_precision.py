"""Precision choice: the one probe of a private torch API still exists, and the choices resolve."""

import pytest
import torch

from autotimm.utils.precision import bf16_is_fast, lightning_precision, onednn_bf16_supported, resolve_precision


def test_the_onednn_probe_exists_in_this_torch():
    # If this fails, torch removed or renamed the op: update onednn_bf16_supported() (the only caller).
    assert hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported"), torch.__version__
    assert isinstance(onednn_bf16_supported(), bool)
    assert bf16_is_fast("cpu") == onednn_bf16_supported()


def test_resolve_precision():
    assert resolve_precision("bf16-mixed") == "bf16" and resolve_precision("32-true") == "fp32"
    assert resolve_precision("auto", "mps") == "fp32"
    assert lightning_precision("fp32") == "32-true"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8")
