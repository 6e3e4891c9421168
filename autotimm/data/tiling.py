"""Training on large images: records cut into tiles up front, validation on whole images.

``DetectionDataModule(..., tile=640, tile_overlap=0.2, min_visible=0.5)`` turns each training image
longer than ``tile`` into tile records (:func:`tile_records`): the tile's pixels are written once to a
PNG file (lossless, so training sees the original pixels) and its boxes are clipped to the tile and
moved into its frame; a box keeping less than ``min_visible`` of its area is dropped (a crowd box,
an ignore region, stays whenever any of it is in the tile). Tiles without boxes are kept at
``empty_ratio`` of the tiles with boxes (drawn with a fixed seed), so the model also sees background.

Validation and test go through :class:`WholeImageDataset`: whole images in the ORIGINAL frame,
batched as lists, which the model predicts with tiles (:func:`autotimm.tiling.detect_tiled`), so
val/mAP is measured on the original images in original pixels.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from autotimm.data.image_io import load_image, read_pil
from autotimm.data.records import DetectionRecord
from autotimm.ops.tiles import check_tile_args, tile_windows


def check_training_tiles(tile: int | None, overlap: float, min_visible: float, empty_ratio: float) -> None:
    """Raise a ValueError naming the bad DetectionDataModule tiling argument."""
    if tile is None:
        return
    check_tile_args(tile, overlap, where="tile")
    if isinstance(min_visible, bool) or not isinstance(min_visible, (int, float)) or not 0.0 < min_visible <= 1.0:
        raise ValueError(f"min_visible={min_visible!r}: expected the fraction of a box's area a tile must keep, in (0, 1].")
    if isinstance(empty_ratio, bool) or not isinstance(empty_ratio, (int, float)) or empty_ratio < 0:
        raise ValueError(f"empty_ratio={empty_ratio!r}: expected empty tiles per tile with boxes, a float >= 0 (e.g. 0.1).")


def clip_boxes_to_window(boxes: np.ndarray, crowd: np.ndarray, window: Sequence[int], min_visible: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of an image -> those of one tile, in the tile's frame.

    Args:
        boxes: float array [N, 4] x1y1x2y2, ORIGINAL frame.
        crowd: bool array [N], ignore regions (kept whenever they reach into the tile).
        window: (x0, y0, x1, y1) of the tile, original pixels.
        min_visible: least fraction of a box's area that must lie in the tile.

    Returns:
        (boxes float32 [M, 4] clipped to the tile, in its frame; indices int64 [M] of the kept boxes).

    Example:
        >>> b = np.array([[10.0, 10, 30, 30], [50, 10, 70, 30]])  # the second is 3/4 outside x < 55
        >>> clip_boxes_to_window(b, np.zeros(2, bool), (0, 0, 55, 64), 0.5)[0].tolist()
        [[10.0, 10.0, 30.0, 30.0]]
    """
    x0, y0, x1, y1 = (float(v) for v in window)
    lo, hi = np.array([x0, y0, x0, y0]), np.array([x1, y1, x1, y1])
    clipped = np.clip(boxes, lo, hi)  # [N, 4]
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)  # [N]
    kept_area = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)  # [N]
    visible = kept_area >= min_visible * area - 1e-6
    keep = np.flatnonzero((kept_area > 0) & (visible | crowd))
    return (clipped[keep] - lo).astype(np.float32), keep.astype(np.int64)


def tile_records(
    records: Sequence[DetectionRecord],
    tile: int,
    overlap: float,
    min_visible: float,
    empty_ratio: float,
    out_dir: str | os.PathLike,
    seed: int = 0,
) -> list[DetectionRecord]:
    """Cut every record longer than ``tile`` into tile records (the others are kept as they are).

    Args:
        records: whole-image records (ORIGINAL frame).
        tile, overlap: tile side in pixels and least overlap of neighbours (see
            :func:`autotimm.ops.tiles.tile_windows`).
        min_visible: boxes keeping less than this fraction of their area in a tile are dropped there.
        empty_ratio: tiles without boxes kept per tile with boxes (a seeded draw; 0 drops them all).
        out_dir: folder for the tile images (``<tile>px/<stem>-<digest>_<x0>_<y0>.png``, the digest naming
            the source file and its modification time); files already there are reused.
        seed: seed of the empty-tile draw.

    Returns:
        One record per kept tile (image ids numbered from 1 in order), boxes in the tile's frame.
    """
    out = Path(out_dir) / f"{tile}px"  # a window's file depends on its origin and the tile size only
    out.mkdir(parents=True, exist_ok=True)
    with_boxes: list[DetectionRecord] = []
    empty: list[DetectionRecord] = []
    for record in records:
        if max(record.width, record.height) <= tile:
            (with_boxes if record.num_boxes else empty).append(record)
            continue
        windows = tile_windows(record.height, record.width, tile, overlap).tolist()
        pixels = None
        for window in windows:
            boxes, keep = clip_boxes_to_window(record.boxes, record.iscrowd, window, min_visible)
            path = out / f"{_stem(record)}_{window[0]}_{window[1]}.png"
            if not path.is_file():
                pixels = pixels if pixels is not None else read_pil(record.image_path)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                pixels.crop(tuple(window)).save(tmp, format="PNG", compress_level=1)
                os.replace(tmp, path)  # atomic: parallel processes never read half a file
            tiled = DetectionRecord(
                image_path=path, width=window[2] - window[0], height=window[3] - window[1], boxes=boxes,
                labels=record.labels[keep], iscrowd=record.iscrowd[keep], difficult=record.difficult[keep],
            )
            (with_boxes if len(keep) and not record.iscrowd[keep].all() else empty).append(tiled)
    rng = np.random.default_rng(seed)
    n_empty = min(len(empty), round(empty_ratio * len(with_boxes)))
    chosen = sorted(rng.choice(len(empty), n_empty, replace=False).tolist()) if n_empty else []
    kept = with_boxes + [empty[i] for i in chosen]
    for i, record in enumerate(kept):
        record.image_id = i + 1
    return kept


def _stem(record: DetectionRecord) -> str:
    """A file-name stem unique per source image and version (two folders may hold the same file name; an
    edited image gets new tiles)."""
    path = Path(record.image_path).resolve()
    digest = hashlib.sha1(f"{path}|{path.stat().st_mtime_ns}".encode()).hexdigest()[:8]
    return f"{Path(record.image_path).stem}-{digest}"


def default_tile_dir(source: str | os.PathLike, tile: int, overlap: float) -> Path:
    """``<temp>/autotimm-tiles/<key>``: a folder per (annotation file and its mtime, tile, overlap), so
    a rerun reuses the tiles and a changed file gets new ones."""
    path = Path(source).resolve()
    key = f"{path}|{path.stat().st_mtime_ns}|{tile}|{overlap}"
    return Path(tempfile.gettempdir()) / "autotimm-tiles" / hashlib.sha1(key.encode()).hexdigest()[:16]


class WholeImageDataset(Dataset):
    """Whole images in the ORIGINAL frame, for validation through tiled prediction.

    Each sample is ``(image uint8 Tensor[3, H, W], target)`` with ``boxes`` float32 [N, 4] in the
    ORIGINAL frame, ``labels``, ``iscrowd`` int64 [N], ``image_id`` and ``orig_size`` (H, W); no
    ``letterbox`` key, so :func:`autotimm.data.letterbox.to_original_frame` passes them through.
    Use :func:`collate_whole_images` (images differ in size, so they stay a list).
    """

    def __init__(self, records: Sequence[DetectionRecord], class_names: Sequence[str], difficult: str = "ignore") -> None:
        self.records = list(records)
        self.class_names = list(class_names)
        self.difficult = difficult

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        record = self.records[index]
        image = load_image(record.image_path)  # [3, H, W]
        boxes, labels = torch.from_numpy(record.boxes).float(), torch.from_numpy(record.labels).long()
        crowd, difficult = torch.from_numpy(record.iscrowd), torch.from_numpy(record.difficult)
        if self.difficult == "ignore":
            crowd = crowd | difficult
        elif self.difficult == "drop":
            boxes, labels, crowd = boxes[~difficult], labels[~difficult], crowd[~difficult]
        target = {
            "boxes": boxes.reshape(-1, 4), "labels": labels, "iscrowd": crowd.long(),
            "image_id": torch.tensor(record.image_id, dtype=torch.int64),
            "orig_size": torch.tensor(image.shape[-2:], dtype=torch.int64),
        }
        return image, target


def collate_whole_images(batch: Sequence[tuple[Tensor, dict[str, Tensor]]]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """(list of B uint8 images [3, H_i, W_i], list of B targets in the ORIGINAL frame)."""
    images, targets = zip(*batch)
    return list(images), list(targets)
