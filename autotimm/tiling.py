"""Tiled (sliced) prediction: large images cut into tiles at the model's native scale.

``model.predict(source, tile=640, overlap=0.2)`` reads each image one window at a time
(:class:`TileReader`), runs the tiles through the model's batched path, moves the boxes back to
ORIGINAL-image pixels, drops boxes cut by an inner tile border that a neighbouring tile sees whole,
and merges what the tiles found (:func:`autotimm.ops.tiles.merge_detections`). Optionally a
downscaled pass over the whole image (``full_image=True``, SAHI's "standard prediction") adds the
objects larger than a tile.

Memory: a file is decoded once in its own mode (1 byte per pixel for greyscale, 3 for RGB) and never
converted whole: each tile is cropped, converted to RGB and normalised on its own, so the float
memory is that of ``batch_size`` tiles, whatever the image size. PIL refuses images above
``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression-bomb guard); raise it for trusted large rasters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, ImageOps
from torch import Tensor

from autotimm.data.image_io import EXIF_ORIENTATION, load_image, pil_to_rgb, too_large_error
from autotimm.ops.boxes import clip_boxes
from autotimm.ops.tiles import MergeMode, TileConfig, drop_cut_boxes, merge_detections, tile_boxes_to_image, tile_windows

AUTO_FACTOR = 2.0  # tile="auto" tiles images whose long side exceeds this many training sizes
PROGRESS_MIN_TILES = 16  # a per-image progress bar is shown by default from this many tiles on
DetectFn = Callable[[Tensor], list[dict[str, Tensor]]]  # uint8 [B, 3, S, S] -> detections in the input frame


class TileReader:
    """One image, read a window at a time.

    A file is opened lazily and decoded once in its own mode (EXIF orientation applied); each
    :meth:`crop` converts only its window to RGB. In-memory images (PIL, arrays, tensors) are
    turned into a uint8 tensor once and sliced.

    Args:
        item: an image path or anything :func:`autotimm.data.image_io.load_image` takes.

    Attributes:
        height, width: the ORIGINAL frame's size in pixels.
    """

    def __init__(self, item: Any) -> None:
        self.path: str | None = None
        self._wide = False
        self._pil: Image.Image | None = None
        self._tensor: Tensor | None = None
        if isinstance(item, (str, os.PathLike)):
            self.path = str(item)
            self._pil = _open_lazy(Path(item))
            self.width, self.height = self._pil.size
            # 32-bit greyscale is scaled to 8 bits when it holds values above 255 (as pil_to_rgb does for a whole
            # image); decided once here, so every tile is scaled alike
            self._wide = self._pil.mode == "I" and self._pil.getextrema()[1] > 255
        else:
            self._tensor = load_image(item)  # uint8 [3, H, W]
            self.height, self.width = (int(v) for v in self._tensor.shape[-2:])

    def crop(self, window: Tensor) -> Tensor:
        """The pixels of ``window`` (x0, y0, x1, y1), uint8 Tensor[3, y1 - y0, x1 - x0] RGB."""
        x0, y0, x1, y1 = (int(v) for v in window)
        if self._tensor is not None:
            return self._tensor[:, y0:y1, x0:x1]
        assert self._pil is not None
        window_image = self._pil.crop((x0, y0, x1, y1))
        if self._wide:
            window_image = window_image.point(lambda v: v / 257).convert("L")
        return load_image(pil_to_rgb(window_image))

    def downscaled(self, size: int) -> tuple[Tensor, float]:
        """The whole image scaled to fit ``size`` x ``size`` (never enlarged): (uint8 [3, h, w], scale)."""
        scale = min(1.0, size / max(self.height, self.width))
        h, w = max(1, round(self.height * scale)), max(1, round(self.width * scale))
        if self._tensor is not None:
            from torchvision.transforms.v2 import functional as TF

            return TF.resize(self._tensor, [h, w], antialias=True), scale
        assert self._pil is not None
        return load_image(pil_to_rgb(self._pil.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0))), scale

    def image(self) -> Tensor | None:
        """The in-memory image (kept in the result for ``plot``), None for files."""
        return self._tensor

    def close(self) -> None:
        if self._pil is not None:
            self._pil.close()
        self._pil = self._tensor = None


def _open_lazy(path: Path) -> Image.Image:
    """Open and decode a file in its own mode, EXIF orientation applied (no RGB copy of the whole image)."""
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: '{path}'.")
    try:
        im = Image.open(path)
        im.load()
    except Image.DecompressionBombError as err:
        raise too_large_error(path, err) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"Cannot decode image '{path}': {err}") from err
    if im.getexif().get(EXIF_ORIENTATION, 1) != 1:  # exif_transpose copies; only pay that when needed
        im = ImageOps.exif_transpose(im)
    return im


def tile_batches(reader: TileReader, windows: Tensor, tile: int, batch_size: int, pad_value: int = 114) -> Iterator[tuple[Tensor, Tensor]]:
    """Tiles of one image in batches, each padded at its right/bottom to ``tile`` x ``tile``.

    Yields:
        (uint8 Tensor[B, 3, tile, tile], window indices int64 Tensor[B]); a batch holds at most
        ``batch_size`` tiles, so memory does not grow with the image.
    """
    for start in range(0, windows.shape[0], batch_size):
        index = torch.arange(start, min(start + batch_size, windows.shape[0]))
        canvas = torch.full((len(index), 3, tile, tile), pad_value, dtype=torch.uint8)  # [B, 3, S, S]
        for row, i in enumerate(index.tolist()):
            pixels = reader.crop(windows[i])
            canvas[row, :, : pixels.shape[1], : pixels.shape[2]] = pixels
        yield canvas, index


def detect_tiled(
    reader: TileReader,
    detect: DetectFn,
    config: TileConfig,
    *,
    batch_size: int = 8,
    iou_thresh: float = 0.5,
    max_detections: int | None = None,
    pad_value: int = 114,
    progress: bool | None = None,
    desc: str = "tiles",
) -> dict[str, Tensor]:
    """Detections of one large image, tile by tile, in ORIGINAL-image pixels.

    Args:
        reader: the image (:class:`TileReader`).
        detect: uint8 Tensor[B, 3, S, S] (S = ``config.tile``) -> per tile a dict ``boxes`` [N, 4]
            (that tile's frame), ``scores`` [N], ``labels`` int64 [N], on the CPU.
        config: tiling settings.
        batch_size: tiles per forward pass.
        iou_thresh: IoU of the merge across tiles.
        max_detections: keep at most this many merged boxes (None: all of them).
        progress: a progress bar over the tiles (None: from ``PROGRESS_MIN_TILES`` tiles on).

    Returns:
        ``boxes`` float Tensor[M, 4] (original frame), ``scores`` Tensor[M] (highest first), ``labels`` int64 [M].
    """
    from tqdm.auto import tqdm

    h, w, s = reader.height, reader.width, config.tile
    windows = tile_windows(h, w, s, config.overlap)  # [T, 4]
    boxes, scores, labels, origin = [], [], [], []
    show = windows.shape[0] >= PROGRESS_MIN_TILES if progress is None else bool(progress)
    with tqdm(total=windows.shape[0], desc=desc, unit="tile", disable=not show, leave=False) as bar:
        for canvas, index in tile_batches(reader, windows, s, batch_size, pad_value):
            for det, i in zip(detect(canvas), index.tolist()):
                x0, y0, x1, y1 = windows[i].tolist()
                limit = torch.tensor([x1 - x0, y1 - y0, x1 - x0, y1 - y0], dtype=torch.float32)
                tile_boxes = torch.minimum(det["boxes"].float(), limit)  # nothing in the padding
                boxes.append(tile_boxes_to_image(tile_boxes, windows[i].expand(len(tile_boxes), 4)))
                scores.append(det["scores"].float())
                labels.append(det["labels"].long())
                origin.append(torch.full((len(tile_boxes),), i, dtype=torch.int64))
            bar.update(len(index))
    all_boxes, all_scores, all_labels, all_origin = (torch.cat(v) for v in (boxes, scores, labels, origin))
    nonempty = (all_boxes[:, 2:] > all_boxes[:, :2]).all(1)  # boxes that lay in the padding only
    keep = nonempty & drop_cut_boxes(all_boxes, all_origin, windows, (h, w), config.edge_margin)  # [N]
    all_boxes, all_scores, all_labels = all_boxes[keep], all_scores[keep], all_labels[keep]
    if config.full_image:
        small, scale = reader.downscaled(s)
        canvas = torch.full((1, 3, s, s), pad_value, dtype=torch.uint8)
        canvas[0, :, : small.shape[1], : small.shape[2]] = small
        det = detect(canvas)[0]
        full = (det["boxes"].float() / scale).clamp(min=0)
        full = torch.minimum(full, torch.tensor([w, h, w, h], dtype=torch.float32))
        all_boxes = torch.cat([all_boxes, full])
        all_scores = torch.cat([all_scores, det["scores"].float()])
        all_labels = torch.cat([all_labels, det["labels"].long()])
    nonempty = (all_boxes[:, 2:] > all_boxes[:, :2]).all(1)  # the full-image pass's boxes in its padding
    all_boxes, all_scores, all_labels = all_boxes[nonempty], all_scores[nonempty], all_labels[nonempty]
    out_boxes, out_scores, out_labels = merge_detections(all_boxes, all_scores, all_labels, iou_thresh, config.merge)
    out_boxes = clip_boxes(out_boxes, (h, w))  # fused coordinates are means: keep rounding inside the image
    return {"boxes": out_boxes[:max_detections], "scores": out_scores[:max_detections], "labels": out_labels[:max_detections]}


def resolve_tiling(
    tile: int | Literal["auto"] | None,
    overlap: float,
    merge: MergeMode,
    full_image: bool,
    train_size: int,
) -> tuple[TileConfig, bool] | None:
    """Check ``predict``'s tiling arguments.

    Returns:
        None (no tiling), or (config, auto): ``auto`` is True for ``tile="auto"``, whose tile side is
        ``train_size`` and which tiles only images that :func:`needs_tiling`.
    """
    if tile is None:
        return None
    if tile != "auto" and (isinstance(tile, bool) or not isinstance(tile, int)):
        raise ValueError(f"tile={tile!r}: expected an int >= 32 (tile side in pixels), 'auto' or None (no tiling).")
    config = TileConfig(train_size if tile == "auto" else tile, overlap, merge, full_image)  # validates every value
    return config, tile == "auto"


def needs_tiling(height: int, width: int, train_size: int) -> bool:
    """``tile="auto"``'s rule: the long side is more than ``AUTO_FACTOR`` training sizes."""
    return max(height, width) > AUTO_FACTOR * train_size
