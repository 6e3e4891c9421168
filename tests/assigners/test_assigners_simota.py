"""SimOTA, step by step on hand-made cases, then the whole assigner (input frame throughout)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from autotimm.assigners.simota import (
    INF,
    OUTSIDE_PRIOR_COST,
    SimOTAAssigner,
    classification_cost,
    dynamic_k,
    dynamic_k_matching,
    geometry_prior,
    matching_cost,
    resolve_conflicts,
)
from autotimm.ops.points import make_points
from autotimm.ops.targets import PaddedTargets


def _gt(boxes, labels, crowd=None):
    t = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}
    if crowd is not None:
        t["iscrowd"] = torch.tensor(crowd)
    return PaddedTargets.from_targets([t], torch.device("cpu"))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ---------------------------------------------------------------- the steps
def test_geometry_prior_inside_box_and_centre_region():
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [40.0, 40.0]])
    stride = torch.tensor([8.0, 8.0, 8.0])
    # Box 0..10: centre (5, 5), centre region 5 +- 2.5 * 8 = (-15, 25).
    in_box, in_center = geometry_prior(points, stride, torch.tensor([[[0.0, 0.0, 10.0, 10.0]]]))
    assert in_box[0, :, 0].tolist() == [True, False, False]
    assert in_center[0, :, 0].tolist() == [True, True, False]
    # The radius is in strides: at stride 32 the far point is inside the centre region (5 +- 80).
    _, in_center = geometry_prior(points, torch.tensor([8.0, 8.0, 32.0]), torch.tensor([[[0.0, 0.0, 10.0, 10.0]]]))
    assert in_center[0, :, 0].tolist() == [True, True, True]


def test_classification_cost_is_the_bce_sum_over_classes():
    scores = torch.tensor([[[0.5, 0.25]]])  # one point, K = 2
    cost = classification_cost(scores, torch.tensor([[0, 1]]))  # two boxes, classes 0 and 1
    assert cost[0, 0, 0].item() == pytest.approx(-math.log(0.5) - math.log(0.75), rel=1e-6)
    assert cost[0, 0, 1].item() == pytest.approx(-math.log(0.5) - math.log(0.25), rel=1e-6)
    # Same as the [B, P, G, K] formulation it replaces.
    scores = torch.rand(2, 5, 4) * 0.98 + 0.01
    labels = torch.randint(0, 4, (2, 3))
    onehot = F.one_hot(labels, 4).float()[:, None].expand(-1, 5, -1, -1)  # [B, P, G, K]
    full = F.binary_cross_entropy(scores[:, :, None].expand(-1, -1, 3, -1), onehot, reduction="none").sum(-1)
    assert torch.allclose(classification_cost(scores, labels), full, atol=1e-5)
    # Scores of exactly 0 and 1 stay finite.
    assert torch.isfinite(classification_cost(torch.tensor([[[0.0, 1.0]]]), torch.tensor([[0]]))).all()


def test_matching_cost_terms():
    cls_cost = torch.full((1, 3, 1), 0.5)
    iou = torch.full((1, 3, 1), 0.5)
    prior = torch.tensor([[[True], [False], [True]]])
    allowed = torch.tensor([[[True], [True], [False]]])
    cost = matching_cost(cls_cost, iou, prior, allowed)
    assert cost[0, 0, 0].item() == pytest.approx(0.5 + 3 * math.log(2), rel=1e-5)
    assert cost[0, 1, 0].item() == pytest.approx(0.5 + 3 * math.log(2) + OUTSIDE_PRIOR_COST, rel=1e-6)
    assert cost[0, 2, 0].item() == INF


def test_dynamic_k_sums_the_top_ious():
    iou = torch.tensor([[0.9, 0.9, 0.9], [0.9, 0.9, 0.9], [0.9, 0.9, 0.0], [0.5, 0.8, 0.0]])[None]  # [1, P=4, G=3]
    allowed = torch.ones(1, 4, 3, dtype=torch.bool)
    # Sums 3.2 -> 3, 3.5 -> 3, 1.8 -> 1; a box with no overlap at all still takes one point.
    assert dynamic_k(iou, allowed).tolist() == [[3, 3, 1]]
    assert dynamic_k(torch.zeros(1, 4, 2), torch.ones(1, 4, 2, dtype=torch.bool)).tolist() == [[1, 1]]
    # Only the top-k IoUs count, and only allowed pairs.
    assert dynamic_k(iou, allowed, topk=2).tolist() == [[1, 1, 1]]  # 1.8, 1.8, 1.8
    allowed[0, 3, 0] = False
    assert dynamic_k(iou, allowed).tolist() == [[2, 3, 1]]  # 2.7


def test_dynamic_k_matching_takes_the_k_cheapest_allowed_points():
    cost = torch.tensor([[INF, 0.1], [1.0, 5.0], [2.0, 4.0], [0.5, 3.0]])[None]  # [1, P=4, G=2]
    allowed = torch.tensor([[False, True], [True, True], [True, True], [True, True]])[None]
    matching = dynamic_k_matching(cost, torch.tensor([[2, 3]]), allowed)
    assert matching[0, :, 0].tolist() == [False, True, False, True]  # costs 0.5 and 1.0
    assert matching[0, :, 1].tolist() == [True, False, True, True]  # costs 0.1, 3.0, 4.0
    # k larger than the allowed points never matches a forbidden one.
    matching = dynamic_k_matching(cost, torch.tensor([[4, 1]]), allowed)
    assert matching[0, :, 0].tolist() == [False, True, True, True]


def test_resolve_conflicts_keeps_the_cheapest_matched_box():
    matching = torch.tensor([[True, True], [True, False], [False, False]])[None]  # [1, P=3, G=2]
    cost = torch.tensor([[5.0, 2.0], [7.0, 1.0], [0.0, 0.0]])[None]
    foreground, gt_index = resolve_conflicts(matching, cost)
    assert foreground.tolist() == [[True, True, False]]
    # Point 0 keeps box 1 (cost 2 < 5); point 1 keeps the only box it was matched to.
    assert gt_index[0, :2].tolist() == [1, 0]


# ---------------------------------------------------------------- the assigner
def _single_level(points):
    points = torch.tensor(points, dtype=torch.float32)
    return points, torch.full((len(points),), 8.0)


def _uniform_logits(p: int, k: int = 2):
    return torch.zeros(1, p, k), torch.zeros(1, p)


def test_point_in_two_boxes_goes_to_the_box_it_predicts_best():
    # p0 (20, 20) lies in both boxes; p1 (36, 36) only in the big one.
    points, stride = _single_level([[20, 20], [36, 36]])
    big, small = [0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 30.0, 30.0]
    cls, obj = _uniform_logits(2)  # equal class scores: only the IoU decides
    preds = torch.tensor([[small, [30.0, 30.0, 40.0, 40.0]]])  # p0 predicts the small box exactly
    # Both boxes have k = 1 and both choose p0 (cost -3 log 0.25 for big < -3 log 0.0625 at p1);
    # p0 keeps the small box, whose cost (IoU 1) is lower.
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([big, small], [0, 1]))
    assert out.foreground.tolist() == [[True, False]]
    assert out.labels.tolist() == [[1, -1]]
    assert out.boxes[0, 0].tolist() == small
    assert out.iou[0, 0].item() == pytest.approx(1.0, abs=1e-6)
    # The order of the boxes does not matter.
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([small, big], [1, 0]))
    assert out.labels.tolist() == [[1, -1]]
    # Predicting the big box instead sends p0 to the big box.
    preds[0, 0] = torch.tensor(big)
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([big, small], [0, 1]))
    assert out.labels[0, 0].item() == 0 and out.boxes[0, 0].tolist() == big


def test_dynamic_k_with_one_very_good_match_takes_one_point():
    box = [8.0, 8.0, 40.0, 40.0]
    points, stride = _single_level([[12, 12], [20, 20], [28, 28], [36, 36]])
    cls, obj = _uniform_logits(4)
    poor = [0.0, 0.0, 10.0, 10.0]  # IoU 4 / (1024 + 100 - 4) with the box
    preds = torch.tensor([[poor, box, poor, poor]])
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([box], [0]))
    # Top IoUs sum to 1 + 3 * 0.0036 -> k = 1: only the exact prediction learns the box.
    assert out.foreground.tolist() == [[False, True, False, False]]
    # Three good predictions (IoU 0.875, 1, 0.875) sum to 2.75 -> k = 2: the exact one and one more.
    preds = torch.tensor([[[8.0, 8.0, 36.0, 40.0], box, [12.0, 8.0, 40.0, 40.0], poor]])
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([box], [0]))
    assert out.foreground[0].sum().item() == 2 and out.foreground[0, 1]


def test_classification_cost_breaks_ties_between_equal_boxes():
    box = [0.0, 0.0, 32.0, 32.0]
    points, stride = _single_level([[12, 12], [20, 20]])
    preds = torch.tensor([[box, box]])
    cls = torch.tensor([[[_logit(0.2), 0.0], [_logit(0.9), 0.0]]])  # p1 is surer of class 0
    obj = torch.zeros(1, 2)
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([box], [0]))
    # Sum of IoUs 2 -> k = 2: both points, ...
    assert out.foreground.tolist() == [[True, True]]
    # ... and with topk=1 (k = 1) the one with the better class score.
    out = SimOTAAssigner(topk=1)(points, stride, cls, obj, preds, _gt([box], [0]))
    assert out.foreground.tolist() == [[False, True]]


def test_empty_targets_give_all_background():
    points, _ = make_points([(4, 4)], (8,))
    stride = torch.full((16,), 8.0)
    cls, obj = _uniform_logits(16)
    preds = torch.rand(1, 16, 4) * 10 + torch.tensor([0.0, 0.0, 12.0, 12.0])
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([], []))
    assert not out.foreground.any() and (out.labels == -1).all()
    assert (out.boxes == 0).all() and (out.iou == 0).all() and not out.ignore.any()


def test_box_smaller_than_a_cell_still_gets_one_point():
    points, _ = make_points([(8, 8)], (8,))  # cell centres at 4, 12, ..., 60
    stride = torch.full((64,), 8.0)
    cls, obj = _uniform_logits(64, 3)
    preds = torch.cat([points - 4, points + 4], dim=1)[None]  # one-cell boxes on every point
    tiny = [9.0, 9.0, 11.0, 11.0]  # 2x2 px: no cell centre inside
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([tiny], [2]))
    assert out.foreground.sum().item() == 1
    assert out.labels[out.foreground].tolist() == [2]
    assert points[out.foreground[0]].tolist() == [[12.0, 12.0]]  # the cell whose box overlaps most


def test_more_boxes_than_points():
    points, _ = make_points([(2, 2)], (8,))  # 4 points
    stride = torch.full((4,), 8.0)
    boxes = [[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [8, 8, 16, 16], [2, 2, 14, 14], [4, 4, 12, 12]]
    cls, obj = _uniform_logits(4, 3)
    preds = torch.cat([points - 4, points + 4], dim=1)[None]
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt(boxes, [0, 1, 2, 0, 1, 2]))
    assert out.foreground.sum().item() == 4  # every point learns exactly one box
    assert ((out.labels >= 0) == out.foreground).all()
    assert torch.isfinite(out.iou).all()


def test_crowd_boxes_are_ignored_not_learned():
    points, _ = make_points([(4, 4)], (8,))  # 32x32
    stride = torch.full((16,), 8.0)
    cls, obj = _uniform_logits(16)
    preds = torch.cat([points - 4, points + 4], dim=1)[None]
    out = SimOTAAssigner()(points, stride, cls, obj, preds, _gt([[0, 0, 16, 16], [16, 16, 32, 32]], [0, 1], crowd=[0, 1]))
    assert (out.labels[out.foreground] == 0).all()  # the crowd box is never a target
    inside_crowd = (points[:, 0] > 16) & (points[:, 1] > 16)
    assert out.ignore[0].tolist() == inside_crowd.tolist()  # no objectness loss there


def test_padded_batch_matches_per_image_assignment():
    torch.manual_seed(0)
    points, _ = make_points([(4, 4), (2, 2)], (8, 16))
    stride = torch.tensor([8.0] * 16 + [16.0] * 4)
    cls, obj = torch.randn(2, 20, 3), torch.randn(2, 20)
    preds = torch.cat([points - 6, points + 6], dim=1)[None].repeat(2, 1, 1) + torch.randn(2, 20, 4)
    t0 = {"boxes": torch.tensor([[2.0, 2.0, 20.0, 18.0], [10.0, 12.0, 30.0, 30.0]]), "labels": torch.tensor([0, 2])}
    t1 = {"boxes": torch.tensor([[0.0, 4.0, 16.0, 28.0]]), "labels": torch.tensor([1])}
    batch = SimOTAAssigner()(points, stride, cls, obj, preds, PaddedTargets.from_targets([t0, t1], torch.device("cpu")))
    for i, t in enumerate([t0, t1]):
        single = SimOTAAssigner()(points, stride, cls[i : i + 1], obj[i : i + 1], preds[i : i + 1], PaddedTargets.from_targets([t], torch.device("cpu")))
        assert torch.equal(batch.labels[i], single.labels[0])
        assert torch.equal(batch.boxes[i], single.boxes[0])


def test_bad_assigner_settings():
    with pytest.raises(ValueError, match=r"center_radius=0"):
        SimOTAAssigner(center_radius=0)
    with pytest.raises(ValueError, match=r"topk=0"):
        SimOTAAssigner(topk=0)
    with pytest.raises(ValueError, match=r"iou_weight=-1"):
        SimOTAAssigner(iou_weight=-1)
