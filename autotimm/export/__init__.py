"""Deploy a detector: ONNX export (raw or end-to-end with NMS) and a torch-free onnxruntime runner.

Names load lazily, so ``from autotimm.export import OnnxDetector`` needs only onnxruntime, numpy and
PIL (no torch); ``export_to_onnx`` imports torch when used.

Example:
    >>> path = model.to_onnx("detector.onnx", include_postprocess=True, dynamic=True)
    >>> from autotimm.export import OnnxDetector
    >>> OnnxDetector(path).predict("image.jpg", image_size=416)
"""

from __future__ import annotations

from autotimm._lazy import export_lazily

export_lazily(
    globals(),
    {
        "ExportMetadata": "autotimm.export.metadata",
        "add_metadata": "autotimm.export.metadata",
        "read_metadata": "autotimm.export.metadata",
        "export_to_onnx": "autotimm.export.onnx",
        "OnnxDetector": "autotimm.export.runtime",
    },
)
