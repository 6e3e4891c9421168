"""Inference post-processing, one traceable path for eager ``predict`` and the ONNX graph.

Steps: per-level top-k of (point, class) scores -> gather and clip boxes -> drop boxes clipped to
nothing -> class-aware NMS above the score threshold -> the best ``max_detections`` per image.
:func:`postprocess_padded` does them with fixed output shapes (a graph cannot return one list per
image) and traces with a dynamic batch; :func:`postprocess` is the same followed by :func:`unpad`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from autotimm.ops.boxes import clip_boxes
from autotimm.ops.points import level_sizes

Padded = tuple[Tensor, Tensor, Tensor, Tensor]  # boxes [B, K, 4], scores [B, K], labels [B, K], num_detections [B]


@dataclass(frozen=True)
class PostprocessConfig:
    """Post-processing settings.

    Attributes:
        score_thresh: scores <= this are dropped.
        nms_thresh: IoU above which a box of the same class and image is suppressed.
        max_detections: K, detections kept per image.
        topk_per_level: candidates per level before NMS.
    """

    score_thresh: float
    nms_thresh: float
    max_detections: int
    topk_per_level: int = 1000


def select_topk_per_level(scores: Tensor, level_sizes: Sequence[int], k: int) -> tuple[Tensor, Tensor]:
    """Top-k (point, class) candidates of each level, for every image at once.

    Args:
        scores: Tensor[B, P, C] class scores in [0, 1].
        level_sizes: number of points of each level (sums to P).
        k: candidates kept per level and image.

    Returns:
        top_scores Tensor[B, N] and flat indices Tensor[B, N] into ``P * C`` (N = sum of per-level k).
    """
    b, _, c = scores.shape
    out_scores, out_index = [], []
    start = 0
    for n in level_sizes:  # a handful of levels
        level = scores[:, start : start + n].reshape(b, -1)  # [B, n*C]
        kk = min(k, level.shape[1])  # an int eagerly; traced from the shape when H and W are dynamic
        s, i = level.topk(kk, dim=1)
        out_scores.append(s)
        out_index.append(i + start * c)
        start += n
    return torch.cat(out_scores, 1), torch.cat(out_index, 1)


def postprocess_padded(scores: Tensor, boxes: Tensor, level_sizes: Sequence[int], image_size: tuple[int, int], config: PostprocessConfig) -> Padded:
    """Final detections in the input frame, padded to ``config.max_detections`` rows per image.

    Args:
        scores: Tensor[B, P, C] per-class scores in [0, 1].
        boxes: Tensor[B, P, 4] decoded x1y1x2y2 boxes (input frame).
        level_sizes: points per level.
        image_size: (H, W) of the input tensor, for clipping.
        config: thresholds and counts.

    Returns:
        boxes [B, K, 4] (input frame), scores [B, K] sorted descending, labels int64 [B, K],
        num_detections int64 [B]; rows past ``num_detections`` hold 0, 0 and -1.
    """
    c, max_detections = scores.shape[2], config.max_detections
    top_scores, flat = select_topk_per_level(scores.float(), level_sizes, config.topk_per_level)  # [B, N]
    point, label = flat // c, flat % c  # [B, N]
    cand = clip_boxes(boxes.float().gather(1, point[..., None].expand(-1, -1, 4)), image_size)  # [B, N, 4]
    nonempty = (cand[..., 2:] > cand[..., :2]).all(-1)  # [B, N]; boxes clipped to nothing are dropped
    below = torch.full_like(top_scores, -1.0)  # under any threshold in [0, 1)
    nms_scores = torch.where(nonempty, top_scores, below)  # [B, N]
    # NonMaxSuppression scores per class: each candidate scores only in its own class column.
    classes = torch.arange(c, device=scores.device)[None, :, None]  # [1, C, 1]
    class_scores = torch.where(label[:, None, :] == classes, nms_scores[:, None, :], below[:, None, :])  # [B, C, N]
    selected = NonMaxSuppression.apply(cand, class_scores, max_detections, config.nms_thresh, config.score_thresh)  # [M, 3]
    kept = torch.zeros_like(nonempty).index_put((selected[:, 0], selected[:, 2]), torch.ones_like(selected[:, 0], dtype=torch.bool))
    final = torch.where(kept, top_scores, below)  # [B, N]
    # K non-detections appended, so top-K works also when N < K (tiny images); no branch on N, which
    # is a graph value when H and W are dynamic.
    final = torch.cat([final, below[:, :1].expand(-1, max_detections)], 1)  # [B, N + K]
    cand = torch.cat([cand, torch.zeros_like(cand[:, :1]).expand(-1, max_detections, -1)], 1)  # [B, N + K, 4]
    label = torch.cat([label, torch.zeros_like(label[:, :1]).expand(-1, max_detections)], 1)  # [B, N + K]
    values, order = final.topk(max_detections, dim=1)  # [B, K], descending
    valid = values >= 0  # [B, K]
    out_boxes = torch.where(valid[..., None], cand.gather(1, order[..., None].expand(-1, -1, 4)), torch.zeros_like(values)[..., None])
    out_scores = torch.where(valid, values, torch.zeros_like(values))
    out_labels = torch.where(valid, label.gather(1, order), torch.full_like(order, -1))
    return out_boxes, out_scores, out_labels, valid.sum(1)


def unpad(padded: Padded, score_thresh: float | None = None, max_detections: int | None = None) -> list[dict[str, Tensor]]:
    """Padded detections -> one dict per image (``boxes`` [N, 4], ``scores`` [N], ``labels`` int64 [N]).

    Args:
        padded: :func:`postprocess_padded`'s outputs (or an end-to-end graph's, as tensors).
        score_thresh: also drop rows scoring <= this (a stricter threshold than the padded one's).
        max_detections: also keep at most this many rows per image.
    """
    boxes, scores, labels, counts = padded
    results = []
    for b, s, l, n in zip(boxes, scores, labels, counts.tolist()):  # rows are sorted by score
        keep = slice(0, n) if score_thresh is None else (s[:n] > score_thresh).nonzero()[:, 0]
        b, s, l = b[keep], s[keep], l[keep].long()
        results.append({"boxes": b[:max_detections], "scores": s[:max_detections], "labels": l[:max_detections]})
    return results


def postprocess(
    scores: Tensor,
    boxes: Tensor,
    level_sizes: Sequence[int],
    image_size: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    max_detections: int,
    topk_per_level: int = 1000,
) -> list[dict[str, Tensor]]:
    """:func:`postprocess_padded` with the settings as arguments, returned as one dict per image
    (``boxes`` input frame, ``scores`` sorted descending, ``labels`` int64)."""
    config = PostprocessConfig(score_thresh, nms_thresh, max_detections, topk_per_level)
    return unpad(postprocess_padded(scores, boxes, level_sizes, image_size, config))


def detect_padded(arch: Any, outputs: tuple[list[Tensor], ...], points: Tensor, image_size: tuple[int, int], config: PostprocessConfig) -> Padded:
    """Raw per-level outputs -> padded detections: ``arch.decode`` then :func:`postprocess_padded`.

    Args:
        arch: a :class:`~autotimm.arch.base.DenseArchitecture` (only its ``decode`` is used).
        outputs: its raw ``(cls, reg, quality)`` lists; points: Tensor[P, 2] cell centres (input frame).
        image_size, config: as :func:`postprocess_padded`.
    """
    scores, boxes = arch.decode(outputs, points)  # [B, P, C], [B, P, 4]
    return postprocess_padded(scores, boxes, level_sizes(outputs[0]), image_size, config)


@torch.library.custom_op("autotimm::non_max_suppression", mutates_args=())
def non_max_suppression(boxes: Tensor, scores: Tensor, max_output_boxes_per_class: int, iou_threshold: float, score_threshold: float) -> Tensor:
    """ONNX ``NonMaxSuppression`` (opset 10+) computed eagerly with torchvision's ``batched_nms``.

    A custom op, so that ``torch.export`` keeps it as one node (its output size depends on the data)
    and the ONNX exporters map it to the ONNX operator (see :mod:`autotimm.export.onnx`).

    Args:
        boxes: Tensor[B, N, 4] x1y1x2y2.
        scores: Tensor[B, C, N].
        max_output_boxes_per_class: boxes kept per image and class.
        iou_threshold: boxes overlapping a kept box by IoU > this are suppressed.
        score_threshold: boxes scoring <= this are never selected.

    Returns:
        selected int64 Tensor[M, 3]: (batch index, class index, box index) rows.
    """
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


@non_max_suppression.register_fake
def _(boxes: Tensor, scores: Tensor, max_output_boxes_per_class: int, iou_threshold: float, score_threshold: float) -> Tensor:
    rows = torch.library.get_ctx().new_dynamic_size()  # M depends on the scores
    return boxes.new_empty((rows, 3), dtype=torch.int64)


class NonMaxSuppression(torch.autograd.Function):
    """:func:`non_max_suppression` with a ``symbolic`` for torch's TorchScript-based ONNX exporter
    (``torch.export`` traces through ``forward`` to the custom op). Same arguments and result."""

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_output_boxes_per_class: int, iou_threshold: float, score_threshold: float) -> Tensor:  # type: ignore[override]
        return torch.ops.autotimm.non_max_suppression(boxes, scores, max_output_boxes_per_class, iou_threshold, score_threshold)

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
