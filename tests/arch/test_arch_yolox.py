"""ObjectDetector(detection_arch="yolox"): outputs, losses and weights, bad input, export, and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autotimm import FeatureBackboneConfig, MetricManager, ObjectDetector
from autotimm.arch.base import LossWeights
from autotimm.arch.yolox import YOLOX
from autotimm.losses.functional import BCELoss, GIoULoss, IoULoss
from autotimm.losses.yolox import YOLOX_BOX_SCALE
from autotimm.ops.points import make_points, point_strides

from synthetic import collate, make_samples


@pytest.fixture
def yolox_kwargs(tiny_detector_kwargs):
    # timm's tiny test_resnet keeps these tests fast; the overfit test below uses it too.
    return {**tiny_detector_kwargs, "backbone": FeatureBackboneConfig("test_resnet", pretrained=False), "detection_arch": "yolox"}


def _targets(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.int64)}


def _finite_with_gradients(model, losses):
    assert all(torch.isfinite(v) for v in losses.values()), losses
    losses["loss"].backward()
    grads = [p.grad for p in model.detection_head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.detection_head.head.levels[0].obj_pred.weight.grad.abs().sum() > 0


def test_forward_returns_cls_raw_boxes_and_objectness_per_level(yolox_kwargs):
    model = ObjectDetector(**{**yolox_kwargs, "num_classes": 5})
    assert isinstance(model.detection_head, YOLOX)
    cls, reg, obj = model(torch.randn(2, 3, 64, 96))
    assert [tuple(c.shape) for c in cls] == [(2, 5, 8, 12), (2, 5, 4, 6), (2, 5, 2, 3), (2, 5, 1, 2), (2, 5, 1, 1)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 12), (2, 4, 4, 6), (2, 4, 2, 3), (2, 4, 1, 2), (2, 4, 1, 1)]
    assert [tuple(o.shape) for o in obj] == [(2, 1, 8, 12), (2, 1, 4, 6), (2, 1, 2, 3), (2, 1, 1, 2), (2, 1, 1, 1)]
    assert (torch.cat([r.flatten() for r in reg]) < 0).any()  # raw offsets, not distances
    # head_num_convs sets both towers; fpn_channels the head's width.
    model = ObjectDetector(**{**yolox_kwargs, "fpn_channels": 24, "head_num_convs": 2, "strides": (8, 16, 32)})
    level = model.detection_head.head.levels[0]
    assert len(model.detection_head.head.levels) == 3
    assert len(level.cls_convs) == 2 and len(level.reg_convs) == 2 and level.cls_pred.in_channels == 24


def test_default_losses_reg_loss_fn_and_weight_mapping(yolox_kwargs):
    model = ObjectDetector(**yolox_kwargs)
    crit = model.detection_head.criterion
    assert isinstance(crit.cls_loss, BCELoss) and isinstance(crit.reg_loss, IoULoss)
    assert isinstance(ObjectDetector(**yolox_kwargs, reg_loss_fn="giou").detection_head.criterion.reg_loss, GIoULoss)
    model = ObjectDetector(**yolox_kwargs, cls_loss_weight=0.5, reg_loss_weight=2.0, centerness_loss_weight=3.0)
    images, targets = collate(make_samples(2, 64))
    losses = model.compute_loss(model.normalize(images), targets)
    assert set(losses) == {"loss", "cls_loss", "reg_loss", "centerness_loss", "obj_loss"}
    assert torch.equal(losses["centerness_loss"], losses["obj_loss"])
    expected = 0.5 * losses["cls_loss"] + YOLOX_BOX_SCALE * 2.0 * losses["reg_loss"] + 3.0 * losses["obj_loss"]
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    model.detection_head.use_l1 = True
    losses = model.compute_loss(model.normalize(images), targets)
    assert losses["l1_loss"] > 0
    expected = 0.5 * losses["cls_loss"] + YOLOX_BOX_SCALE * 2.0 * losses["reg_loss"] + 3.0 * losses["obj_loss"] + losses["l1_loss"]
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_regress_ranges_are_rejected_for_yolox(yolox_kwargs):
    with pytest.raises(ValueError, match=r"regress_ranges=.*FCOS setting"):
        ObjectDetector(**yolox_kwargs, strides=(8, 16), regress_ranges=((-1, 64), (64, 10_000)))


def test_images_without_boxes(yolox_kwargs):
    model = ObjectDetector(**yolox_kwargs)
    images = torch.randn(2, 3, 64, 64)
    empty = _targets([], [])
    losses = model.compute_loss(images, [empty, empty])
    assert losses["obj_loss"] > 0 and losses["reg_loss"] == 0
    _finite_with_gradients(model, losses)
    model.zero_grad()
    losses = model.compute_loss(images, [empty, _targets([[8, 8, 40, 30]], [1])])  # mixed batch
    assert losses["reg_loss"] > 0
    _finite_with_gradients(model, losses)


def test_box_smaller_than_one_cell(yolox_kwargs):
    model = ObjectDetector(**yolox_kwargs)
    losses = model.compute_loss(torch.randn(1, 3, 64, 64), [_targets([[9.0, 9.0, 11.0, 10.5]], [2])])
    assert losses["reg_loss"] > 0  # it got a point
    _finite_with_gradients(model, losses)


def test_more_boxes_than_points_at_a_level(yolox_kwargs):
    model = ObjectDetector(**{**yolox_kwargs, "strides": (8, 16, 32)})
    # 64x64 input: 64 + 16 + 4 = 84 points for 100 boxes.
    g = torch.Generator().manual_seed(0)
    xy = torch.randint(0, 56, (100, 2), generator=g).float()
    boxes = torch.cat([xy, xy + torch.randint(2, 8, (100, 2), generator=g)], dim=1)
    target = {"boxes": boxes, "labels": torch.randint(0, 3, (100,), generator=g)}
    losses = model.compute_loss(torch.randn(1, 3, 64, 64), [target])
    _finite_with_gradients(model, losses)


def test_predict_returns_original_frame(yolox_kwargs):
    model = ObjectDetector(**yolox_kwargs, score_thresh=0.0, nms_thresh=1.0, max_detections_per_image=20)
    image = np.random.default_rng(0).integers(0, 255, (90, 180, 3), dtype=np.uint8)
    (det,) = model.predict(image, image_size=64)
    assert len(det["boxes"]) == 20 and det["labels"].dtype == torch.int64
    assert (det["scores"] <= 1).all() and (det["scores"][:-1] >= det["scores"][1:]).all()
    boxes = det["boxes"]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 180).all() and (boxes[:, 3] <= 90).all()


def test_onnx_end_to_end_matches_detect(yolox_kwargs):
    ort = pytest.importorskip("onnxruntime")
    from autotimm.export.onnx import export_to_onnx

    model = ObjectDetector(**{**yolox_kwargs, "strides": (8, 16, 32)}, score_thresh=0.0, nms_thresh=1.0).eval()
    x = torch.randn(2, 3, 64, 64)
    path = export_to_onnx(model, None, example_input=x, include_postprocess=True, max_detections=10)
    boxes, scores, labels, num = ort.InferenceSession(path).run(None, {"images": x.numpy()})
    with torch.no_grad():
        dets = model.detect(model(x), (64, 64), max_detections=10)
    for i, det in enumerate(dets):
        n = int(num[i])
        assert n == len(det["boxes"]) == 10
        assert np.allclose(boxes[i, :n], det["boxes"].numpy(), atol=1e-3)
        assert np.allclose(scores[i, :n], det["scores"].numpy(), atol=1e-5)
        assert (labels[i, :n] == det["labels"].numpy()).all()


def test_yolox_learns_tiny_synthetic_images():
    """Overfit 4 tiny images with a tiny timm backbone: mAP@0.5 reaches 0.8 in 40 AdamW steps."""
    torch.manual_seed(0)
    model = ObjectDetector(
        FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, detection_arch="yolox",
        fpn_channels=32, head_num_convs=1, strides=(8, 16, 32), compile_model=False, deterministic=False,
    )
    images, targets = collate(make_samples(4, 64))
    x = model.normalize(images)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    first = None
    for _ in range(40):
        losses = model.compute_loss(x, targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = losses["loss"].item() if first is None else first
    assert losses["loss"].item() < 0.5 * first
    model.eval()
    with torch.no_grad():
        dets = model.detect(model(x), (64, 64))
    metrics = MetricManager.default()
    metrics.update("val", dets, targets)
    values = metrics.compute("val")
    assert values["val/mAP_50"].item() >= 0.8, values


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
