"""IoU and clipping of x1y1x2y2 boxes; torchvision.ops where it covers the case.

torchvision's ``box_iou`` pairs two flat lists ([N, 4] x [M, 4]); assignment needs IoU per image of
a padded batch ([B, P, 4] x [B, G, 4]) and losses need it row by row, so both are written here once,
on one broadcasting core.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import clip_boxes_to_image

IOU_EPS = 1e-7


def aligned_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = IOU_EPS) -> Tensor:
    """IoU of boxes that broadcast against each other: Tensor[..., 4], Tensor[..., 4] -> Tensor[...].

    Row by row for equal shapes; pairwise when one side carries an extra axis of size 1.

    Example:
        >>> aligned_box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]])).tolist()  # doctest: +ELLIPSIS
        [0.333...]
    """
    lt = boxes1[..., :2].maximum(boxes2[..., :2])  # [..., 2]
    rb = boxes1[..., 2:].minimum(boxes2[..., 2:])  # [..., 2]
    inter = (rb - lt).clamp(min=0).prod(dim=-1)  # [...]
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(dim=-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(dim=-1)
    return inter / (area1 + area2 - inter + eps)


def batched_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = IOU_EPS) -> Tensor:
    """IoU of every pair within each image.

    Args:
        boxes1: Tensor[B, P, 4] x1y1x2y2; boxes2: Tensor[B, G, 4] x1y1x2y2 (same frame).

    Returns:
        Tensor[B, P, G] in [0, 1].
    """
    return aligned_box_iou(boxes1[:, :, None, :], boxes2[:, None, :, :], eps)  # [B, P, 1, 4] x [B, 1, G, 4]


def clip_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Clip boxes Tensor[..., 4] x1y1x2y2 to an image of (H, W): x into [0, W], y into [0, H].

    torchvision's ``clip_boxes_to_image``, which also traces for ONNX.
    """
    return clip_boxes_to_image(boxes, image_size)
