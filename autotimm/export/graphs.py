"""What goes into an ONNX file: the raw network, or the network plus decode and NMS.

Both wrappers run the detector's own modules (``backbone -> fpn -> detection_head``) and the
end-to-end one reuses the architecture's own ``decode``, so a new ``detection_arch`` (YOLOX)
exports without changes here. The post-processing mirrors :func:`autotimm.postprocess.postprocess`
step for step, but with fixed output shapes (a graph cannot return one list per image).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from autotimm.arch.registry import get_architecture
from autotimm.ops.boxes import clip_boxes
from autotimm.postprocess import select_topk_per_level

INPUT_NAME = "images"
E2E_OUTPUT_NAMES = ("boxes", "scores", "labels", "num_detections")


def raw_output_names(detection_arch: str, num_levels: int) -> list[str]:
    """``cls_l0..cls_l{L-1}, reg_l0.., ctr_l0..`` (``obj_l*`` for YOLOX), grouped by kind."""
    prefixes = get_architecture(detection_arch).output_prefixes
    return [f"{p}_l{i}" for p in prefixes for i in range(num_levels)]


class RawOutputs(nn.Module):
    """The detector's network with its per-level lists flattened into one tuple of tensors.

    Input: normalised float Tensor[B, 3, H, W] (input frame). Output, in the order of
    :func:`raw_output_names`: L class-logit maps [B, K, H_l, W_l], L box-distance maps
    [B, 4, H_l, W_l] (input-frame pixels), L centerness (FCOS) or objectness (YOLOX) maps
    [B, 1, H_l, W_l].
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model._network(images)  # eager network: no torch.compile, no Python checks
        return tuple(t for kind in outputs for t in kind)


class EndToEnd(nn.Module):
    """Network + decode + score threshold + class-aware NMS + top-K, with fixed output shapes.

    Input: normalised float Tensor[B, 3, H, W] (input frame, as :meth:`ObjectDetector.preprocess`
    makes it). Outputs (K = ``max_detections``), padded past ``num_detections``:
        boxes: float Tensor[B, K, 4] x1y1x2y2 in input-frame pixels (0 in padding).
        scores: float Tensor[B, K] sorted descending (0 in padding).
        labels: int64 Tensor[B, K] contiguous class ids (-1 in padding).
        num_detections: int64 Tensor[B] valid rows per image.

    Args:
        model: an :class:`~autotimm.detector.ObjectDetector`.
        score_thresh / nms_thresh / max_detections / topk_per_level: as in ``model.detect``.
    """

    def __init__(self, model: nn.Module, score_thresh: float, nms_thresh: float, max_detections: int, topk_per_level: int = 1000) -> None:
        super().__init__()
        self.model = model
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.max_detections = int(max_detections)
        self.topk_per_level = int(topk_per_level)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        outputs = self.model._network(images)
        points, _ = self.model.points(outputs)  # constants in the graph: H and W are static
        scores, boxes = self.model.detection_head.decode(outputs, points)  # [B, P, C], [B, P, 4]
        level_sizes = [m.shape[-2] * m.shape[-1] for m in outputs[0]]
        return fixed_size_postprocess(
            scores, boxes, level_sizes, (int(images.shape[-2]), int(images.shape[-1])),  # static: the grid is baked in
            self.score_thresh, self.nms_thresh, self.max_detections, self.topk_per_level,
        )


def fixed_size_postprocess(
    scores: Tensor,
    boxes: Tensor,
    level_sizes: Sequence[int],
    image_size: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    topk_per_level: int = 1000,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`autotimm.postprocess.postprocess` with fixed shapes, traceable with a dynamic batch.

    Args:
        scores: Tensor[B, P, C] per-class scores in [0, 1].
        boxes: Tensor[B, P, 4] decoded x1y1x2y2 boxes (input frame).
        level_sizes: points per level.
        image_size: (H, W) of the input tensor, for clipping.
        score_thresh / nms_thresh / max_detections / topk_per_level: as in ``postprocess``.

    Returns:
        boxes [B, K, 4] (input frame), scores [B, K], labels int64 [B, K], num_detections int64 [B],
        with K = ``max_detections``; rows past ``num_detections`` hold 0, 0 and -1.
    """
    c = scores.shape[2]
    top_scores, flat = select_topk_per_level(scores.float(), level_sizes, topk_per_level)  # [B, N]
    point, label = flat // c, flat % c  # [B, N]
    cand = boxes.float().gather(1, point[..., None].expand(-1, -1, 4))  # [B, N, 4]
    cand = clip_boxes(cand, image_size)
    nonempty = (cand[..., 2:] > cand[..., :2]).all(-1)  # [B, N]; boxes clipped to nothing are dropped
    below = torch.full_like(top_scores, -1.0)  # under any threshold in [0, 1)
    nms_scores = torch.where(nonempty, top_scores, below)  # [B, N]
    # NonMaxSuppression scores per class: each candidate scores only in its own class column.
    classes = torch.arange(c, device=scores.device)[None, :, None]  # [1, C, 1]
    class_scores = torch.where(label[:, None, :] == classes, nms_scores[:, None, :], below[:, None, :])  # [B, C, N]
    selected = NonMaxSuppression.apply(cand, class_scores, max_detections, nms_thresh, score_thresh)  # [M, 3]
    kept = torch.zeros_like(nonempty).index_put((selected[:, 0], selected[:, 2]), torch.ones_like(selected[:, 0], dtype=torch.bool))
    final = torch.where(kept, top_scores, below)  # [B, N]
    n = final.shape[1]
    if n < max_detections:  # fewer candidates than output rows (tiny images): pad with non-detections
        pad = max_detections - n
        final = torch.cat([final, below[:, :1].expand(-1, pad)], 1)
        cand = torch.cat([cand, torch.zeros_like(cand[:, :1]).expand(-1, pad, -1)], 1)
        label = torch.cat([label, torch.zeros_like(label[:, :1]).expand(-1, pad)], 1)
    values, order = final.topk(max_detections, dim=1)  # [B, K], descending
    valid = values >= 0  # [B, K]
    out_boxes = torch.where(valid[..., None], cand.gather(1, order[..., None].expand(-1, -1, 4)), torch.zeros_like(values)[..., None])
    out_scores = torch.where(valid, values, torch.zeros_like(values))
    out_labels = torch.where(valid, label.gather(1, order), torch.full_like(order, -1))
    return out_boxes, out_scores, out_labels, valid.sum(1)


class NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` (opset 10+), with an eager twin used while tracing.

    Args (to ``apply``):
        boxes: Tensor[B, N, 4] x1y1x2y2.
        scores: Tensor[B, C, N].
        max_output_boxes_per_class: boxes kept per image and class.
        iou_threshold: boxes overlapping a kept box by IoU > this are suppressed.
        score_threshold: boxes scoring <= this are never selected.

    Returns:
        selected int64 Tensor[M, 3]: (batch index, class index, box index) rows.
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_output_boxes_per_class: int, iou_threshold: float, score_threshold: float) -> Tensor:  # type: ignore[override]
        c = scores.shape[1]
        b_idx, c_idx, n_idx = (scores > score_threshold).nonzero(as_tuple=True)  # candidates [M0]
        group = b_idx * c + c_idx
        keep = batched_nms(boxes[b_idx, n_idx], scores[b_idx, c_idx, n_idx], group, iou_threshold)  # score-sorted
        # Rank of each kept box inside its (image, class) group, to cap it at max_output_boxes_per_class.
        g = group[keep]
        by_group = torch.sort(g, stable=True)
        start = torch.searchsorted(by_group.values, by_group.values)  # first position of each group
        rank = torch.empty_like(g)
        rank[by_group.indices] = torch.arange(len(g), device=g.device) - start
        keep = keep[rank < max_output_boxes_per_class]
        return torch.stack([b_idx[keep], c_idx[keep], n_idx[keep]], dim=1)

    @staticmethod
    def symbolic(g, boxes, scores, max_output_boxes_per_class: int, iou_threshold: float, score_threshold: float):  # noqa: ANN001
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([max_output_boxes_per_class], dtype=torch.int64)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)),
            center_point_box_i=0,
        )
