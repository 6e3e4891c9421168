"""autotimm detection dicts <-> FiftyOne ``Detections``, and where a collection's class list lives."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from autotimm.fiftyone._deps import require_fiftyone, root_dataset
from autotimm.fiftyone.boxes import relative_xywh_to_xyxy, xyxy_to_relative_xywh


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def to_fiftyone_detections(
    det: Mapping[str, Any],
    class_names: Sequence[str],
    width: float,
    height: float,
    where: str = "detections",
) -> Any:
    """One image's detection dict -> ``fo.Detections``.

    Args:
        det: ``boxes`` [N, 4] x1y1x2y2 in ORIGINAL-frame pixels, ``labels`` int [N] (indices into
            ``class_names``), optional ``scores`` [N] (become ``confidence``), optional ``iscrowd``
            and ``difficult`` [N] flags (become 0/1 attributes of the same names).
        class_names: K names; label ``k`` becomes ``class_names[k]``.
        width, height: the image size in pixels (original frame).
        where: what to name in error messages (e.g. the image path).

    Returns:
        ``fo.Detections`` with relative ``[x, y, w, h]`` boxes.
    """
    fo = require_fiftyone()
    boxes = xyxy_to_relative_xywh(det["boxes"], width, height)  # [N, 4]
    labels = _numpy(det["labels"]).astype(np.int64).reshape(-1)  # [N]
    if len(labels) != len(boxes):
        raise ValueError(f"{where}: {len(boxes)} boxes but {len(labels)} labels.")
    inverted = np.flatnonzero(~(boxes[:, 2:] >= 0).all(axis=1))  # negative (or NaN) width / height
    if inverted.size:
        i = int(inverted[0])
        raise ValueError(
            f"{where}: box {i} {np.asarray(_numpy(det['boxes']))[i].tolist()} is not x1y1x2y2 with "
            "x2 >= x1 and y2 >= y1 (original-frame pixels); convert xywh / cxcywh boxes first."
        )
    bad = labels[(labels < 0) | (labels >= len(class_names))]
    if bad.size:
        raise ValueError(
            f"{where}: label {int(bad[0])} is outside the {len(class_names)} class names "
            f"{list(class_names)[:10]}; labels must be 0..{len(class_names) - 1}. Pass the class "
            "names the model was trained with."
        )
    optional = {}
    if det.get("scores") is not None:
        optional["confidence"] = _numpy(det["scores"]).astype(np.float64).reshape(-1)
    for flag in ("iscrowd", "difficult"):
        if det.get(flag) is not None:
            optional[flag] = _numpy(det[flag]).astype(np.int64).reshape(-1)
    objects = []
    for i, (box, label) in enumerate(zip(boxes.tolist(), labels.tolist(), strict=True)):
        attrs = {name: (float(v[i]) if name == "confidence" else int(v[i])) for name, v in optional.items()}
        objects.append(fo.Detection(label=class_names[label], bounding_box=box, **attrs))
    return fo.Detections(detections=objects)


def from_fiftyone_detections(
    detections: Any,
    class_names: Sequence[str],
    width: float,
    height: float,
    where: str = "detections",
) -> dict[str, np.ndarray]:
    """``fo.Detections`` (or None) -> one image's detection dict.

    Returns:
        ``boxes`` float32 [N, 4] x1y1x2y2 in ORIGINAL-frame pixels, ``labels`` int64 [N],
        ``scores`` float32 [N] (NaN where a detection has no confidence), ``iscrowd`` and
        ``difficult`` int64 [N] (0 where the attribute is absent).

    Raises:
        ValueError naming the image and the unknown class when a label is not in ``class_names``.
    """
    objects = [] if detections is None else list(detections.detections)
    index = {name: k for k, name in enumerate(class_names)}
    unknown = sorted({d.label for d in objects if d.label not in index}, key=str)
    if unknown:
        raise ValueError(
            f"{where}: label(s) {unknown} are not among the classes {list(class_names)}. Pass "
            "classes= with every class the labels use (new classes go at the end)."
        )

    def flag(d: Any, name: str) -> int:
        return int(bool(d.get_attribute_value(name, 0) or 0))

    return {
        "boxes": relative_xywh_to_xyxy([d.bounding_box for d in objects], width, height),
        "labels": np.array([index[d.label] for d in objects], dtype=np.int64),
        "scores": np.array([np.nan if d.confidence is None else d.confidence for d in objects], np.float32),
        "iscrowd": np.array([flag(d, "iscrowd") for d in objects], dtype=np.int64),
        "difficult": np.array([flag(d, "difficult") for d in objects], dtype=np.int64),
    }


def stored_classes(samples: Any, field: str) -> list[str] | None:
    """The class list a dataset keeps for ``field`` (``dataset.classes[field]``, else
    ``dataset.default_classes``); None when it keeps none."""
    dataset = root_dataset(samples)
    classes = dataset.classes.get(field) or dataset.default_classes
    return list(classes) if classes else None


def check_detections_field(samples: Any, field: str, what: str) -> None:
    """Raise a ValueError when ``field`` is not a Detections field of the collection."""
    fo = require_fiftyone()
    schema = samples.get_field_schema()
    if field not in schema:
        fields = [k for k, v in schema.items() if _is_detections(v, fo)]
        raise ValueError(
            f"{what}={field!r}: the collection has no such field. Its Detections fields: "
            f"{fields or 'none'} (to_dataset() adds 'ground_truth', add_predictions() adds "
            "'predictions')."
        )
    if not _is_detections(schema[field], fo):
        raise ValueError(f"{what}={field!r} is a {schema[field]}, not a Detections field.")


def _is_detections(field: Any, fo: Any) -> bool:
    document_type = getattr(field, "document_type", None)
    return isinstance(document_type, type) and issubclass(document_type, fo.Detections)
