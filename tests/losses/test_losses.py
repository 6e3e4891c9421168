import math

import pytest
import torch
from torch import nn

from autotimm import list_losses, register_loss
from autotimm.assigners.fcos import FCOSTargets
from autotimm.losses.fcos import FCOSLoss, centerness_target
from autotimm.losses.functional import FocalLoss, GIoULoss, IoULoss
from autotimm.losses.registry import build_loss


def test_focal_loss_hand_computed():
    # logit 0 -> p = 0.5. Positive: alpha * (1 - p)^gamma * -log(p) = 0.25 * 0.25 * ln 2.
    # Negative: (1 - alpha) * p^gamma * -log(1 - p) = 0.75 * 0.25 * ln 2.
    loss = FocalLoss(alpha=0.25, gamma=2.0)(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(loss, torch.tensor([[0.0625 * math.log(2), 0.1875 * math.log(2)]]), atol=1e-6)


def test_giou_loss_hand_computed():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # IoU = 1 / 7; enclosing box area 9; GIoU = 1/7 - (9 - 7) / 9; loss = 1 - GIoU.
    expected = 1 - (1 / 7 - 2 / 9)
    assert GIoULoss()(pred, target).item() == pytest.approx(expected, abs=1e-6)
    assert IoULoss()(pred, target).item() == pytest.approx(1 - 1 / 7, abs=1e-6)
    assert GIoULoss()(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_centerness_hand_computed():
    points = torch.tensor([[25.0, 50.0]])
    boxes = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    # l=25, r=75, t=b=50: sqrt(25/75 * 1) = sqrt(1/3)
    assert centerness_target(points, boxes).item() == pytest.approx(math.sqrt(1 / 3), abs=1e-6)


def test_fcos_loss_background_points_get_classification_loss():
    # No positives at all: the classification loss must still push background logits down.
    logits = torch.zeros(1, 4, 2, requires_grad=True)
    targets = FCOSTargets(labels=torch.full((1, 4), -1), boxes=torch.zeros(1, 4, 4), ignore=torch.zeros(1, 4, dtype=torch.bool))
    crit = FCOSLoss(FocalLoss(), GIoULoss())
    dists = torch.ones(1, 4, 4, requires_grad=True)
    ctr = torch.zeros(1, 4, requires_grad=True)
    losses = crit(logits, dists, ctr, torch.rand(4, 2) * 10, targets)
    # 8 negatives, each 0.75 * 0.25 * ln 2, normalised by max(num_pos, 1) = 1.
    assert losses["cls_loss"].item() == pytest.approx(8 * 0.1875 * math.log(2), rel=1e-5)
    assert losses["reg_loss"].item() == 0 and losses["centerness_loss"].item() == 0
    losses["loss"].backward()
    assert logits.grad is not None and (logits.grad > 0).all()
    assert torch.isfinite(dists.grad).all()


def test_fcos_loss_ignored_points_get_no_classification_loss():
    logits = torch.zeros(1, 2, 1)
    ignore = torch.tensor([[True, False]])
    targets = FCOSTargets(labels=torch.full((1, 2), -1), boxes=torch.zeros(1, 2, 4), ignore=ignore)
    losses = FCOSLoss(FocalLoss(), GIoULoss())(logits, torch.ones(1, 2, 4), torch.zeros(1, 2), torch.zeros(2, 2), targets)
    assert losses["cls_loss"].item() == pytest.approx(0.1875 * math.log(2), rel=1e-5)


def test_fcos_loss_perfect_box_has_zero_regression_loss_and_weights_apply():
    points = torch.tensor([[50.0, 50.0]])
    targets = FCOSTargets(labels=torch.tensor([[0]]), boxes=torch.tensor([[[0.0, 0.0, 100.0, 100.0]]]), ignore=torch.zeros(1, 1, dtype=torch.bool))
    dists = torch.full((1, 1, 4), 50.0)
    ctr_logit = torch.zeros(1, 1)
    out = FCOSLoss(FocalLoss(), GIoULoss(), 1.0, 1.0, 2.0)(torch.zeros(1, 1, 1), dists, ctr_logit, points, targets)
    assert out["reg_loss"].item() == pytest.approx(0.0, abs=1e-6)
    # centerness target 1, logit 0: BCE = ln 2; weight 2 in the total.
    assert out["centerness_loss"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert out["loss"].item() == pytest.approx(out["cls_loss"].item() + 2 * math.log(2), abs=1e-5)


def test_registry_names_modules_and_errors():
    assert {"focal", "bce"} <= set(list_losses("cls"))
    assert {"giou", "iou", "diou", "ciou", "l1", "smooth_l1"} <= set(list_losses("reg"))
    focal = build_loss(None, "cls", "focal", alpha=0.5, gamma=1.0)
    assert isinstance(focal, FocalLoss) and focal.alpha == 0.5 and focal.gamma == 1.0
    custom = nn.SmoothL1Loss()
    assert build_loss(custom, "reg", "giou") is custom
    with pytest.raises(ValueError, match="Unknown reg loss 'nope'.*giou"):
        build_loss("nope", "reg", "giou")


def test_register_loss_decorator_and_duplicate():
    @register_loss("test_abs_l1", kind="reg")
    class AbsL1(nn.Module):
        def forward(self, pred, target):
            return (pred - target).abs().sum(-1)

    assert "test_abs_l1" in list_losses("reg")
    assert isinstance(build_loss("test_abs_l1", "reg", "giou"), AbsL1)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("test_abs_l1", AbsL1, kind="reg")
