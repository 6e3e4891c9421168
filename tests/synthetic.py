"""Tiny in-memory detection data for tests: coloured rectangles on noise, one colour per class."""

from __future__ import annotations

import torch
from torch import Tensor

COLOURS = torch.tensor([[230, 40, 40], [40, 200, 60], [50, 80, 230]], dtype=torch.uint8)


def make_samples(n: int, size: int = 128, seed: int = 0, max_objects: int = 3) -> list[tuple[Tensor, dict[str, Tensor]]]:
    """n (uint8 image Tensor[3, S, S], target) pairs; targets in the input frame (= original frame)."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        image = (torch.rand(3, size, size, generator=g) * 60 + 100).to(torch.uint8)
        k = int(torch.randint(1, max_objects + 1, (1,), generator=g))
        boxes, labels = [], []
        for _ in range(k):
            w, h = (torch.randint(size // 6, size // 2, (2,), generator=g)).tolist()
            x1 = int(torch.randint(0, size - w, (1,), generator=g))
            y1 = int(torch.randint(0, size - h, (1,), generator=g))
            c = int(torch.randint(0, len(COLOURS), (1,), generator=g))
            image[:, y1 : y1 + h, x1 : x1 + w] = COLOURS[c][:, None, None]
            boxes.append([x1, y1, x1 + w, y1 + h])
            labels.append(c)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "image_id": torch.tensor(i),
            "orig_size": torch.tensor([size, size]),
            "letterbox": torch.tensor([1.0, 0.0, 0.0]),
        }
        samples.append((image, target))
    # Later boxes paint over earlier ones: keep only boxes that are still mostly visible.
    return samples


def collate(batch):
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)
