"""The one box converter: hand-computed values, an exact round trip, bad input. No database."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autotimm.fiftyone.boxes import relative_xywh_to_xyxy, xyxy_to_relative_xywh


def test_hand_computed_values_both_ways():
    # 100 x 80 image: x / 100, y / 80
    rel = xyxy_to_relative_xywh(torch.tensor([[10.0, 20.0, 60.0, 40.0], [0.0, 0.0, 100.0, 80.0]]), 100, 80)
    assert rel.dtype == np.float64
    assert rel.tolist() == [[0.1, 0.25, 0.5, 0.25], [0.0, 0.0, 1.0, 1.0]]
    back = relative_xywh_to_xyxy(rel, 100, 80)
    assert back.dtype == np.float32
    assert back.tolist() == [[10.0, 20.0, 60.0, 40.0], [0.0, 0.0, 100.0, 80.0]]


def test_round_trip_is_bit_identical_for_float32_boxes():
    g = np.random.default_rng(0)
    w, h = 641, 479  # odd sizes: x / w is not exact in binary
    xy = g.uniform(0, 300, size=(500, 2)).astype(np.float32)
    wh = g.uniform(0.5, 170, size=(500, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)  # [500, 4]
    back = relative_xywh_to_xyxy(xyxy_to_relative_xywh(boxes, w, h), w, h)
    assert np.array_equal(back, boxes)


def test_empty_boxes_keep_their_shape():
    assert xyxy_to_relative_xywh(np.zeros((0, 4)), 10, 10).shape == (0, 4)
    assert relative_xywh_to_xyxy([], 10, 10).shape == (0, 4)


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (float("nan"), 5)])
def test_bad_image_size_is_named(size):
    with pytest.raises(ValueError, match=r"image size \(width, height\).*must be positive"):
        xyxy_to_relative_xywh([[0, 0, 1, 1]], *size)
    with pytest.raises(ValueError, match="compute the samples' metadata"):
        relative_xywh_to_xyxy([[0, 0, 1, 1]], *size)


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match=r"shape \[N, 4\]; got \(2, 3\)"):
        xyxy_to_relative_xywh(np.zeros((2, 3)), 10, 10)
