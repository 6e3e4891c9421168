"""YOLOX-style mosaic and mixup on already-loaded images.

Mosaic puts four images around a random centre ``(xc, yc)`` of a ``2S x 2S`` canvas, each scaled by
its own letterbox scale to ``S`` and cut to its quadrant (its "tile"); boxes are clipped to their
tile. The dataset then scales the canvas down to ``S x S`` with the usual jittered placement.
Mixup averages two ``S x S`` samples and keeps the boxes of both.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from autotimm.data.letterbox import PAD_VALUE, letterbox_params, resized_hw
from autotimm.data.transforms import paste, place_boxes


def mosaic_layout(
    center: tuple[int, int], sizes: Sequence[tuple[int, int]], size: int
) -> list[tuple[tuple[int, int], tuple[int, int, int, int]]]:
    """Offsets and tiles of the four images of a mosaic.

    Args:
        center: ``(xc, yc)`` on the ``2S x 2S`` canvas.
        sizes: four (h, w) of the images after scaling, in the order top-left, top-right,
            bottom-left, bottom-right.
        size: S.

    Returns:
        Four ``((pad_x, pad_y), (x1, y1, x2, y2))``: where each image's top-left corner goes and the
        canvas region (its tile) it may cover. The image's inner corner touches the centre.
    """
    xc, yc = center
    side = 2 * size
    out = []
    for k, (h, w) in enumerate(sizes):
        right, bottom = k in (1, 3), k in (2, 3)
        pad_x = xc if right else xc - w
        pad_y = yc if bottom else yc - h
        tile = (
            xc if right else max(xc - w, 0),
            yc if bottom else max(yc - h, 0),
            min(xc + w, side) if right else xc,
            min(yc + h, side) if bottom else yc,
        )
        out.append(((pad_x, pad_y), tile))
    return out


def make_mosaic(
    images: Sequence[Tensor], boxes: Sequence[Tensor], size: int,
    center: tuple[int, int] | None = None, min_visibility: float = 0.25, min_size: float = 2.0,
) -> tuple[Tensor, list[Tensor], list[Tensor], list[tuple[int, int, int, int]]]:
    """Build a ``2S x 2S`` mosaic from four images.

    Args:
        images: four Tensor[3, H_k, W_k] uint8, original frames.
        boxes: four Tensor[N_k, 4] x1y1x2y2 in their image's original frame.
        size: S; each image is scaled by ``min(S / H_k, S / W_k)``.
        center: ``(xc, yc)``; default uniform in ``[S/2, 3S/2]^2``.
        min_visibility, min_size: box filter after clipping to the tile (see ``place_boxes``).

    Returns:
        (canvas Tensor[3, 2S, 2S] uint8, boxes per image Tensor[M_k, 4] in the canvas frame,
        keep masks per image Tensor[N_k] bool, tiles per image ``(x1, y1, x2, y2)``).
    """
    if len(images) != 4 or len(boxes) != 4:
        raise ValueError(f"A mosaic needs 4 images and 4 box sets; got {len(images)} and {len(boxes)}.")
    if center is None:
        xc, yc = (int(v) for v in torch.randint(size // 2, 3 * size // 2 + 1, (2,)))
    else:
        xc, yc = center
    scales = [float(letterbox_params(im.shape[-2:], size)[0]) for im in images]
    sizes = [resized_hw(im.shape[-2:], s) for im, s in zip(images, scales)]
    canvas = images[0].new_full((images[0].shape[0], 2 * size, 2 * size), PAD_VALUE)
    out_boxes, keeps, tiles = [], [], []
    for image, box, scale, ((pad_x, pad_y), tile) in zip(images, boxes, scales, mosaic_layout((xc, yc), sizes, size)):
        params = torch.tensor([scale, pad_x, pad_y], dtype=torch.float32)
        paste(canvas, image, params, tile)
        placed, keep = place_boxes(box, params, tile, min_visibility, min_size)
        out_boxes.append(placed[keep])
        keeps.append(keep)
        tiles.append(tile)
    return canvas, out_boxes, keeps, tiles


def mixup(image_a: Tensor, image_b: Tensor, ratio: float = 0.5) -> Tensor:
    """Blend two uint8 images of one size: ``ratio * a + (1 - ratio) * b``, rounded.

    Args:
        image_a, image_b: Tensor[3, S, S] uint8 in the same input frame.

    Returns:
        Tensor[3, S, S] uint8. The caller concatenates both samples' boxes.
    """
    if image_a.shape != image_b.shape:
        raise ValueError(f"mixup needs images of one shape; got {tuple(image_a.shape)} and {tuple(image_b.shape)}.")
    blended = image_a.float() * ratio + image_b.float() * (1.0 - ratio)
    return blended.round_().clamp_(0, 255).to(torch.uint8)
