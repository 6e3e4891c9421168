"""Annotation readers: COCO json, Pascal VOC xml, YOLO txt and CSV, all returning ``Annotations``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence, get_args

from autotimm.data.readers.coco import read_coco
from autotimm.data.readers.csv_table import read_csv
from autotimm.data.readers.voc import read_voc
from autotimm.data.readers.yolo import read_yolo
from autotimm.data.records import Annotations

AnnotationFormat = Literal["coco", "voc", "yolo", "csv"]
FORMATS: tuple[str, ...] = get_args(AnnotationFormat)


_DESCRIPTIONS = {
    "coco": "a COCO json (a .json file)",
    "yolo": "a YOLO data.yaml",
    "voc": "Pascal VOC (xml annotations)",
}


def guess_format(source: str | Path) -> str | None:
    """The format a source unmistakably has from its name or content, else None.

    ``.json`` -> "coco", ``.yaml``/``.yml`` -> "yolo", an ``.xml`` file or a folder of ``.xml`` files ->
    "voc". Lists of files (``.txt``) and tables (``.csv``) are left to the readers.
    """
    path = Path(source)
    suffix = path.suffix.lower()
    if path.is_file() and suffix == ".json":
        return "coco"
    if path.is_file() and suffix in (".yaml", ".yml"):
        return "yolo"
    if (path.is_file() and suffix == ".xml") or (path.is_dir() and next(path.glob("*.xml"), None) is not None):
        return "voc"
    return None


def read_annotations(
    format: AnnotationFormat,
    source: str | Path,
    images_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    split: str = "train",
    min_size: float = 1.0,
    **options: Any,
) -> Annotations:
    """Read one split in any supported format.

    Args:
        format: "coco", "voc", "yolo" or "csv".
        source: the COCO json, the VOC xml folder or list file, the YOLO data.yaml, or the csv.
        images_dir: image folder (COCO, VOC, CSV); YOLO finds images through data.yaml.
        class_names: fixed class order for VOC and CSV; for COCO and YOLO the file defines it and a
            given list must match it.
        split: the data.yaml key to read (YOLO only).
        min_size: boxes smaller than this (px) are dropped with one warning.
        **options: format-specific reader arguments, e.g. ``one_based`` and ``annotations_dir``
            for VOC (see :func:`read_voc`).
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown annotation format {format!r}; valid formats: {list(FORMATS)}.")
    allowed = {"voc": {"one_based", "annotations_dir"}}.get(format, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"Reader options {unknown} do not apply to format {format!r}; it accepts {sorted(allowed) or 'none'}."
        )
    guessed = guess_format(source)
    if guessed is not None and guessed != format:
        raise ValueError(
            f"format={format!r} but '{source}' looks like {_DESCRIPTIONS[guessed]}; pass format={guessed!r} "
            f"(e.g. DetectionDataModule(..., format={guessed!r}))."
        )
    if format == "coco":
        ann = read_coco(source, images_dir, min_size)
    elif format == "voc":
        ann = read_voc(source, images_dir, class_names, min_size=min_size, **options)
    elif format == "yolo":
        ann = read_yolo(source, split, min_size)
    else:
        ann = read_csv(source, images_dir, class_names, min_size)
    if class_names is not None and format in ("coco", "yolo") and list(class_names) != ann.class_names:
        raise ValueError(
            f"{source}: its classes {ann.class_names} differ from the expected {list(class_names)} "
            "(for example the train split's). Both splits must list the same categories in the same order."
        )
    return ann


__all__ = [
    "FORMATS", "AnnotationFormat", "Annotations",
    "guess_format", "read_annotations", "read_coco", "read_csv", "read_voc", "read_yolo",
]
