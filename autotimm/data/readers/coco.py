"""COCO detection json -> records.

Category ids may be anything (COCO's own skip 12, 26, ...); labels are their positions after
sorting by id, and ``Annotations.category_ids`` maps labels back for COCO-format results. Crowd
annotations are kept as ignore regions (``iscrowd``), images without annotations are kept, and
``file_name`` resolves against ``images_dir`` or, without it, the json's own folder.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from autotimm.data.image_io import read_image_size
from autotimm.data.records import (
    Annotations,
    BoxCleaner,
    make_record,
    raise_missing,
    require_images,
    resolve_image,
)


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"COCO annotation file not found: '{path}'.")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid json ({err}).") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(
            f"{path}: a COCO detection file is a json object with 'images', 'annotations' and "
            "'categories' lists; no 'images' list found."
        )
    if not data.get("categories"):
        raise ValueError(f"{path}: the 'categories' list is missing or empty; COCO files must list them.")
    return data


def _warn_duplicates(ann_file: Path, annotations: list[dict[str, Any]], per_image: dict[int, list[dict[str, Any]]]) -> None:
    """One warning for repeated annotation ids and one for the same box given twice in an image."""
    counts = Counter(a["id"] for a in annotations if "id" in a)
    repeated = sorted((i for i, n in counts.items() if n > 1), key=str)
    if repeated:
        warnings.warn(f"{ann_file}: annotation ids are repeated: {repeated[:10]}"
                      + (f" (+{len(repeated) - 10} more)" if len(repeated) > 10 else "")
                      + "; tools that look annotations up by id will mix them up.", stacklevel=3)
    twice = []
    for image_id, anns in per_image.items():
        first_of: dict[tuple, Any] = {}
        for a in anns:
            key = (int(a["category_id"]), *map(float, a["bbox"]))
            if key in first_of:
                twice.append(f"image_id {image_id}: ids {first_of[key]!r} and {a.get('id')!r}")
            else:
                first_of[key] = a.get("id")
    if twice:
        warnings.warn(f"{ann_file}: {len(twice)} box(es) appear twice in the same image with the same class "
                      f"({'; '.join(twice[:5])}{' ...' if len(twice) > 5 else ''}); a duplicate counts as a false "
                      "negative in mAP when predicted once. Remove the copies.", stacklevel=3)


def read_coco(
    ann_file: str | Path, images_dir: str | Path | None = None, min_size: float = 1.0
) -> Annotations:
    """Read a COCO detection json.

    Args:
        ann_file: the json file (``bbox`` = [x, y, w, h] in pixels, original frame).
        images_dir: folder that ``file_name`` is relative to; default: the json's folder.
        min_size: boxes smaller than this (px, after clipping to the image) are dropped with one
            counted warning.

    Returns:
        Annotations with one record per image (boxes x1y1x2y2 in the ORIGINAL frame).

    Raises:
        ValueError naming the file and the entry for: a missing file, an annotation whose
        ``category_id`` is not in ``categories`` or whose ``image_id`` is not in ``images``, image
        files that do not exist, and a file with no images.

    Example:
        >>> records, class_names, category_ids = read_coco("data/shapes/train.json")  # doctest: +SKIP
    """
    ann_file = Path(ann_file)
    data = _load_json(ann_file)
    categories = sorted(data["categories"], key=lambda c: int(c["id"]))
    category_ids = [int(c["id"]) for c in categories]
    class_names = [str(c.get("name", c["id"])) for c in categories]
    label_of = {cid: label for label, cid in enumerate(category_ids)}

    images = {int(im["id"]): im for im in data["images"]}
    if len(images) != len(data["images"]):
        seen: set[int] = set()
        dupes = sorted({int(im["id"]) for im in data["images"] if int(im["id"]) in seen or seen.add(int(im["id"]))})
        raise ValueError(f"{ann_file}: image ids must be unique; repeated: {dupes[:10]}.")
    per_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for i, ann in enumerate(data.get("annotations", [])):
        entry = f"annotation id {ann.get('id', f'#{i}')}"
        if int(ann.get("category_id", -1)) not in label_of:
            raise ValueError(
                f"{ann_file}: {entry} has category_id {ann.get('category_id')!r}, which is not in "
                f"'categories' (ids {category_ids}). Add the category or remove the annotation."
            )
        if int(ann.get("image_id", -1)) not in images:
            raise ValueError(
                f"{ann_file}: {entry} refers to image_id {ann.get('image_id')!r}, which is not in "
                "'images'."
            )
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise ValueError(f"{ann_file}: {entry} has bbox {bbox!r}; expected [x, y, w, h].")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise ValueError(
                f"{ann_file}: {entry} (image_id {ann.get('image_id')!r}) has bbox {bbox!r} with non-numeric "
                "coordinates; COCO boxes are [x, y, w, h] as numbers in pixels (not strings, not null)."
            )
        per_image[int(ann["image_id"])].append(ann)
    _warn_duplicates(ann_file, data.get("annotations", []), per_image)

    roots = [Path(images_dir)] if images_dir is not None else [ann_file.parent]
    cleaner = BoxCleaner(ann_file, min_size)
    records, missing = [], []
    for image_id, im in images.items():
        name = str(im.get("file_name", ""))
        path = resolve_image(name, roots)
        if path is None:
            missing.append(f"'{name}' (image id {image_id})")
            continue
        if im.get("width") and im.get("height"):
            width, height = int(im["width"]), int(im["height"])
        else:
            width, height = read_image_size(path)
        anns = per_image.get(image_id, [])
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
        records.append(
            make_record(
                cleaner,
                path,
                width,
                height,
                boxes,
                labels=[label_of[int(a["category_id"])] for a in anns],
                entries=[f"image '{name}' annotation id {a.get('id')}" for a in anns],
                image_id=image_id,
                iscrowd=[bool(a.get("iscrowd", 0)) for a in anns],
                difficult=[bool(a.get("difficult", 0)) for a in anns],
            )
        )
    raise_missing(ann_file, missing, roots)
    require_images(records, ann_file)
    cleaner.report()
    return Annotations(records, class_names, category_ids)
