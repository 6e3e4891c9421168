import math

import torch

from autotimm.assigners.fcos import FCOSAssigner, default_regress_ranges
from autotimm.ops.points import make_points
from autotimm.ops.targets import PaddedTargets


def _gt(boxes, labels, crowd=None):
    t = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
    if crowd is not None:
        t["iscrowd"] = torch.tensor(crowd)
    return PaddedTargets.from_targets([t], torch.device("cpu"))


def test_default_regress_ranges_match_reference():
    assert default_regress_ranges((8, 16, 32, 64, 128)) == (
        (-1.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, math.inf))


def test_point_inside_two_boxes_goes_to_the_smaller():
    # One point at (20, 20) on a single stride-8 level with no size limits.
    points = torch.tensor([[20.0, 20.0]])
    level = torch.zeros(1, dtype=torch.int64)
    big, small = [0, 0, 60, 60], [10, 10, 30, 30]
    assigner = FCOSAssigner([(-1, 1e9)], center_sampling_radius=0)
    out = assigner(points, level, (8,), _gt([big, small], [1, 2]))
    assert out.labels.tolist() == [[2]]
    assert out.boxes[0, 0].tolist() == small
    # Order of the boxes does not matter.
    out = assigner(points, level, (8,), _gt([small, big], [2, 1]))
    assert out.labels.tolist() == [[2]]


def test_box_outside_a_levels_range_gets_no_points_there():
    # Two levels; a 100x100 box has max distance ~50 at its centre: inside level 0's (-1, 64) only.
    points = torch.tensor([[50.0, 50.0], [50.0, 50.0]])
    level = torch.tensor([0, 1])
    assigner = FCOSAssigner([(-1, 64), (64, 1e9)], center_sampling_radius=0)
    out = assigner(points, level, (8, 16), _gt([[0, 0, 100, 100]], [0]))
    assert out.labels.tolist() == [[0, -1]]


def test_center_sampling_limits_positives_to_the_centre_region():
    # Box 0..100; radius 1.5 * stride 8 = 12 px around the centre (50, 50).
    points = torch.tensor([[45.0, 50.0], [70.0, 50.0]])
    level = torch.zeros(2, dtype=torch.int64)
    out = FCOSAssigner([(-1, 1e9)], center_sampling_radius=1.5)(points, level, (8,), _gt([[0, 0, 100, 100]], [1]))
    assert out.labels.tolist() == [[1, -1]]


def test_empty_targets_give_all_background():
    points, level = make_points([(4, 4)], (8,))
    out = FCOSAssigner([(-1, 1e9)])(points, level, (8,), _gt([], []))
    assert (out.labels == -1).all()
    assert not out.ignore.any()


def test_crowd_boxes_are_ignored_not_learned():
    points = torch.tensor([[20.0, 20.0], [80.0, 80.0]])
    level = torch.zeros(2, dtype=torch.int64)
    out = FCOSAssigner([(-1, 1e9)], 0)(points, level, (8,), _gt([[0, 0, 40, 40]], [0], crowd=[1]))
    assert out.labels.tolist() == [[-1, -1]]
    assert out.ignore.tolist() == [[True, False]]
