"""IoU (row by row and pairwise per image) and clipping, on boxes you can check on paper."""

import pytest
import torch
from torchvision.ops import box_iou

from autotimm.ops.boxes import aligned_box_iou, batched_box_iou, clip_boxes


def test_aligned_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    iou = aligned_box_iou(a, b)
    assert iou[0].item() == pytest.approx(2 / 6)  # overlap 1 x 2, union 4 + 4 - 2
    assert iou[1].item() == pytest.approx(1.0)
    assert iou[2].item() == 0.0


def test_batched_iou_by_hand_and_equal_to_torchvision_per_image():
    preds = torch.tensor([[[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]]])  # [1, 2, 4]
    gts = torch.tensor([[[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]]])  # [1, 2, 4]
    iou = batched_box_iou(preds, gts)
    assert iou.shape == (1, 2, 2)
    assert iou[0, 0, 0].item() == pytest.approx(1 / 7)  # overlap 1, union 4 + 4 - 1
    assert iou[0, 0, 1].item() == pytest.approx(1.0)
    assert iou[0, 1].tolist() == [0.0, 0.0]
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3, 5, 2, generator=g) * 10
    boxes = torch.cat([xy, xy + torch.rand(3, 5, 2, generator=g) * 5 + 0.1], -1)
    ours = batched_box_iou(boxes, boxes[:, :4])
    assert all(torch.allclose(ours[i], box_iou(boxes[i], boxes[i, :4]), atol=1e-6) for i in range(3))


def test_clip_to_the_image_size_height_first():
    boxes = torch.tensor([[[-5.0, -1.0, 70.0, 30.0]]])
    assert clip_boxes(boxes, (20, 64)).tolist() == [[[0.0, 0.0, 64.0, 20.0]]]
