"""One record type shared by every annotation reader, and the box cleaning they all apply.

A reader turns an annotation file into ``Annotations(records, class_names, category_ids)``:
one :class:`DetectionRecord` per image (images without boxes included), class names in label
order, and the dataset's own category id of each label (COCO ids for COCO, ``1..K`` otherwise) so
predictions can be written back as COCO results.

All boxes in a record are in the ORIGINAL frame: x1y1x2y2 in pixels of the image file after its
EXIF orientation, with (0, 0) the top-left corner of the top-left pixel and (W, H) the bottom-right
corner of the bottom-right pixel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

MAX_LISTED = 10  # how many offending entries a warning or error spells out before "and N more"


@dataclass
class DetectionRecord:
    """Everything known about one image before it is loaded.

    Attributes:
        image_path: the image file.
        width: image width in pixels (original frame).
        height: image height in pixels (original frame).
        boxes: float32 array [N, 4], x1y1x2y2 in the original frame, clipped to the image.
        labels: int64 array [N], contiguous class indices 0..K-1.
        iscrowd: bool array [N]; crowd boxes are ignore regions, not objects to detect.
        difficult: bool array [N] (Pascal VOC's flag; all False for other formats).
        image_id: integer id (the COCO image id for COCO, the position in the file otherwise).
    """

    image_path: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    iscrowd: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    difficult: np.ndarray = field(default_factory=lambda: np.zeros((0,), bool))
    image_id: int = 0

    def __post_init__(self) -> None:
        self.image_path = Path(self.image_path)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        # flags left at their empty default mean "all False"
        self.iscrowd = np.asarray(self.iscrowd, dtype=bool).reshape(-1) if len(self.iscrowd) else np.zeros(n, bool)
        self.difficult = np.asarray(self.difficult, dtype=bool).reshape(-1) if len(self.difficult) else np.zeros(n, bool)
        for name in ("labels", "iscrowd", "difficult"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"DetectionRecord for '{self.image_path}': {n} boxes but {len(getattr(self, name))} {name}."
                )

    @property
    def num_boxes(self) -> int:
        return len(self.boxes)


class Annotations(NamedTuple):
    """What every reader returns.

    Attributes:
        records: one record per image, in the file's order.
        class_names: K names; label ``k`` is ``class_names[k]``.
        category_ids: K ids; label ``k`` is category ``category_ids[k]`` of the source dataset
            (COCO category ids for COCO, ``1..K`` for the other formats).
    """

    records: list[DetectionRecord]
    class_names: list[str]
    category_ids: list[int]


def listing(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``'a', 'b', 'c' and 7 more`` for messages that name offending entries."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class BoxCleaner:
    """Clips boxes to their image and drops degenerate ones, then warns ONCE per source file.

    Readers call :meth:`clean` per image and :meth:`report` at the end, so a dataset with 500
    slightly-out-of-bounds boxes produces two warnings (clipped, dropped), each with a count and the
    first few entries, instead of 500.

    Args:
        source: the annotation file, named in the warnings.
        min_size: boxes narrower or lower than this (pixels, after clipping) are dropped.
    """

    def __init__(self, source: str | Path, min_size: float = 1.0) -> None:
        self.source = str(source)
        self.min_size = float(min_size)
        self.clipped: list[str] = []
        self.dropped: list[str] = []

    def clean(
        self, boxes: np.ndarray, width: int, height: int, entries: Sequence[str]
    ) -> np.ndarray:
        """Clip boxes to ``[0, W] x [0, H]`` and return the mask of boxes to keep.

        Args:
            boxes: float array [N, 4] x1y1x2y2, original frame; clipped IN PLACE.
            width: image width in pixels.
            height: image height in pixels.
            entries: N short descriptions ("image 'a.jpg' annotation 7") used in warnings.

        Returns:
            bool array [N]: True for boxes that are finite and at least ``min_size`` wide and high.
        """
        if len(boxes) == 0:
            return np.zeros((0,), bool)
        finite = np.isfinite(boxes).all(axis=1)  # [N]
        upper = np.array([width, height, width, height], dtype=boxes.dtype)
        clipped = np.clip(np.nan_to_num(boxes), 0, upper)  # [N, 4]
        moved = finite & (np.abs(clipped - np.nan_to_num(boxes)) > 1e-3).any(axis=1)
        boxes[:] = clipped
        wh = boxes[:, 2:] - boxes[:, :2]  # [N, 2]
        keep = finite & (wh >= self.min_size).all(axis=1)
        self.clipped += [entries[i] for i in np.flatnonzero(moved & keep)]
        self.dropped += [entries[i] for i in np.flatnonzero(~keep)]
        return keep

    def report(self) -> None:
        """Emit the (at most two) warnings collected since construction."""
        if self.clipped:
            warnings.warn(
                f"{self.source}: clipped {len(self.clipped)} box(es) that reached outside their "
                f"image: {listing(self.clipped)}.",
                stacklevel=3,
            )
        if self.dropped:
            warnings.warn(
                f"{self.source}: dropped {len(self.dropped)} degenerate box(es) (not finite, or "
                f"narrower/lower than {self.min_size:g} px after clipping to the image): "
                f"{listing(self.dropped)}.",
                stacklevel=3,
            )


def make_record(
    cleaner: BoxCleaner,
    image_path: Path,
    width: int,
    height: int,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[int],
    entries: Sequence[str],
    image_id: int,
    iscrowd: Sequence[bool] | None = None,
    difficult: Sequence[bool] | None = None,
) -> DetectionRecord:
    """Build a record with clipped boxes and degenerate boxes removed (see :class:`BoxCleaner`).

    Args:
        boxes: N boxes x1y1x2y2 in the original frame.
        labels: N contiguous labels.
        entries: N descriptions of where each box came from, for warnings.
    """
    n = len(labels)
    box_arr = np.asarray(boxes, dtype=np.float32).reshape(n, 4)
    keep = cleaner.clean(box_arr, width, height, entries)
    flags = [np.zeros(n, bool) if f is None else np.asarray(f, bool) for f in (iscrowd, difficult)]
    return DetectionRecord(
        image_path=image_path,
        width=int(width),
        height=int(height),
        boxes=box_arr[keep],
        labels=np.asarray(labels, np.int64).reshape(n)[keep],
        iscrowd=flags[0][keep],
        difficult=flags[1][keep],
        image_id=int(image_id),
    )


def require_images(records: Sequence[DetectionRecord], source: str | Path, what: str = "") -> None:
    """Raise a ValueError when a split has no images at all."""
    if not records:
        where = f" ({what})" if what else ""
        raise ValueError(
            f"{source}{where}: the split holds no images. Check the path and the split name; an "
            "empty split cannot be trained or evaluated."
        )


def resolve_image(name: str, roots: Sequence[Path]) -> Path | None:
    """First existing ``root / name`` (or ``name`` itself when absolute); None when none exists."""
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for root in roots:
        path = root / candidate
        if path.is_file():
            return path
    return None


def raise_missing(source: str | Path, missing: Sequence[str], roots: Sequence[Path]) -> None:
    """Raise the ValueError for image files an annotation file names but the disk lacks."""
    if missing:
        searched = ", ".join(f"'{r}'" for r in roots) or "(absolute paths only)"
        raise ValueError(
            f"{source}: {len(missing)} image file(s) not found: {listing(list(missing))}. "
            f"Searched in {searched}; pass images_dir= pointing at the folder that holds them."
        )
