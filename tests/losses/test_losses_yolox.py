"""YOLOX criterion on tiny hand-computed cases (input frame)."""

from __future__ import annotations

import math

import pytest
import torch

from autotimm.assigners.simota import SimOTATargets
from autotimm.losses.functional import BCELoss, GIoULoss, IoULoss
from autotimm.losses.yolox import YOLOX_BOX_SCALE, YOLOXLoss

LN2 = math.log(2)


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
