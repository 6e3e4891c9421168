"""What an exported file must know to preprocess and post-process on its own, stored in the ONNX
``metadata_props`` (string key/value pairs; values are JSON)."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

PREFIX = "autotimm."


@dataclass(frozen=True)
class ExportMetadata:
    """Everything :class:`~autotimm.export.OnnxDetector` needs besides the graph.

    Attributes:
        detection_arch: "fcos" or "yolox".
        end_to_end: the graph ends in NMS (outputs boxes/scores/labels/num_detections) instead of
            raw per-level maps.
        num_classes: K, class ids are 0..K-1.
        class_names: names of the classes, or None when the model was not fitted on a data module.
        strides: stride of each pyramid level.
        input_size: (H, W) of the input tensor the graph was exported for (input frame).
        mean / std: normalisation in 0..1 units, per RGB channel.
        pad_value: uint8 value of the letterbox padding.
        score_thresh / nms_thresh / max_detections: post-processing settings (baked into end-to-end
            graphs; defaults for raw graphs).
        topk_per_level: candidates per level before NMS.
        output_names: names of the graph's outputs, in order.
        label_to_category_id: map from contiguous labels to the dataset's category ids, if known.
        autotimm_version: version of autotimm that wrote the file.
        dynamic: the input's H and W are dynamic (any multiple of ``size_multiple``); ``input_size``
            is then the default size.
        size_multiple: H and W must be multiples of this (the backbone's deepest stride).
        precision: "fp32", or "fp16" for a float16 network (inputs and outputs stay float32).
        exporter: "dynamo" (torch.export-based) or "torchscript", whichever wrote a matching graph.

    Files written before the last four fields existed read them as their defaults (a fixed-size
    float32 graph from the TorchScript exporter).
    """

    detection_arch: str
    end_to_end: bool
    num_classes: int
    class_names: list[str] | None
    strides: list[int]
    input_size: list[int]
    mean: list[float]
    std: list[float]
    pad_value: int
    score_thresh: float
    nms_thresh: float
    max_detections: int
    topk_per_level: int
    output_names: list[str]
    label_to_category_id: dict[str, int] | None
    autotimm_version: str
    dynamic: bool = False
    size_multiple: int = 0  # 0: unknown (older files); the largest stride applies
    precision: str = "fp32"
    exporter: str = "torchscript"

    def to_props(self) -> dict[str, str]:
        """``{"autotimm.<field>": json}`` for ``onnx.ModelProto.metadata_props``."""
        return {PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "the ONNX file") -> "ExportMetadata":
        """Read the fields back; a file not written by autotimm fails with a clear message."""
        missing = [f.name for f in fields(cls) if PREFIX + f.name not in props and f.default is MISSING]
        if missing:
            raise ValueError(
                f"{source} lacks autotimm metadata {missing}; export it with model.to_onnx() or "
                "`python -m autotimm.export` so that it carries its preprocessing and class names."
            )
        values: dict[str, Any] = {f.name: json.loads(props[PREFIX + f.name]) for f in fields(cls) if PREFIX + f.name in props}
        return cls(**values)


def add_metadata(model: Any, metadata: ExportMetadata) -> None:
    """Set ``metadata`` in the ``metadata_props`` of an ``onnx.ModelProto`` (replacing older values)."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.to_props().items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, value


def read_metadata(path: str | Path) -> ExportMetadata:
    """The :class:`ExportMetadata` of an exported file (reads the graph header only)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ExportMetadata.from_props({p.key: p.value for p in model.metadata_props}, source=f"'{path}'")
