"""YOLO (Ultralytics) ``data.yaml`` + ``images/`` + ``labels/`` -> records.

``data.yaml`` holds ``path`` (dataset root; relative to the yaml's folder, default that folder),
``train`` / ``val`` / ``test`` (a folder of images, a .txt list of images, or a list of those,
relative to ``path``) and ``names`` (a list, or a dict ``{index: name}``). The label file of
``<root>/images/<sub>/x.jpg`` is ``<root>/labels/<sub>/x.txt`` with one ``class cx cy w h`` line per
box, normalised to [0, 1] by the image size (polygon lines ``class x1 y1 x2 y2 ...`` become their
bounding box, as in Ultralytics). An image without a label file is a background image.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autotimm.data.image_io import read_image_size
from autotimm.data.records import Annotations, BoxCleaner, listing, make_record, require_images

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp", ".mpo")
SPLITS = ("train", "val", "test")


def _class_names(data: dict[str, Any], yaml_file: Path) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise ValueError(f"{yaml_file}: 'names' keys must be 0..K-1 without gaps; got {keys}.")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{yaml_file}: 'names' must be a non-empty list or {{index: name}} dict; got {names!r}.")
    if "nc" in data and int(data["nc"]) != len(names):
        raise ValueError(f"{yaml_file}: 'nc' is {data['nc']} but 'names' has {len(names)} entries.")
    return [str(n) for n in names]


def _images_of(entry: Path, yaml_file: Path, split: str) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if entry.is_file() and entry.suffix == ".txt":
        lines = [ln.strip() for ln in entry.read_text(encoding="utf-8").splitlines() if ln.strip()]
        return [Path(ln) if os.path.isabs(ln) else entry.parent / ln.removeprefix("./") for ln in lines]
    raise ValueError(
        f"{yaml_file}: split '{split}' points at '{entry}', which is neither a folder of images nor a "
        ".txt list of images."
    )


def label_path(image: Path) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (the last ``images`` folder is swapped)."""
    parts = list(image.parts)
    if "images" in parts:
        idx = len(parts) - 1 - parts[::-1].index("images")
        parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def _read_labels(label_file: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a label file -> (labels [N], normalised cxcywh [N, 4])."""
    if not label_file.is_file():
        return np.zeros((0,), np.int64), np.zeros((0, 4), np.float64)
    labels, boxes = [], []
    for line_no, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{label_file} line {line_no}"
        try:
            values = [float(v) for v in line.split()]
        except ValueError as err:
            raise ValueError(f"{where}: expected 'class cx cy w h' numbers; got {line!r}.") from err
        if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0):
            raise ValueError(f"{where}: expected 'class cx cy w h' (or a polygon 'class x1 y1 ...'); got {line!r}.")
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < num_classes:
            raise ValueError(
                f"{where}: class index {values[0]:g} is not in 0..{num_classes - 1} "
                f"(data.yaml 'names' has {num_classes} entries)."
            )
        if len(values) == 5:
            boxes.append(values[1:])
        else:  # polygon -> its bounding box, as cx cy w h
            xy = np.asarray(values[1:]).reshape(-1, 2)
            lo, hi = xy.min(0), xy.max(0)
            boxes.append([*(lo + hi) / 2, *(hi - lo)])
        labels.append(int(cls))
    return np.asarray(labels, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4)


def read_yolo(data_yaml: str | Path, split: str = "train", min_size: float = 1.0) -> Annotations:
    """Read one split of a YOLO dataset.

    Args:
        data_yaml: the dataset's ``data.yaml``.
        split: the key in the yaml, usually "train", "val" or "test".
        min_size: boxes smaller than this (px, after clipping) are dropped with one warning.

    Returns:
        Annotations (boxes x1y1x2y2 in the ORIGINAL frame, pixels; ``category_ids`` = ``1..K``).

    Raises:
        ValueError naming the file (and line) for: a missing yaml or split, a class index beyond
        ``names``, a malformed label line, missing image files, and an empty split.
    """
    yaml_file = Path(data_yaml)
    if not yaml_file.is_file():
        raise ValueError(f"YOLO data.yaml not found: '{yaml_file}'.")
    data = yaml.safe_load(yaml_file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{yaml_file}: expected a mapping with path/train/val/names; got {type(data).__name__}.")
    class_names = _class_names(data, yaml_file)
    if not data.get(split):
        present = [k for k in SPLITS if data.get(k)]
        raise ValueError(f"{yaml_file}: no '{split}' split; the file defines {present}.")
    root = yaml_file.parent / str(data.get("path") or ".")
    entries = data[split] if isinstance(data[split], list) else [data[split]]
    images = [img for e in entries for img in _images_of(root / str(e), yaml_file, split)]
    require_images(images, yaml_file, f"split '{split}'")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise ValueError(f"{yaml_file}: split '{split}' lists {len(missing)} missing image file(s): {listing(missing)}.")

    cleaner = BoxCleaner(yaml_file, min_size)
    records, in_pixels = [], []
    for image_id, image in enumerate(images):
        width, height = read_image_size(image)
        label_file = label_path(image)
        labels, cxcywh = _read_labels(label_file, len(class_names))
        if len(cxcywh) and (cxcywh > 1).all():  # every coordinate > 1: pixels, not fractions of the image
            in_pixels.append(str(label_file))
        scale = np.array([width, height, width, height], np.float64)
        cxcywh = cxcywh * scale  # [N, 4] pixels
        boxes = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
        entries = [f"{label_file.name} box #{k}" for k in range(len(labels))]
        records.append(make_record(cleaner, image, width, height, boxes, labels, entries, image_id))
    if in_pixels:
        warnings.warn(
            f"{yaml_file}: the labels of {len(in_pixels)} file(s) look unnormalised (every coordinate > 1, i.e. "
            f"pixels): {listing(in_pixels)}. YOLO labels are 'class cx cy w h' divided by the image width and "
            "height (0..1); their boxes fall outside the image and are dropped below. Divide the coordinates by "
            "the image size, or export the labels as COCO/VOC/CSV (pixels) instead.",
            stacklevel=2,
        )
    cleaner.report()
    return Annotations(records, class_names, list(range(1, len(class_names) + 1)))
