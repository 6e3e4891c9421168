"""Inference post-processing: per-level top-k, score threshold, class-aware NMS, max detections."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from autotimm.ops.boxes import clip_boxes


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
        kk = min(k, level.shape[1])
        s, i = level.topk(kk, dim=1)
        out_scores.append(s)
        out_index.append(i + start * c)
        start += n
    return torch.cat(out_scores, 1), torch.cat(out_index, 1)


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
    """Final detections in the input frame.

    Args:
        scores: Tensor[B, P, C] per-class scores in [0, 1].
        boxes: Tensor[B, P, 4] decoded x1y1x2y2 boxes (input frame).
        level_sizes: points per level.
        image_size: (H, W) of the input tensor, for clipping.
        score_thresh / nms_thresh / max_detections: as in the detector.
        topk_per_level: candidates per level before NMS.

    Returns:
        one dict per image with ``boxes`` Tensor[N, 4] (input frame), ``scores`` Tensor[N],
        ``labels`` int64[N], sorted by score.
    """
    b, p, c = scores.shape
    top_scores, flat = select_topk_per_level(scores.float(), level_sizes, topk_per_level)  # [B, N]
    point = flat // c
    label = flat % c
    cand_boxes = boxes.float().gather(1, point[..., None].expand(-1, -1, 4))  # [B, N, 4]
    cand_boxes = clip_boxes(cand_boxes, image_size)
    image = torch.arange(b, device=scores.device)[:, None].expand_as(label)  # [B, N]
    wh = cand_boxes[..., 2:] - cand_boxes[..., :2]
    keep = (top_scores > score_thresh) & (wh > 0).all(-1)  # boxes clipped to nothing are dropped
    flat_boxes, flat_scores = cand_boxes[keep], top_scores[keep]
    flat_labels, flat_image = label[keep], image[keep]
    # One NMS call for the whole batch: boxes of different images or classes never suppress each other.
    kept = batched_nms(flat_boxes, flat_scores, flat_image * c + flat_labels, nms_thresh)  # sorted by score
    kept_image = flat_image[kept]
    results = []
    for i in range(b):  # split per image; `kept` is already in descending score order
        idx = kept[kept_image == i][:max_detections]
        results.append({"boxes": flat_boxes[idx], "scores": flat_scores[idx], "labels": flat_labels[idx]})
    return results
