"""A batch's ground truth as padded tensors, so assignment broadcasts over ``[B, P, G]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class PaddedTargets:
    """A batch's ground truth padded to G boxes per image (input frame).

    Attributes:
        boxes: Tensor[B, G, 4] x1y1x2y2 (zeros in padding).
        labels: int64[B, G].
        valid: bool[B, G], real, non-crowd boxes.
        crowd: bool[B, G], crowd regions: ignored rather than learned.
    """

    boxes: Tensor
    labels: Tensor
    valid: Tensor
    crowd: Tensor

    @classmethod
    def from_targets(cls, targets: Sequence[dict[str, Tensor]], device: torch.device) -> "PaddedTargets":
        """Pad target dicts (``boxes`` [N, 4], ``labels`` [N], optional ``iscrowd`` [N]) to G = max N (at least 1)."""
        b = len(targets)
        g = max([len(t["boxes"]) for t in targets] + [1])
        boxes = torch.zeros(b, g, 4, device=device)
        labels = torch.zeros(b, g, dtype=torch.int64, device=device)
        present = torch.zeros(b, g, dtype=torch.bool, device=device)
        crowd = torch.zeros(b, g, dtype=torch.bool, device=device)
        for i, t in enumerate(targets):  # loop over images only, to pad
            n = len(t["boxes"])
            boxes[i, :n] = t["boxes"].to(device=device, dtype=torch.float32)
            labels[i, :n] = t["labels"].to(device)
            present[i, :n] = True
            if "iscrowd" in t:
                crowd[i, :n] = t["iscrowd"].to(device).bool()
        return cls(boxes, labels, present & ~crowd, present & crowd)
