"""Tile geometry of large images and the merge of per-tile detections, as plain tensor code.

Frames: a tile window ``(x0, y0, x1, y1)`` is in ORIGINAL-image pixels; a box found in a tile is in
that tile's frame (its top-left pixel is (0, 0)) until :func:`tile_boxes_to_image` moves it by the
window's origin (tiles run at the model's native scale, so the map is a pure shift and exact).

The pieces, in the order a tiled prediction uses them:

* :func:`tile_windows`: windows of ``tile`` px covering every pixel, neighbours overlapping by at least
  ``overlap * tile`` px, the last window of a row/column flush with the image edge;
* :func:`tile_boxes_to_image`: boxes from tile frames to the image frame;
* :func:`drop_cut_boxes`: boxes touching an INNER tile border (the object may continue in the next
  tile) are dropped when another tile holds the whole box away from its own inner borders;
* :func:`merge_detections`: class-aware NMS (``"nms"``) or box fusion (``"wbf"``) across tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

MergeMode = Literal["nms", "wbf"]
MERGE_MODES: tuple[MergeMode, ...] = get_args(MergeMode)


def check_tile_args(tile: int, overlap: float, where: str = "tile") -> None:
    """Raise a ValueError naming the bad value unless ``tile`` is an int >= 32 and ``overlap`` in [0, 1)."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 32:
        raise ValueError(f"{where}={tile!r}: expected an int >= 32 (tile side in pixels, e.g. the training image_size).")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 <= float(overlap) < 1.0:
        raise ValueError(f"overlap={overlap!r} (with {where}={tile}): expected a fraction of the tile in [0, 1), e.g. 0.2.")


@dataclass(frozen=True)
class TileConfig:
    """How to tile.

    Attributes:
        tile: tile side in pixels; tiles run at this size, unscaled (use the training image_size).
        overlap: least overlap of neighbouring tiles, a fraction of ``tile`` in [0, 1).
        merge: "nms" (class-aware NMS, the best box stays) or "wbf" (box fusion, see
            :func:`autotimm.ops.tiles.merge_detections`).
        full_image: also run the whole image letterboxed to ``tile`` and merge its boxes (finds
            objects larger than a tile; SAHI's "standard prediction").
        edge_margin: pixels from an inner tile border within which a box counts as cut.
    """

    tile: int
    overlap: float = 0.2
    merge: MergeMode = "nms"
    full_image: bool = False
    edge_margin: float = 2.0

    def __post_init__(self) -> None:
        check_tile_args(self.tile, self.overlap)
        if self.merge not in MERGE_MODES:
            raise ValueError(f"merge={self.merge!r}: expected one of {list(MERGE_MODES)}.")
        if not self.edge_margin >= 0:
            raise ValueError(f"edge_margin={self.edge_margin!r}: expected pixels >= 0.")


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of the windows along one axis of ``length`` px.

    ``n = ceil((length - tile) / step) + 1`` windows with ``step = tile - round(overlap * tile)``, spread
    evenly between 0 and ``length - tile`` (so the last one is flush with the edge and every pair of
    neighbours overlaps by at least ``round(overlap * tile)`` px). An axis no longer than ``tile`` has
    one window, starting at 0.
    """
    if length <= tile:
        return [0]
    step = max(1, tile - round(overlap * tile))
    n = math.ceil((length - tile) / step) + 1
    span = length - tile
    return [(i * span) // (n - 1) for i in range(n)]


def tile_windows(height: int, width: int, tile: int, overlap: float = 0.2) -> Tensor:
    """Windows covering an image of ``height`` x ``width`` px with ``tile`` x ``tile`` px tiles.

    Args:
        height, width: image size in pixels (original frame).
        tile: window side in pixels; an image side shorter than ``tile`` gets one window of its own length.
        overlap: least overlap of neighbouring windows as a fraction of ``tile``, in [0, 1).

    Returns:
        int64 Tensor[T, 4] ``(x0, y0, x1, y1)`` in original pixels, row-major (top row first).

    Example:
        >>> tile_windows(100, 150, 64, 0.25).tolist()  # starts 0/36 down, 0/43/86 across
        [[0, 0, 64, 64], [43, 0, 107, 64], [86, 0, 150, 64], [0, 36, 64, 100], [43, 36, 107, 100], [86, 36, 150, 100]]
    """
    check_tile_args(tile, overlap)
    if height < 1 or width < 1:
        raise ValueError(f"tile_windows: image size (h, w) = ({height}, {width}) must be positive.")
    ys = torch.tensor(tile_starts(height, tile, overlap))  # [Ty]
    xs = torch.tensor(tile_starts(width, tile, overlap))  # [Tx]
    y0, x0 = torch.meshgrid(ys, xs, indexing="ij")  # [Ty, Tx] each
    x1, y1 = (x0 + tile).clamp(max=width), (y0 + tile).clamp(max=height)
    return torch.stack([x0, y0, x1, y1], dim=-1).reshape(-1, 4)  # [T, 4]


def tile_boxes_to_image(boxes: Tensor, windows: Tensor) -> Tensor:
    """Boxes Tensor[N, 4] in their tiles' frames -> the image frame, given each box's window Tensor[N, 4]."""
    origin = windows[:, :2].to(boxes.dtype).repeat(1, 2)  # [N, 4]: (x0, y0, x0, y0)
    return boxes + origin


def inner_edges(windows: Tensor, height: int, width: int) -> Tensor:
    """Which sides of each window lie inside the image (a neighbouring tile continues there).

    Returns:
        bool Tensor[T, 4] for the (left, top, right, bottom) sides.
    """
    return torch.stack(
        [windows[:, 0] > 0, windows[:, 1] > 0, windows[:, 2] < width, windows[:, 3] < height], dim=-1
    )


def _touches_inner_edge(boxes: Tensor, windows: Tensor, inner: Tensor, margin: float) -> Tensor:
    """bool Tensor[...]: box [..., 4] lies within ``margin`` px of an inner side of window [..., 4] (image frame)."""
    w = windows.to(boxes.dtype)
    near = torch.stack(
        [boxes[..., 0] <= w[..., 0] + margin, boxes[..., 1] <= w[..., 1] + margin,
         boxes[..., 2] >= w[..., 2] - margin, boxes[..., 3] >= w[..., 3] - margin], dim=-1,
    )  # [..., 4]
    return (near & inner).any(-1)


def drop_cut_boxes(boxes: Tensor, tile_index: Tensor, windows: Tensor, image_hw: tuple[int, int], margin: float = 2.0) -> Tensor:
    """Which boxes to keep: those cut by an inner tile border go when another tile sees them whole.

    A box is "cut" when it comes within ``margin`` px of an inner side of its own tile (the object may
    go on beyond it). It is dropped if some other tile contains the whole box and the box stays more
    than ``margin`` px away from that tile's inner sides: that tile's detection of the same object is
    the complete one. Objects larger than the overlap (no tile sees them whole) keep their parts,
    for the merge to resolve.

    Args:
        boxes: Tensor[N, 4] x1y1x2y2, image frame.
        tile_index: int64 Tensor[N], the window each box came from.
        windows: int64 Tensor[T, 4] from :func:`tile_windows`.
        image_hw: (H, W) of the image.
        margin: distance in pixels that counts as touching a border.

    Returns:
        bool Tensor[N], True for boxes to keep.

    Example:
        >>> win = tile_windows(64, 100, 64, 0.5)  # [0, 64] and [36, 100] across
        >>> boxes = torch.tensor([[50.0, 10, 64, 20], [50.0, 10, 70, 20]])  # cut in tile 0, whole in tile 1
        >>> drop_cut_boxes(boxes, torch.tensor([0, 1]), win, (64, 100)).tolist()
        [False, True]
    """
    if boxes.numel() == 0:
        return torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    windows = windows.to(boxes.device)
    inner = inner_edges(windows, *image_hw)  # [T, 4]
    cut = _touches_inner_edge(boxes, windows[tile_index], inner[tile_index], margin)  # [N]
    w = windows.to(boxes.dtype)[None]  # [1, T, 4]
    b = boxes[:, None]  # [N, 1, 4]
    inside = (b[..., :2] >= w[..., :2]).all(-1) & (b[..., 2:] <= w[..., 2:]).all(-1)  # [N, T]
    whole = inside & ~_touches_inner_edge(b, w, inner[None], margin)  # [N, T]: tile t sees box n whole
    own = torch.arange(windows.shape[0], device=boxes.device)[None] == tile_index[:, None]  # [N, T]
    seen_whole_elsewhere = (whole & ~own).any(-1)  # [N]
    return ~(cut & seen_whole_elsewhere)


def merge_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    iou_thresh: float = 0.5,
    mode: MergeMode = "nms",
) -> tuple[Tensor, Tensor, Tensor]:
    """Merge one image's detections gathered from overlapping tiles (same frame), class by class.

    Modes:
        ``"nms"``: torchvision's class-aware ``batched_nms``: of boxes of one class overlapping by
            IoU > ``iou_thresh``, the highest-scoring one stays, unchanged.
        ``"wbf"``: box fusion (as weighted box fusion, greedy): the same clusters as NMS, each box
            joining the best-scoring kept box it overlaps; a cluster becomes ONE box, the
            score-weighted mean of its members' coordinates, with the best member's score. It
            smooths the jitter between the views of an object in several tiles.

    Args:
        boxes: Tensor[N, 4] x1y1x2y2; scores: Tensor[N]; labels: int64 Tensor[N].
        iou_thresh: IoU above which two boxes of a class are the same object.
        mode: "nms" or "wbf".

    Returns:
        (boxes Tensor[M, 4], scores Tensor[M], labels int64 Tensor[M]), sorted by score, highest first.

    Example:
        >>> b = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10], [0.0, 0, 10, 10]])
        >>> s, l = torch.tensor([0.9, 0.6, 0.8]), torch.tensor([0, 0, 1])
        >>> merge_detections(b, s, l)[0].tolist()  # box 1 is a duplicate of box 0; box 2 is another class
        [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]
    """
    if mode not in MERGE_MODES:
        raise ValueError(f"merge={mode!r}: expected one of {list(MERGE_MODES)} ('nms' keeps the best box, 'wbf' fuses).")
    keep = batched_nms(boxes.float(), scores.float(), labels, iou_thresh)  # [M], sorted by score
    if mode == "nms" or keep.numel() == 0:
        return boxes[keep], scores[keep], labels[keep]
    # each box joins the FIRST (best-scoring) kept box of its class it overlaps by IoU > thresh: the
    # one that suppressed it in greedy NMS; a kept box joins itself (IoU 1)
    iou = box_iou(boxes.float(), boxes[keep].float())  # [N, M]
    match = (iou > iou_thresh) & (labels[:, None] == labels[keep][None])  # [N, M]
    match[keep, torch.arange(keep.numel(), device=keep.device)] = True
    first = match.float().argmax(1)  # [N]: first True column (columns are in score order)
    member = match.any(1)  # [N]; boxes of other clusters' classes are always matched by their own
    weight = (scores.float() * member)[:, None]  # [N, 1]
    sums = torch.zeros(keep.numel(), 4, dtype=torch.float32, device=boxes.device).index_add_(0, first, boxes.float() * weight)
    total = torch.zeros(keep.numel(), dtype=torch.float32, device=boxes.device).index_add_(0, first, weight[:, 0])
    fused = (sums / total[:, None].clamp(min=1e-12)).to(boxes.dtype)  # [M, 4]
    return fused, scores[keep], labels[keep]
