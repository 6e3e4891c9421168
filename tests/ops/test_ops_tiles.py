"""Tile geometry, border-box handling and the merge across tiles, on hand-checkable cases."""

import pytest
import torch

from autotimm.ops.tiles import drop_cut_boxes, inner_edges, merge_detections, tile_boxes_to_image, tile_starts, tile_windows


@pytest.mark.parametrize("hw", [(100, 150), (64, 64), (40, 300), (1000, 777), (65, 129)])
@pytest.mark.parametrize("tile, overlap", [(64, 0.0), (64, 0.25), (32, 0.5), (96, 0.1)])
def test_windows_cover_every_pixel_with_the_asked_overlap(hw, tile, overlap):
    h, w = hw
    win = tile_windows(h, w, tile, overlap)
    covered = torch.zeros(h, w, dtype=torch.int32)
    for x0, y0, x1, y1 in win.tolist():
        assert x1 - x0 == min(tile, w) and y1 - y0 == min(tile, h)  # full-size tiles, clipped only to a short image
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        covered[y0:y1, x0:x1] += 1
    assert bool((covered >= 1).all())
    assert int(win[:, 2].max()) == w and int(win[:, 3].max()) == h  # last tiles flush with the edges
    for length in (h, w):
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts == sorted(set(starts))
        if length > tile:
            assert starts[-1] == length - tile
            gaps = torch.tensor(starts[1:]) - torch.tensor(starts[:-1])
            assert bool((tile - gaps >= round(overlap * tile)).all())  # neighbours overlap at least as asked


def test_windows_hand_checked():
    assert tile_windows(100, 150, 64, 0.25).tolist() == [
        [0, 0, 64, 64], [43, 0, 107, 64], [86, 0, 150, 64], [0, 36, 64, 100], [43, 36, 107, 100], [86, 36, 150, 100]]
    assert tile_windows(50, 60, 64, 0.2).tolist() == [[0, 0, 60, 50]]  # smaller than a tile: one window
    assert tile_starts(128, 64, 0.0) == [0, 64]  # no overlap: exact partition


def test_boxes_round_trip_exactly():
    win = tile_windows(300, 500, 128, 0.2)
    torch.manual_seed(0)
    xy = torch.rand(len(win), 2) * 100
    image_boxes = torch.cat([xy, xy + 20], 1) + win[:, :2].float().repeat(1, 2)  # one box inside each tile
    tile_boxes = image_boxes - win[:, :2].float().repeat(1, 2)
    assert torch.equal(tile_boxes_to_image(tile_boxes, win), image_boxes)


@pytest.mark.parametrize("tile, overlap, match", [(31, 0.2, "tile=31"), (64.0, 0.2, "tile=64.0"), (64, 1.0, "overlap=1.0"),
                                                  (64, -0.1, "overlap=-0.1"), (True, 0.2, "tile=True")])
def test_bad_tile_arguments_are_named(tile, overlap, match):
    with pytest.raises(ValueError, match=match):
        tile_windows(100, 100, tile, overlap)


def test_inner_edges():
    win = tile_windows(64, 100, 64, 0.25)  # [0, 64] and [36, 100] across, one row
    assert inner_edges(win, 64, 100).tolist() == [[False, False, True, False], [True, False, False, False]]


def test_cut_box_dropped_when_a_neighbour_sees_it_whole():
    win = tile_windows(64, 100, 64, 0.25)  # tiles x in [0, 64] and [36, 100]
    boxes = torch.tensor([
        [50.0, 10, 64, 20],  # tile 0 sees the left part, cut at its right border -> dropped
        [50.0, 10, 70, 20],  # tile 1 sees it whole -> kept
        [40.0, 30, 60, 40],  # tile 0, whole and inside the overlap -> kept (the merge resolves duplicates)
        [10.0, 0, 30, 5],    # touches the image border (top), not an inner border -> kept
    ])
    keep = drop_cut_boxes(boxes, torch.tensor([0, 1, 0, 0]), win, (64, 100))
    assert keep.tolist() == [False, True, True, True]


def test_cut_box_kept_when_no_tile_sees_it_whole():
    win = tile_windows(64, 100, 64, 0.25)
    boxes = torch.tensor([[20.0, 10, 64, 20], [36.0, 10, 90, 20]])  # an object wider than the overlap, in two parts
    assert drop_cut_boxes(boxes, torch.tensor([0, 1]), win, (64, 100)).tolist() == [True, True]
    assert drop_cut_boxes(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), win, (64, 100)).shape == (0,)


def test_merge_nms_removes_duplicates_per_class():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1.0, 0, 11, 10], [0.0, 0, 10, 10], [50.0, 50, 60, 60]])
    scores = torch.tensor([0.6, 0.9, 0.8, 0.3])
    labels = torch.tensor([0, 0, 1, 0])
    b, s, l = merge_detections(boxes, scores, labels, 0.5, "nms")
    assert s.tolist() == pytest.approx([0.9, 0.8, 0.3])
    assert l.tolist() == [0, 1, 0]
    assert b.tolist() == [[1.0, 0, 11, 10], [0.0, 0, 10, 10], [50.0, 50, 60, 60]]


def test_merge_wbf_fuses_duplicates_weighted_by_score():
    boxes = torch.tensor([[0.0, 0, 10, 10], [2.0, 0, 12, 10], [0.0, 0, 10, 10]])
    scores = torch.tensor([0.75, 0.25, 0.5])
    labels = torch.tensor([0, 0, 1])
    b, s, l = merge_detections(boxes, scores, labels, 0.5, "wbf")
    assert l.tolist() == [0, 1] and s.tolist() == [0.75, 0.5]
    # (0.75 * [0, 0, 10, 10] + 0.25 * [2, 0, 12, 10]) / 1.0
    assert torch.allclose(b, torch.tensor([[0.5, 0.0, 10.5, 10.0], [0.0, 0.0, 10.0, 10.0]]))
    empty = merge_detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5, "wbf")
    assert [t.shape[0] for t in empty] == [0, 0, 0]
    with pytest.raises(ValueError, match="merge='mean'"):
        merge_detections(boxes, scores, labels, 0.5, "mean")
