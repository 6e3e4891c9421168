"""Detection dicts for the metric tests: a tiny builder and a seeded COCO-like set."""

from __future__ import annotations

import torch
from torch import Tensor


def pred(boxes: list[list[float]], labels: list[int], scores: list[float], **extra) -> dict:
    """One image's predictions (original frame)."""
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "scores": torch.tensor(scores, dtype=torch.float32),
        **extra,
    }


def target(boxes: list[list[float]], labels: list[int], **extra) -> dict:
    """One image's ground truth (original frame)."""
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        **extra,
    }


def _random_boxes(g: torch.Generator, n: int, width: int, height: int) -> Tensor:
    """[n, 4] x1y1x2y2 boxes, sides log-uniform in 6..220 px (small, medium and large)."""
    sides = torch.exp(torch.empty(n, 2).uniform_(1.8, 5.4, generator=g))  # [n, 2] (w, h)
    sides = torch.minimum(sides, torch.tensor([width - 1.0, height - 1.0]))
    room = torch.tensor([width, height]) - sides  # [n, 2]
    x1y1 = torch.rand(n, 2, generator=g) * room  # [n, 2]
    return torch.cat([x1y1, x1y1 + sides], dim=1)  # [n, 4]


def coco_like_set(
    seed: int = 0, num_images: int = 12, num_classes: int = 3
) -> tuple[list[dict], list[dict]]:
    """Seeded predictions and targets that exercise every COCOeval branch.

    Image 0 has no ground truth (predictions are all false positives), image 1 has ground truth
    but no predictions, image 2 has neither, images 3 and 4 hold a crowd region with predictions
    inside it. Elsewhere predictions are jittered copies of the ground truth (some with the wrong
    class, some duplicated) plus random false positives. Targets carry ``iscrowd`` and ``area``
    (= box area) and, like the detector's, extra keys (``image_id``, ``orig_size``).
    """
    g = torch.Generator().manual_seed(seed)
    width, height = 320, 256
    preds, targets = [], []
    for i in range(num_images):
        n_gt = 0 if i in (0, 2) else int(torch.randint(1, 7, (1,), generator=g))
        gt_boxes = _random_boxes(g, n_gt, width, height)  # [M, 4]
        gt_labels = torch.randint(0, num_classes, (n_gt,), generator=g)
        crowd = torch.zeros(n_gt, dtype=torch.int64)
        if i in (3, 4):
            crowd[0] = 1
            gt_boxes[0] = torch.tensor([10.0, 10.0, 200.0, 180.0])
        # jittered copies: shift each side by up to 12% of the box size
        size = (gt_boxes[:, 2:] - gt_boxes[:, :2]).repeat(1, 2)  # [M, 4]
        jitter = (torch.rand(n_gt, 4, generator=g) - 0.5) * 0.24 * size
        copies = gt_boxes + jitter
        flip = torch.rand(n_gt, generator=g) < 0.2
        copy_labels = torch.where(flip, (gt_labels + 1) % num_classes, gt_labels)
        dup = torch.rand(n_gt, generator=g) < 0.3
        n_fp = int(torch.randint(0, 4, (1,), generator=g)) + (3 if i == 0 else 0)
        fp_boxes = _random_boxes(g, n_fp, width, height)
        fp_labels = torch.randint(0, num_classes, (n_fp,), generator=g)
        boxes = [copies, copies[dup] + 2.0, fp_boxes]
        labels = [copy_labels, copy_labels[dup], fp_labels]
        if i in (3, 4):  # small detections inside the crowd region, crowd's class
            inside = torch.tensor([[20.0, 20.0, 40.0, 44.0], [100.0, 60.0, 150.0, 120.0]])
            boxes.append(inside)
            labels.append(gt_labels[:1].repeat(2))
        p_boxes, p_labels = torch.cat(boxes), torch.cat(labels)
        if i == 1:
            p_boxes, p_labels = p_boxes[:0], p_labels[:0]
        scores = torch.rand(len(p_boxes), generator=g) * 0.9 + 0.05
        preds.append({"boxes": p_boxes, "labels": p_labels, "scores": scores, "image_id": i})
        area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        targets.append(
            {
                "boxes": gt_boxes,
                "labels": gt_labels,
                "iscrowd": crowd,
                "area": area,
                "image_id": i,
                "orig_size": torch.tensor([height, width]),
            }
        )
    return preds, targets
