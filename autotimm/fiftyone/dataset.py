"""``to_dataset``: any autotimm data source -> a FiftyOne dataset with a ``ground_truth`` field.

Sources: a ``DetectionDataModule`` split, a bundled ``example(...)``, annotation files read by
``autotimm.data.readers`` (COCO, VOC, YOLO, CSV) or an ``Annotations`` tuple. Boxes go from the
readers' ORIGINAL-frame pixels to FiftyOne's relative ``[x, y, w, h]`` through
:func:`autotimm.fiftyone.boxes.xyxy_to_relative_xywh`; crowd regions keep ``iscrowd=1`` so FiftyOne's
COCO evaluation ignores them as COCO does.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from autotimm.data.readers import FORMATS, read_annotations
from autotimm.data.records import Annotations, DetectionRecord, listing
from autotimm.fiftyone._deps import require_fiftyone
from autotimm.fiftyone.labels import to_fiftyone_detections

DifficultPolicy = Literal["ignore", "keep", "drop"]
_SUFFIX_FORMATS = {".json": "coco", ".yaml": "yolo", ".yml": "yolo", ".csv": "csv", ".txt": "voc"}


def _infer_format(path: Path) -> str:
    if path.is_dir():
        return "voc"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"Cannot tell the annotation format of '{path}' from its name; pass format= one of "
            f"{list(FORMATS)}."
        )
    return fmt


def _read_source(
    source: Any,
    split: str,
    format: str | None,
    images_dir: str | os.PathLike | None,
    class_names: Sequence[str] | None,
    difficult: DifficultPolicy | None,
) -> tuple[Annotations, DifficultPolicy, str]:
    """(annotations, difficult policy, description) of any supported source."""
    if isinstance(source, Annotations):
        return source, difficult or "ignore", "annotations"
    if hasattr(source, "annotations") and hasattr(source, "sources"):  # DetectionDataModule
        policy = difficult or getattr(source, "difficult", "ignore")
        return source.annotations(split), policy, f"{split} split of the data module"
    if hasattr(source, "datamodule") and hasattr(source, "class_names"):  # example("shapes")
        if split not in ("train", "val"):
            raise ValueError(f"split={split!r}: the '{source.name}' example has 'train' and 'val' splits.")
        path = getattr(source, split)
        return read_annotations(source.format, path, source.images_dir, split=split), difficult or "ignore", str(path)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"source='{path}': no such annotation file or folder.")
        fmt = format or _infer_format(path)
        ann = read_annotations(fmt, path, images_dir, class_names, split=split)  # type: ignore[arg-type]
        return ann, difficult or "ignore", str(path)
    raise ValueError(
        f"source of type {type(source).__name__} is not supported; pass a DetectionDataModule, "
        "autotimm.data.example(...), an annotation file/folder (COCO json, VOC folder, YOLO "
        "data.yaml, csv) or an Annotations tuple from autotimm.data.readers."
    )


def _record_fields(record: DetectionRecord, policy: DifficultPolicy) -> dict[str, np.ndarray]:
    """A record's boxes as a detection dict, with the VOC ``difficult`` policy applied."""
    keep = ~record.difficult if policy == "drop" else np.ones(record.num_boxes, bool)
    crowd = record.iscrowd | record.difficult if policy == "ignore" else record.iscrowd
    return {
        "boxes": record.boxes[keep],
        "labels": record.labels[keep],
        "iscrowd": crowd[keep],
        "difficult": record.difficult[keep],
    }


def check_name_free(name: str | None, overwrite: bool) -> None:
    """Raise when a FiftyOne dataset called ``name`` exists and ``overwrite`` is False."""
    fo = require_fiftyone()
    if name is not None and not overwrite and fo.dataset_exists(name):
        existing = fo.load_dataset(name)
        raise ValueError(
            f"A FiftyOne dataset named {name!r} already exists ({len(existing)} samples, "
            f"persistent={existing.persistent}). Pass overwrite=True to replace it, choose another "
            f"name, or open it with fiftyone.load_dataset({name!r})."
        )


def to_dataset(
    source: Any,
    split: str = "val",
    name: str | None = None,
    persistent: bool = False,
    overwrite: bool = False,
    *,
    format: str | None = None,
    images_dir: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
    label_field: str = "ground_truth",
    difficult: DifficultPolicy | None = None,
    max_samples: int | None = None,
    progress: bool | None = None,
) -> Any:
    """Build a FiftyOne dataset of one split's images and their ground-truth boxes.

    Args:
        source: a ``DetectionDataModule`` (its ``split`` is read), ``autotimm.data.example(...)``,
            an annotation file or folder (COCO json, VOC xml folder or list file, YOLO data.yaml,
            csv) or an ``Annotations`` tuple from ``autotimm.data.readers``.
        split: which split of a data module / example / YOLO data.yaml; also added as a sample tag.
        name: dataset name; default: a timestamp. Reusing an existing name raises unless
            ``overwrite=True`` (which deletes the old dataset).
        persistent: keep the dataset in FiftyOne's database after this Python process ends.
        overwrite: replace an existing dataset called ``name``.
        format: annotation format of a file source; default: from the file name (json -> coco,
            yaml -> yolo, csv -> csv, folder or txt -> voc).
        images_dir: image folder of a file source (see the readers).
        class_names: fixed class order for VOC / CSV files.
        label_field: name of the ground-truth field.
        difficult: VOC ``difficult`` boxes: "ignore" (stored with ``iscrowd=1``, so evaluation
            ignores them as the data module does), "keep" (ordinary boxes) or "drop". Default: the
            data module's setting, else "ignore". Every box also keeps a ``difficult`` 0/1 attribute.
        max_samples: only the first N images.
        progress: FiftyOne progress bars (None: FiftyOne's default setting).

    Returns:
        ``fo.Dataset`` with ``filepath``, ``metadata`` (computed from the files), the split tag,
        ``image_id`` and ``label_field`` (``fo.Detections`` with class names, relative boxes and
        0/1 ``iscrowd`` / ``difficult`` attributes). ``dataset.classes[label_field]`` holds the
        class list in label order and ``dataset.info["autotimm_category_ids"]`` the category ids,
        so :func:`autotimm.fiftyone.export_coco` can write the classes back unchanged.

    Example:
        >>> import autotimm.fiftyone as atfo
        >>> dataset = atfo.to_dataset(autotimm.data.example("shapes"), "val")  # doctest: +SKIP
    """
    fo = require_fiftyone()
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 1):
        raise ValueError(f"max_samples must be a positive int or None; got {max_samples!r}.")
    if difficult not in (None, "ignore", "keep", "drop"):
        raise ValueError(f"difficult must be 'ignore', 'keep', 'drop' or None; got {difficult!r}.")
    check_name_free(name, overwrite)
    ann, policy, described = _read_source(source, split, format, images_dir, class_names, difficult)
    records = ann.records[:max_samples] if max_samples else ann.records

    samples = []
    for record in records:
        det = _record_fields(record, policy)
        path = str(Path(record.image_path).resolve())
        sample = fo.Sample(filepath=path, tags=[split], image_id=int(record.image_id))
        sample[label_field] = to_fiftyone_detections(det, ann.class_names, record.width, record.height, path)
        samples.append(sample)

    dataset = fo.Dataset(name, persistent=persistent, overwrite=overwrite)
    dataset.add_samples(samples, progress=progress)
    dataset.classes = {**dataset.classes, label_field: list(ann.class_names)}
    dataset.default_classes = list(ann.class_names)
    dataset.info["autotimm_category_ids"] = {label_field: [int(c) for c in ann.category_ids]}
    dataset.info["autotimm_source"] = described
    dataset.save()
    dataset.compute_metadata(progress=progress)
    _warn_size_mismatch(dataset, records)
    return dataset


def _warn_size_mismatch(dataset: Any, records: Sequence[DetectionRecord]) -> None:
    """Warn when an annotation file's image size differs from the file's (boxes would be off)."""
    widths, heights = dataset.values(["metadata.width", "metadata.height"])
    bad = [
        f"'{r.image_path.name}' ({r.width}x{r.height} in the annotations, {w}x{h} on disk)"
        for r, w, h in zip(records, widths, heights, strict=True)
        if w is not None and (w, h) != (r.width, r.height)
    ]
    if bad:
        warnings.warn(
            f"{len(bad)} image(s) differ in size from their annotation entry: {listing(bad)}. Boxes "
            "were placed using the annotation sizes; fix the width/height in the annotation file.",
            stacklevel=3,
        )
