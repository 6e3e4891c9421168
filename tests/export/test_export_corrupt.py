"""A truncated, empty or non-ONNX file given to OnnxDetector: one clear error naming the file (issue 13, item 12)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autotimm.export import OnnxDetector


@pytest.mark.parametrize("kind", ["truncated", "empty", "text"])
def test_unreadable_onnx_names_the_file(tmp_path, kind):
    good = tmp_path / "good.onnx"
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), str(good), dynamo=False)
    bad = tmp_path / f"{kind}.onnx"
    data = good.read_bytes()
    bad.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"not a model\n"}[kind])
    with pytest.raises(ValueError, match=rf"'{bad}' is not a readable ONNX file.*to_onnx\('{kind}.onnx'\)"):
        OnnxDetector(bad)
