"""YOLOX-style mosaic and mixup on already-loaded images.

Mosaic puts four images around a random centre ``(xc, yc)`` of a ``2S x 2S`` canvas, each scaled by
its own letterbox scale to ``S`` and cut to its quadrant (its "tile"); boxes are clipped to their
tile. The dataset then scales the canvas down to ``S x S`` with the usual jittered placement; it
draws that placement first and has :func:`make_mosaic` render the four tiles straight into it (each
image resampled once, no ``2S x 2S`` canvas), tiles rounded to whole output pixels.
Mixup averages two ``S x S`` samples and keeps the boxes of both.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from autotimm.data.letterbox import PAD_VALUE, letterbox_params, resized_hw
from autotimm.data.transforms import paste, place_boxes, reduced_placement


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
    *, canvas_scale: float = 1.0, offset: tuple[int, int] = (0, 0), out_size: int | None = None,
    orig_sizes: Sequence[tuple[int, int]] | None = None, extents: Sequence[tuple[float, float]] | None = None,
) -> tuple[Tensor, list[Tensor], list[Tensor], list[tuple[int, int, int, int]]]:
    """Build a ``2S x 2S`` mosaic from four images, or render it straight into its final placement.

    With the defaults the result is the ``2S x 2S`` canvas. With ``canvas_scale=c``,
    ``offset=(ox, oy)`` and ``out_size=S`` it is what ``place_image(mosaic, (c, ox, oy), S)`` shows,
    drawn without the big canvas: each image is resampled once, straight to its final size, and
    only where it shows. Tiles and image corners are rounded to whole output pixels and the boxes
    use the very same rounded placement, so boxes stay exactly consistent with pixels.

    Args:
        images: four Tensor[3, H_k, W_k] uint8, original frames (or reduced decodes of them, see
            ``orig_sizes`` / ``extents``); channels-last memory resizes fastest.
        boxes: four Tensor[N_k, 4] x1y1x2y2 in their image's original frame.
        size: S; each image is scaled by ``min(S / H_k, S / W_k)`` on the ``2S x 2S`` canvas.
        center: ``(xc, yc)`` on the 2S canvas; default uniform in ``[S/2, 3S/2]^2``.
        min_visibility, min_size: box filter after clipping to the tile (see ``place_boxes``);
            ``min_size`` is in 2S-canvas pixels.
        canvas_scale, offset: the placement ``(c, ox, oy)`` of the 2S canvas in the output.
        out_size: side of the output canvas; default ``round(2S * canvas_scale)``.
        orig_sizes: (H, W) of each original frame, default each image's size.
        extents: (W_e, H_e) of each original frame in its image's pixels (see ``read_pil_reduced``);
            default each image's size (nothing reduced).

    Returns:
        (canvas Tensor[3, O, O] uint8, boxes per image
        Tensor[M_k, 4] in the output frame clipped to the tile only (the caller clips to the
        canvas), keep masks per image Tensor[N_k] bool, tiles per image ``(x1, y1, x2, y2)`` in the
        output frame, possibly reaching past the canvas).
    """
    if len(images) != 4 or len(boxes) != 4:
        raise ValueError(f"A mosaic needs 4 images and 4 box sets; got {len(images)} and {len(boxes)}.")
    if center is None:
        xc, yc = (int(v) for v in torch.randint(size // 2, 3 * size // 2 + 1, (2,)))
    else:
        xc, yc = center
    c, (ox, oy) = float(canvas_scale), offset
    side = out_size if out_size is not None else round(2 * size * c)
    hws = list(orig_sizes) if orig_sizes is not None else [tuple(im.shape[-2:]) for im in images]
    scales = [float(letterbox_params(hw, size)[0]) for hw in hws]
    sizes = [resized_hw(hw, s) for hw, s in zip(hws, scales)]
    canvas = images[0].new_full((side, side, images[0].shape[0]), PAD_VALUE).permute(2, 0, 1)  # channels-last
    to_out = lambda v, o: round(v * c) + o  # noqa: E731 - 2S-canvas pixel -> output pixel
    rows, tiles = [], []
    layout = mosaic_layout((xc, yc), sizes, size)
    for k, (image, scale, ((pad_x, pad_y), tile)) in enumerate(zip(images, scales, layout)):
        row = [scale * c, to_out(pad_x, ox), to_out(pad_y, oy)]
        params = torch.tensor(row, dtype=torch.float32)
        tile = (to_out(tile[0], ox), to_out(tile[1], oy), to_out(tile[2], ox), to_out(tile[3], oy))
        region = (max(tile[0], 0), max(tile[1], 0), min(tile[2], side), min(tile[3], side))
        if extents is not None:  # a reduced decode: draw it so that it covers what the original would
            draw, content_hw = reduced_placement(params, hws[k], tuple(image.shape[-2:]), extents[k])
        else:
            draw, content_hw = params, None
        paste(canvas, image, draw, region, content_hw=content_hw)
        rows.append(row)
        tiles.append(tile)
    # every image's boxes in one go: its placement and its tile, repeated per box
    counts = torch.tensor([len(box) for box in boxes])
    per_box = torch.tensor(rows, dtype=torch.float32).repeat_interleave(counts, 0)  # [N, 3]
    regions = torch.tensor(tiles, dtype=torch.float32).repeat_interleave(counts, 0)  # [N, 4]
    all_boxes = torch.cat([box.float().reshape(-1, 4) for box in boxes])  # [N, 4]
    placed, keep = place_boxes(all_boxes, per_box, regions, min_visibility, min_size * c)
    keeps = list(keep.split(counts.tolist()))
    out_boxes = [p[k] for p, k in zip(placed.split(counts.tolist()), keeps)]
    return canvas, out_boxes, keeps, tiles


def mixup(image_a: Tensor, image_b: Tensor, ratio: float = 0.5) -> Tensor:
    """Blend two uint8 images of one size: ``ratio * a + (1 - ratio) * b``, rounded half to even.

    Args:
        image_a, image_b: Tensor[3, S, S] uint8 in the same input frame.

    Returns:
        Tensor[3, S, S] uint8. The caller concatenates both samples' boxes.
    """
    if image_a.shape != image_b.shape:
        raise ValueError(f"mixup needs images of one shape; got {tuple(image_a.shape)} and {tuple(image_b.shape)}.")
    if image_a.dtype == image_b.dtype == torch.uint8 and ratio == 0.5:
        # the usual case, in uint8 (no wider copies): floor((a + b) / 2) = (a >> 1) + (b >> 1) + (a & b & 1);
        # an odd sum leaves .5, rounded half to even: up when the floor is odd (it is <= 254 then)
        half = (image_a >> 1).add_(image_b >> 1).add_(image_a & image_b & 1)
        return half.add_((image_a ^ image_b).bitwise_and_(half).bitwise_and_(1))
    blended = image_a.float() * ratio + image_b.float() * (1.0 - ratio)
    return blended.round_().clamp_(0, 255).to(torch.uint8)
