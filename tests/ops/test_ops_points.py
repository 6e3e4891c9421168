"""Point grids: cell centres, their levels and strides, flattening order."""

import torch

from autotimm.ops.points import flatten_levels, level_sizes, make_points, point_strides


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
