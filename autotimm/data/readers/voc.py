"""Pascal VOC xml -> records.

Coordinates: VOC files store integer pixel indices that start at 1. Converters disagree on what to
do with them. By default the numbers are used as written (``x1 = xmin``, ``x2 = xmax``), which is
what mmdetection 2+, Roboflow and the raccoon dataset's own COCO copy do, so a VOC and a COCO
version of one dataset give identical boxes. ``one_based=True`` subtracts 1 from ``xmin`` and
``ymin`` only (detectron2's convention: pixel ``i`` spans ``[i - 1, i]``, so ``xmax`` is already the
right edge).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from autotimm.data.image_io import read_image_size
from autotimm.data.records import (
    Annotations,
    BoxCleaner,
    DetectionRecord,
    listing,
    make_record,
    raise_missing,
    require_images,
    resolve_image,
)

_COORDS = ("xmin", "ymin", "xmax", "ymax")


def list_voc_files(source: str | Path, annotations_dir: str | Path | None = None) -> list[Path]:
    """The xml files of a split: every ``*.xml`` in a folder, or the entries of a list file.

    A list file (VOC's ``ImageSets/Main/train.txt``) holds one entry per line: an image id
    (``2008_000008`` -> ``<annotations_dir>/2008_000008.xml``) or a path to an xml file relative to
    the list file. ``annotations_dir`` defaults to ``Annotations/`` of the VOCdevkit layout
    (``ImageSets/Main/../../Annotations``) when that folder exists, else the list file's folder.
    """
    source = Path(source)
    if source.is_dir():
        return sorted(source.glob("*.xml"))
    if not source.is_file():
        raise ValueError(f"VOC source not found: '{source}'. Pass a folder of .xml files or a list file.")
    if annotations_dir is None:
        devkit = source.parent.parent.parent / "Annotations"
        annotations_dir = devkit if devkit.is_dir() else source.parent
    files: list[Path] = []
    missing: list[str] = []
    for line_no, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        entry = line.split()[0] if line.strip() else ""
        if not entry or entry.startswith("#"):
            continue
        path = source.parent / entry if entry.endswith(".xml") else Path(annotations_dir) / f"{entry}.xml"
        if path.is_file():
            files.append(path)
        else:
            missing.append(f"line {line_no} -> '{path}'")
    if missing:
        raise ValueError(f"{source}: {len(missing)} xml file(s) not found: {listing(missing)}.")
    return files


def _text(node: ET.Element, tag: str, xml_file: Path, what: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ValueError(f"{xml_file}: {what} has no <{tag}>.")
    return child.text.strip()


def _parse(xml_file: Path) -> ET.Element:
    try:
        return ET.parse(xml_file).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{xml_file}: not valid xml ({err}).") from err


def read_voc(
    source: str | Path,
    images_dir: str | Path | None = None,
    class_names: Sequence[str] | None = None,
    one_based: bool = False,
    annotations_dir: str | Path | None = None,
    min_size: float = 1.0,
) -> Annotations:
    """Read Pascal VOC annotations.

    Args:
        source: a folder of ``.xml`` files or a list file (see :func:`list_voc_files`).
        images_dir: folder holding the images named by ``<filename>``; default: the first of the
            xml's folder, ``../JPEGImages`` and ``../<folder>`` (the xml's ``<folder>`` tag) that
            has the file.
        class_names: fixed class order; default: the sorted names found in the files. A name
            outside a given list is an error.
        one_based: subtract 1 from ``xmin``/``ymin`` (see the module docstring).
        annotations_dir: where the ids of a list file live (see :func:`list_voc_files`).
        min_size: boxes smaller than this (px, after clipping) are dropped with one warning.

    Returns:
        Annotations (boxes x1y1x2y2 in the ORIGINAL frame; ``difficult`` carried;
        ``category_ids`` = ``1..K``).

    Raises:
        ValueError naming the xml file and the object for unknown class names, missing
        coordinates or image files, and for a split without files.
    """
    xml_files = list_voc_files(source, annotations_dir)
    require_images(xml_files, source)
    parsed = [(f, _parse(f)) for f in xml_files]
    if class_names is None:
        found = {_text(o, "name", f, "an <object>") for f, root in parsed for o in root.iter("object")}
        class_names = sorted(found)
    class_names = list(class_names)
    label_of = {name: i for i, name in enumerate(class_names)}

    cleaner = BoxCleaner(source, min_size)
    records: list[DetectionRecord] = []
    missing: list[str] = []
    roots_used: list[Path] = []
    offset = 1.0 if one_based else 0.0
    for image_id, (xml_file, root) in enumerate(parsed):
        name = _text(root, "filename", xml_file, "the annotation")
        folder = root.findtext("folder", default="").strip()
        if images_dir is not None:
            roots = [Path(images_dir)]
        else:
            roots = [xml_file.parent, xml_file.parent.parent / "JPEGImages"]
            roots += [xml_file.parent.parent / folder] if folder else []
        roots_used = roots
        path = resolve_image(name, roots)
        if path is None:
            missing.append(f"'{name}' (from {xml_file.name})")
            continue
        width = int(float(root.findtext("size/width", default="0") or 0))
        height = int(float(root.findtext("size/height", default="0") or 0))
        if width <= 0 or height <= 0:  # some VOC exports write 0; the file knows better
            width, height = read_image_size(path)

        boxes, labels, difficult, entries = [], [], [], []
        for k, obj in enumerate(root.iter("object")):
            what = f"object #{k}"
            cls = _text(obj, "name", xml_file, what)
            if cls not in label_of:
                raise ValueError(
                    f"{xml_file}: {what} has class '{cls}', which is not in class_names {class_names}."
                )
            bnd = obj.find("bndbox")
            if bnd is None:
                raise ValueError(f"{xml_file}: {what} ('{cls}') has no <bndbox>.")
            try:
                x1, y1, x2, y2 = (float(_text(bnd, c, xml_file, what)) for c in _COORDS)
            except ValueError as err:
                raise ValueError(f"{xml_file}: {what} ('{cls}') has a bad coordinate: {err}") from err
            boxes.append([x1 - offset, y1 - offset, x2, y2])
            labels.append(label_of[cls])
            difficult.append(obj.findtext("difficult", default="0").strip() in ("1", "true"))
            entries.append(f"{xml_file.name} {what}")
        records.append(
            make_record(cleaner, path, width, height, boxes, labels, entries, image_id, difficult=difficult)
        )
    raise_missing(source, missing, roots_used)
    cleaner.report()
    return Annotations(records, class_names, list(range(1, len(class_names) + 1)))
