"""Box coders: encode and decode are inverses, checked on hand-computed boxes."""

import math

import pytest
import torch

from autotimm.ops.coders import DistanceCoder, OffsetLogSizeCoder

LN2 = math.log(2)


def test_distance_coder_by_hand_and_round_trip():
    points = torch.tensor([[2.0, 1.0], [10.0, 10.0]])
    boxes = torch.tensor([[0.0, 0.0, 8.0, 4.0], [0.0, 0.0, 8.0, 4.0]])
    dists = DistanceCoder.encode(boxes, points)
    assert dists.tolist() == [[2.0, 1.0, 6.0, 3.0], [10.0, 10.0, -2.0, -6.0]]  # negative: outside on that side
    assert torch.equal(DistanceCoder.decode(dists, points), boxes)


def test_distance_coder_broadcasts_points_against_boxes():
    points = torch.tensor([[2.0, 1.0], [4.0, 2.0]])  # [P, 2]
    boxes = torch.tensor([[[0.0, 0.0, 8.0, 4.0]]])  # [B, G, 4]
    pairs = DistanceCoder.encode(boxes[:, None, :, :], points[None, :, None, :])  # [B, P, G, 4]
    assert pairs.shape == (1, 2, 1, 4)
    assert pairs[0, 1, 0].tolist() == [4.0, 2.0, 4.0, 2.0]


def test_offset_coder_by_hand_and_round_trip():
    coder = OffsetLogSizeCoder()
    points = torch.tensor([[12.0, 4.0], [8.0, 8.0]])
    stride = torch.tensor([8.0, 16.0])
    raw = torch.tensor([[[0.5, -0.25, LN2, 0.0], [0.0, 0.0, 0.0, 0.0]]])  # [1, P, 4]
    boxes = coder.decode(raw, points, stride)
    # centre (12 + 4, 4 - 2) = (16, 2), size (16, 8) -> [8, -2, 24, 6]; a zero output is one stride.
    assert torch.allclose(boxes[0], torch.tensor([[8.0, -2.0, 24.0, 6.0], [0.0, 0.0, 16.0, 16.0]]))
    assert torch.allclose(coder.encode(boxes[0], points, stride), raw[0], atol=1e-6)


def test_offset_coder_clamps_the_log_size():
    coder = OffsetLogSizeCoder(max_log_wh=7.0)
    boxes = coder.decode(torch.tensor([[[0.0, 0.0, 1e4, -1e4]]]), torch.tensor([[0.0, 0.0]]), torch.tensor([8.0]))
    assert torch.isfinite(boxes).all()
    assert (boxes[0, 0, 2] - boxes[0, 0, 0]).item() == pytest.approx(math.exp(7.0) * 8, rel=1e-5)
