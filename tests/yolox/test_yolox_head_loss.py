"""YOLOX head, box coding and criterion on tiny hand-computed cases (input frame)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autotimm.assigners.simota import SimOTATargets
from autotimm.losses.functional import BCELoss, GIoULoss, IoULoss
from autotimm.losses.yolox import YOLOX_BOX_SCALE, YOLOXLoss
from autotimm.models.heads.yolox import YOLOXHead
from autotimm.arch.base import LossWeights
from autotimm.arch.yolox import YOLOX
from autotimm.ops.points import make_points, point_strides

LN2 = math.log(2)


def test_head_is_decoupled_per_level_with_objectness():
    head = YOLOXHead(16, num_classes=5, strides=(8, 16), num_convs=3)
    feats = [torch.randn(2, 16, 8, 10), torch.randn(2, 16, 4, 5)]
    cls, reg, obj = head(feats)
    assert [tuple(c.shape) for c in cls] == [(2, 5, 8, 10), (2, 5, 4, 5)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 10), (2, 4, 4, 5)]
    assert [tuple(o.shape) for o in obj] == [(2, 1, 8, 10), (2, 1, 4, 5)]
    assert len(head.levels) == 2 and head.levels[0].stem is not head.levels[1].stem  # no sharing
    level = head.levels[0]
    assert level.stem[0].kernel_size == (1, 1)
    assert sum(isinstance(m, nn.Conv2d) for m in level.cls_convs.modules()) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in level.reg_convs.modules()) == 3
    prior = -math.log(99)  # logit of 0.01
    assert torch.allclose(level.cls_pred.bias, torch.full((5,), prior))
    assert level.obj_pred.bias.item() == pytest.approx(prior)
    with pytest.raises(ValueError, match=r"2 levels .* got 1 feature maps"):
        head(feats[:1])


def test_head_handles_one_by_one_maps_and_batch_one():
    head = YOLOXHead(8, num_classes=2, strides=(32,), num_convs=2).train()
    cls, reg, obj = head([torch.randn(1, 8, 1, 1)])  # BatchNorm would fail here
    assert torch.isfinite(cls[0]).all() and torch.isfinite(reg[0]).all() and torch.isfinite(obj[0]).all()


def test_arch_decode_scores_and_level_strides():
    arch = YOLOX(in_channels=8, num_classes=2, strides=(8, 16), num_convs=1, cls_loss=BCELoss(), reg_loss=IoULoss(), weights=LossWeights())
    cls = [torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 1)]
    reg = [torch.zeros(1, 4, 1, 2), torch.zeros(1, 4, 1, 1)]
    obj = [torch.zeros(1, 1, 1, 2), torch.full((1, 1, 1, 1), math.log(3))]  # sigmoid = 0.75
    points, _ = make_points([(1, 2), (1, 1)], (8, 16))
    assert point_strides(cls, (8, 16)).tolist() == [8.0, 8.0, 16.0]
    scores, boxes = arch.decode((cls, reg, obj), points)
    assert scores.shape == (1, 3, 2)
    assert torch.allclose(scores[0], torch.tensor([[0.25, 0.25], [0.25, 0.25], [0.375, 0.375]]))  # 0.5 * obj
    assert boxes[0].tolist() == [[0.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0], [0.0, 0.0, 16.0, 16.0]]


def _targets(ignore=(False, False)):
    # Point 0 learns box [0, 0, 10, 10] of class 1 (its prediction has IoU 0.5); point 1 is background.
    return SimOTATargets(
        foreground=torch.tensor([[True, False]]),
        labels=torch.tensor([[1, -1]]),
        boxes=torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 0.0, 0.0]]]),
        iou=torch.tensor([[0.5, 0.0]]),
        ignore=torch.tensor([list(ignore)]),
    )


def _loss_inputs():
    cls = torch.zeros(1, 2, 2, requires_grad=True)  # every class logit 0: BCE = ln 2 whatever the target
    raw = torch.zeros(1, 2, 4, requires_grad=True)
    obj = torch.zeros(1, 2, requires_grad=True)
    pred_boxes = torch.tensor([[[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 1.0, 1.0]]])  # IoU 0.5 with the target
    points = torch.tensor([[5.0, 5.0], [20.0, 20.0]])
    stride = torch.tensor([8.0, 8.0])
    return cls, raw, obj, pred_boxes, points, stride


def test_loss_by_hand_with_weights():
    cls, raw, obj, pred_boxes, points, stride = _loss_inputs()
    crit = YOLOXLoss(BCELoss(), IoULoss(), cls_weight=0.5, reg_weight=2.0, obj_weight=3.0)
    out = crit(cls, raw, obj, pred_boxes, points, stride, _targets())
    assert out["cls_loss"].item() == pytest.approx(2 * LN2, rel=1e-5)  # K = 2 terms on the one foreground point
    assert out["reg_loss"].item() == pytest.approx(0.5, rel=1e-5)  # 1 - IoU
    assert out["obj_loss"].item() == pytest.approx(2 * LN2, rel=1e-5)  # both points, / 1 foreground
    assert out["centerness_loss"] is out["obj_loss"]
    assert "l1_loss" not in out
    expected = 0.5 * 2 * LN2 + YOLOX_BOX_SCALE * 2.0 * 0.5 + 3.0 * 2 * LN2
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    out["loss"].backward()
    assert cls.grad[0, 1].abs().sum() == 0  # background points get no classification loss ...
    assert obj.grad[0, 1] != 0  # ... but learn objectness 0
    # IoU-aware class targets (0, 0.5): gradient cls_weight * (sigmoid(0) - target) = 0.5 * (0.5, 0).
    assert cls.grad[0, 0].tolist() == pytest.approx([0.25, 0.0])


def test_l1_loss_on_raw_offsets():
    cls, raw, obj, pred_boxes, points, stride = _loss_inputs()
    crit = YOLOXLoss(BCELoss(), IoULoss())
    base = crit(cls, raw, obj, pred_boxes, points, stride, _targets())
    out = crit(cls, raw, obj, pred_boxes, points, stride, _targets(), use_l1=True)
    # Target of point (5, 5), stride 8, box centre (5, 5) size 10: (0, 0, ln 1.25, ln 1.25); raw is 0.
    assert out["l1_loss"].item() == pytest.approx(2 * math.log(1.25), rel=1e-5)
    assert out["loss"].item() == pytest.approx(base["loss"].item() + 2 * math.log(1.25), rel=1e-5)


def test_ignored_points_get_no_objectness_loss():
    cls, raw, obj, pred_boxes, points, stride = _loss_inputs()
    out = YOLOXLoss(BCELoss(), IoULoss())(cls, raw, obj, pred_boxes, points, stride, _targets(ignore=(False, True)))
    assert out["obj_loss"].item() == pytest.approx(LN2, rel=1e-5)


def test_no_foreground_gives_zero_box_and_class_loss_with_gradients():
    cls, raw, obj, pred_boxes, points, stride = _loss_inputs()
    empty = SimOTATargets(
        torch.zeros(1, 2, dtype=torch.bool), torch.full((1, 2), -1), torch.zeros(1, 2, 4), torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool)
    )
    out = YOLOXLoss(BCELoss(), GIoULoss())(cls, raw, obj, pred_boxes, points, stride, empty, use_l1=True)
    assert out["cls_loss"].item() == 0 and out["reg_loss"].item() == 0 and out["l1_loss"].item() == 0
    assert out["obj_loss"].item() == pytest.approx(2 * LN2, rel=1e-5)  # divided by max(1, 0 foreground)
    out["loss"].backward()
    assert (obj.grad > 0).all()  # pushes objectness down everywhere
