"""CSV ``image_path,x_min,y_min,x_max,y_max,label`` -> records.

One row per box, x1y1x2y2 in pixels of the ORIGINAL frame, ``label`` a class name. A row with empty
box and label fields (``img.jpg,,,,,``) declares an image without boxes. The header row is
optional; paths resolve against ``images_dir`` or, without it, the csv's folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from autotimm.data.image_io import read_image_size
from autotimm.data.records import (
    Annotations,
    BoxCleaner,
    make_record,
    raise_missing,
    require_images,
    resolve_image,
)

COLUMNS = ("image_path", "x_min", "y_min", "x_max", "y_max", "label")


def _rows(csv_file: Path) -> list[tuple[int, list[str]]]:
    if not csv_file.is_file():
        raise ValueError(f"CSV annotation file not found: '{csv_file}'.")
    with open(csv_file, newline="", encoding="utf-8") as f:
        rows = [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(f), 1) if row]
    if rows and rows[0][1][: len(COLUMNS)] == list(COLUMNS):
        rows = rows[1:]
    for line_no, row in rows:
        if len(row) != len(COLUMNS):
            raise ValueError(
                f"{csv_file} line {line_no}: expected {len(COLUMNS)} columns {','.join(COLUMNS)}; "
                f"got {len(row)}: {row}."
            )
    return rows


def read_csv(
    csv_file: str | Path,
    images_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    min_size: float = 1.0,
) -> Annotations:
    """Read a detection CSV.

    Args:
        csv_file: the csv file.
        images_dir: folder the image paths are relative to; default: the csv's folder.
        class_names: fixed class order; default: the sorted labels found in the file. A label
            outside a given list is an error.
        min_size: boxes smaller than this (px, after clipping) are dropped with one warning.

    Returns:
        Annotations (boxes x1y1x2y2 in the ORIGINAL frame; images in order of first appearance;
        ``category_ids`` = ``1..K``).

    Raises:
        ValueError naming the file and line for a wrong column count, a non-numeric coordinate,
        an unknown label, missing image files and a file without rows.
    """
    csv_file = Path(csv_file)
    rows = _rows(csv_file)
    require_images(rows, csv_file)
    if class_names is None:
        class_names = sorted({row[5] for _, row in rows if row[5]})
    class_names = list(class_names)
    label_of = {name: i for i, name in enumerate(class_names)}

    per_image: dict[str, list[tuple[int, list[str]]]] = {}
    for line_no, row in rows:
        boxes_of = per_image.setdefault(row[0], [])
        if not any(row[1:]):  # an image without boxes
            continue
        if row[5] not in label_of:
            raise ValueError(
                f"{csv_file} line {line_no}: label '{row[5]}' is not in class_names {class_names}."
            )
        try:
            [float(v) for v in row[1:5]]
        except ValueError as err:
            raise ValueError(f"{csv_file} line {line_no}: coordinates must be numbers; got {row[1:5]}.") from err
        boxes_of.append((line_no, row))

    roots = [Path(images_dir)] if images_dir is not None else [csv_file.parent]
    cleaner = BoxCleaner(csv_file, min_size)
    records, missing = [], []
    for image_id, (name, box_rows) in enumerate(per_image.items()):
        path = resolve_image(name, roots)
        if path is None:
            missing.append(f"'{name}'")
            continue
        width, height = read_image_size(path)
        records.append(
            make_record(
                cleaner,
                path,
                width,
                height,
                boxes=[[float(v) for v in row[1:5]] for _, row in box_rows],
                labels=[label_of[row[5]] for _, row in box_rows],
                entries=[f"line {line_no} ('{name}')" for line_no, _ in box_rows],
                image_id=image_id,
            )
        )
    raise_missing(csv_file, missing, roots)
    cleaner.report()
    return Annotations(records, class_names, list(range(1, len(class_names) + 1)))
