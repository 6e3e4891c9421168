"""Point grids: cell centres, their levels and strides, flattening order."""

import torch

from autotimm.ops.points import flatten_levels, level_sizes, make_points, point_strides, points_like


def test_points_are_cell_centres():
    points, level = make_points([(2, 3), (1, 1)], (8, 16))
    assert points.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12], [8, 8]]
    assert level.tolist() == [0, 0, 0, 0, 0, 0, 1]


def test_strides_and_flattening_follow_the_point_order():
    maps = [torch.arange(2 * 1 * 2 * 3).reshape(2, 1, 2, 3).float(), torch.full((2, 1, 1, 1), -1.0)]
    assert point_strides(maps, (8, 16)).tolist() == [8.0] * 6 + [16.0]
    assert level_sizes(maps) == [6, 1]
    flat = flatten_levels(maps)  # [B, P, C]
    assert flat.shape == (2, 7, 1)
    assert flat[1, :, 0].tolist() == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0, -1.0]  # row-major, then the next level


def test_points_like_equals_make_points_and_follows_the_maps():
    maps = [torch.zeros(2, 5, 3, 4), torch.zeros(2, 5, 2, 2), torch.zeros(2, 5, 1, 1)]
    expected, _ = make_points([(3, 4), (2, 2), (1, 1)], (8, 16, 32))
    got = points_like(maps, (8, 16, 32))
    assert torch.equal(got, expected)
    assert got[:5].tolist() == [[4.0, 4.0], [12.0, 4.0], [20.0, 4.0], [28.0, 4.0], [4.0, 12.0]]  # row-major, x first
    assert points_like([torch.zeros(1, 1, 1, 2)], (8,)).tolist() == [[4.0, 4.0], [12.0, 4.0]]
