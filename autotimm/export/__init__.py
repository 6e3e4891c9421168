"""Deploy a detector: ONNX export (raw or end-to-end with NMS) and an onnxruntime runner.

Example:
    >>> path = model.to_onnx("detector.onnx", include_postprocess=True)
    >>> from autotimm.export import OnnxDetector
    >>> OnnxDetector(path).predict("image.jpg")
"""

from autotimm.export.metadata import ExportMetadata, add_metadata, read_metadata
from autotimm.export.onnx import export_to_onnx
from autotimm.export.runtime import OnnxDetector

__all__ = ["ExportMetadata", "OnnxDetector", "add_metadata", "export_to_onnx", "read_metadata"]
