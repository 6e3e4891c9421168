"""Mosaic layout, box clipping to tiles, mixup blending."""

from __future__ import annotations

import pytest
import torch

from autotimm.data.mosaic import make_mosaic, mixup, mosaic_layout

COLOURS = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]


def test_layout_by_hand():
    sizes = [(50, 60), (100, 100), (40, 30), (70, 200)]  # (h, w)
    layout = mosaic_layout((120, 80), sizes, 100)
    assert layout == [
        ((60, 30), (60, 30, 120, 80)),  # top-left: bottom-right corner on the centre
        ((120, -20), (120, 0, 200, 80)),  # top-right: cut at the top edge
        ((90, 80), (90, 80, 120, 120)),  # bottom-left
        ((120, 80), (120, 80, 200, 150)),  # bottom-right: cut at the right edge
    ]


def solid(colour, h, w):
    return torch.tensor(colour, dtype=torch.uint8)[:, None, None].expand(3, h, w).clone()


@pytest.mark.parametrize("seed", range(5))
def test_every_box_stays_inside_its_tile_and_the_canvas(seed):
    g = torch.Generator().manual_seed(seed)
    size = 64
    images, boxes = [], []
    for colour in COLOURS:
        h, w = (int(v) for v in torch.randint(30, 200, (2,), generator=g))
        images.append(solid(colour, h, w))
        xy = torch.rand(6, 2, generator=g) * torch.tensor([w * 0.9, h * 0.9])
        wh = torch.rand(6, 2, generator=g) * torch.tensor([w, h]) * 0.5 + 2
        boxes.append(torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w, h]))], 1))
    center = tuple(int(v) for v in torch.randint(size // 2, 3 * size // 2 + 1, (2,), generator=g))
    canvas, placed, keeps, tiles = make_mosaic(images, boxes, size, center=center, min_visibility=0.0, min_size=0.5)
    assert canvas.shape == (3, 2 * size, 2 * size) and canvas.dtype == torch.uint8
    for colour, tile_boxes, keep, (x1, y1, x2, y2) in zip(COLOURS, placed, keeps, tiles):
        assert len(tile_boxes) == int(keep.sum())
        assert (tile_boxes[:, 0] >= x1).all() and (tile_boxes[:, 2] <= x2).all()
        assert (tile_boxes[:, 1] >= y1).all() and (tile_boxes[:, 3] <= y2).all()
        assert (tile_boxes >= 0).all() and (tile_boxes <= 2 * size).all()
        assert ((tile_boxes[:, 2:] - tile_boxes[:, :2]) >= 0.5).all()
        if x2 - x1 > 2 and y2 - y1 > 2:  # the tile shows its own image
            assert canvas[:, (y1 + y2) // 2, (x1 + x2) // 2].tolist() == list(colour)


def test_box_mapping_by_hand():
    # four 100x100 images at S = 100: scale 1; centre (100, 100) -> tiles are the four quadrants
    images = [solid(c, 100, 100) for c in COLOURS]
    box = torch.tensor([[10.0, 20.0, 50.0, 60.0]])
    _, placed, _, tiles = make_mosaic(images, [box] * 4, 100, center=(100, 100))
    assert tiles == [(0, 0, 100, 100), (100, 0, 200, 100), (0, 100, 100, 200), (100, 100, 200, 200)]
    expected = [[10, 20, 50, 60], [110, 20, 150, 60], [10, 120, 50, 160], [110, 120, 150, 160]]
    assert torch.cat(placed).tolist() == expected


def test_needs_four_images():
    with pytest.raises(ValueError, match="A mosaic needs 4 images and 4 box sets; got 2 and 2"):
        make_mosaic([solid(COLOURS[0], 4, 4)] * 2, [torch.zeros(0, 4)] * 2, 8)


def test_mixup_averages():
    a = solid((100, 0, 255), 4, 4)
    b = solid((201, 0, 0), 4, 4)
    assert mixup(a, b)[:, 0, 0].tolist() == [150, 0, 128]  # round(150.5) = 150 (half to even), 127.5 -> 128
    with pytest.raises(ValueError, match=r"mixup needs images of one shape"):
        mixup(a, solid((0, 0, 0), 5, 4))


@pytest.mark.parametrize("seed", range(3))
def test_mosaic_rendered_into_its_placement_equals_the_big_canvas_placed(seed):
    from autotimm.data.transforms import place_boxes, place_image

    g = torch.Generator().manual_seed(seed)
    size = 64
    images, boxes = [], []
    for colour in COLOURS:
        h, w = (int(v) for v in torch.randint(40, 160, (2,), generator=g))
        images.append(solid(colour, h, w))
        boxes.append(torch.tensor([[w * 0.2, h * 0.3, w * 0.7, h * 0.9]]))
    center = tuple(int(v) for v in torch.randint(size // 2, 3 * size // 2 + 1, (2,), generator=g))
    scale, pad_x, pad_y = 0.25 + 0.5 * float(torch.rand((), generator=g)), -7, 5
    params = torch.tensor([scale, pad_x, pad_y])
    # two steps: the 2S canvas, then its placement on S x S
    big, big_boxes, _, _ = make_mosaic(images, boxes, size, center=center, min_visibility=0.0, min_size=0.0)
    expected = place_image(big, params, size)
    expected_boxes, keep = place_boxes(torch.cat(big_boxes), params, size)
    # one step: every image resampled once, straight into the placement
    direct, direct_boxes, _, tiles = make_mosaic(
        images, boxes, size, center=center, min_visibility=0.0, min_size=0.0,
        canvas_scale=scale, offset=(pad_x, pad_y), out_size=size,
    )
    assert direct.shape == (3, size, size) and direct.dtype == torch.uint8
    same = (direct == expected).all(0).float().mean()
    assert same > 0.9  # they differ only along tile edges, rounded to whole pixels either way
    placed, keep_direct = place_boxes(torch.cat(direct_boxes), torch.tensor([1.0, 0.0, 0.0]), size)
    assert torch.equal(keep, keep_direct)
    assert torch.allclose(placed[keep], expected_boxes[keep], atol=1.0)
    for colour, tile_boxes, (x1, y1, x2, y2) in zip(COLOURS, direct_boxes, tiles):
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        if x2 - x1 > 2 and y2 - y1 > 2 and 0 <= cx < size and 0 <= cy < size:  # the tile shows its own image
            assert direct[:, cy, cx].tolist() == list(colour)


def test_mixup_half_is_exact_on_every_pair():
    a = torch.arange(256, dtype=torch.uint8).repeat(256).reshape(1, 256, 256)  # every (a, b) pair once
    b = a.transpose(1, 2).contiguous()
    assert torch.equal(mixup(a, b), (a.float() * 0.5 + b.float() * 0.5).round().to(torch.uint8))
