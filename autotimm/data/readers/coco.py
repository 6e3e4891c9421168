"""COCO detection json -> records.

Category ids may be anything (COCO's own skip 12, 26, ...); labels are their positions after
sorting by id, and ``Annotations.category_ids`` maps labels back for COCO-format results. Crowd
annotations are kept as ignore regions (``iscrowd``), images without annotations are kept, and
``file_name`` resolves against ``images_dir`` or, without it, the json's own folder.
"""

from __future__ import annotations

import json
from collections import defaultdict
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
        if len(ann.get("bbox", ())) != 4:
            raise ValueError(f"{ann_file}: {entry} has bbox {ann.get('bbox')!r}; expected [x, y, w, h].")
        per_image[int(ann["image_id"])].append(ann)

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
