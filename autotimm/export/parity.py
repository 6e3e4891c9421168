"""Does the exported file compute what the PyTorch model computes? Raw maps and final detections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn


@dataclass
class ParityReport:
    """Eager model vs. ONNX Runtime on the same normalised batch (input frame).

    Attributes:
        raw_max_abs_diff: largest |eager - onnx| over all raw per-level outputs, or None when no raw
            graph was compared.
        detections_match: every image has the same detections (same labels, boxes within
            ``box_tol`` px, scores within ``score_tol``).
        num_detections: (eager, onnx) total detections over the batch.
        max_box_diff / max_score_diff: largest differences between matched detections.
        matched: detections paired within the tolerances (None: not counted).
        image_size: (H, W) of the compared batch, or None.
    """

    raw_max_abs_diff: float | None
    detections_match: bool
    num_detections: tuple[int, int]
    max_box_diff: float
    max_score_diff: float
    matched: int | None = None
    image_size: tuple[int, int] | None = None

    def ok(self, raw_tol: float = 1e-3) -> bool:
        """Detections match and raw outputs (when compared) agree within ``raw_tol``."""
        raw_ok = self.raw_max_abs_diff is None or self.raw_max_abs_diff <= raw_tol
        return raw_ok and self.detections_match

    def __str__(self) -> str:
        raw = "n/a" if self.raw_max_abs_diff is None else f"{self.raw_max_abs_diff:.3g}"
        verdict = "match" if self.detections_match else "DIFFER"
        matched = "" if self.matched is None else f", matched {self.matched}"
        where = "" if self.image_size is None else f" at {self.image_size[0]}x{self.image_size[1]}"
        return (
            f"raw outputs: max abs diff {raw}\n"
            f"detections{where}: {verdict} (eager {self.num_detections[0]}, onnx {self.num_detections[1]}{matched}; "
            f"max box diff {self.max_box_diff:.3g} px, max score diff {self.max_score_diff:.3g})"
        )


def pair_detections(
    a: Sequence[dict[str, Tensor]], b: Sequence[dict[str, Tensor]], box_tol: float = 1e-2, score_tol: float = 1e-4
) -> tuple[int, int, int, float, float]:
    """Pair two lists of per-image detections, independent of the order of tied scores.

    Each detection of ``a`` is paired with an unused one of ``b`` with the same label, a score within
    ``score_tol`` and every box coordinate within ``box_tol``, best score first. Values may be tensors
    or numpy arrays.

    Returns:
        (pairs found, detections of ``a``, detections of ``b``, max box diff, max score diff over the pairs).
    """
    pairs = total_a = total_b = 0
    box_diff = score_diff = 0.0
    for da, db in zip(a, b):
        ba, bb = torch.as_tensor(da["boxes"]).float(), torch.as_tensor(db["boxes"]).float()
        sa, sb = torch.as_tensor(da["scores"]).float(), torch.as_tensor(db["scores"]).float()
        la, lb = torch.as_tensor(da["labels"]), torch.as_tensor(db["labels"])
        total_a, total_b = total_a + len(sa), total_b + len(sb)
        boxes = (ba[:, None] - bb[None]).abs().amax(-1) if len(sa) and len(sb) else torch.zeros(len(sa), len(sb))  # [Na, Nb]
        scores = (sa[:, None] - sb[None]).abs()  # [Na, Nb]
        same = (la[:, None] == lb[None]) & (boxes <= box_tol) & (scores <= score_tol)
        used = torch.zeros(len(sb), dtype=torch.bool)
        for i in torch.argsort(sa, descending=True).tolist():  # a few hundred at most
            free = (same[i] & ~used).nonzero()
            if not len(free):
                continue
            j = int(free[scores[i, free[:, 0]].argmin(), 0])
            used[j] = True
            pairs += 1
            box_diff, score_diff = max(box_diff, float(boxes[i, j])), max(score_diff, float(scores[i, j]))
    return pairs, total_a, total_b, box_diff, score_diff


def match_detections(
    a: Sequence[dict[str, Tensor]], b: Sequence[dict[str, Tensor]], box_tol: float = 1e-2, score_tol: float = 1e-4
) -> tuple[bool, float, float]:
    """Whether two lists of per-image detections agree one to one (see :func:`pair_detections`).

    Returns:
        (all images pair up one to one, max box diff, max score diff over the pairs found).
    """
    if len(a) != len(b):
        return False, float("inf"), float("inf")
    ok = all(len(da["scores"]) == len(db["scores"]) for da, db in zip(a, b))
    pairs, total_a, total_b, box_diff, score_diff = pair_detections(a, b, box_tol, score_tol)
    return ok and pairs == total_a == total_b, box_diff, score_diff


@torch.no_grad()
def check_parity(
    model: nn.Module,
    onnx_path: str | Path,
    images: Tensor,
    raw_onnx_path: str | Path | None = None,
    box_tol: float | None = None,
    score_tol: float | None = None,
) -> ParityReport:
    """Compare ``model`` (eager, fp32) with an exported file on one normalised batch.

    Args:
        model: the :class:`~autotimm.detector.ObjectDetector` that was exported.
        onnx_path: the exported file (raw or end-to-end).
        images: normalised float Tensor[B, 3, H, W] at a size the file takes (input frame).
        raw_onnx_path: a raw export to compare maps with when ``onnx_path`` is end-to-end.
        box_tol / score_tol: tolerances for :func:`pair_detections`; default 1e-2 px and 1e-4 for a
            float32 file, 1 px and 5e-3 for a float16 one, which also may miss up to 5 % of the
            detections (scores at the threshold or at an NMS tie flip in float16).
    """
    from autotimm.export.runtime import OnnxDetector

    detector = OnnxDetector(onnx_path)
    half = detector.metadata.precision == "fp16"
    box_tol = (1.0 if half else 1e-2) if box_tol is None else box_tol
    score_tol = (5e-3 if half else 1e-4) if score_tol is None else score_tol
    size = (int(images.shape[-2]), int(images.shape[-1]))
    was_training = model.training
    model.eval()
    try:
        images = images.to(model.device)
        outputs = model.raw_outputs(images)
        meta = detector.metadata
        eager = model.detect(outputs, size, meta.score_thresh, meta.nms_thresh, meta.max_detections)
    finally:
        model.train(was_training)
    onnx_out = detector.run(images)
    ours = detector.detect(onnx_out, image_size=size)
    raw_detector = detector if not detector.end_to_end else (OnnxDetector(raw_onnx_path) if raw_onnx_path else None)
    raw_diff = None
    if raw_detector is not None:
        raw = onnx_out if raw_detector is detector else raw_detector.run(images)
        flat = [t for kind in outputs for t in kind]
        raw_diff = max(float((torch.from_numpy(raw[name]) - t.cpu()).abs().max()) for name, t in zip(raw_detector.output_names, flat))
    eager = [{k: v.cpu() for k, v in d.items()} for d in eager]
    pairs, n_eager, n_onnx, box_diff, score_diff = pair_detections(eager, ours, box_tol, score_tol)
    if half:
        match = max(n_eager, n_onnx) - pairs <= 0.05 * max(n_eager, n_onnx)
    else:
        match = pairs == n_eager == n_onnx and all(len(a["scores"]) == len(b["scores"]) for a, b in zip(eager, ours))
    return ParityReport(raw_diff, match, (n_eager, n_onnx), box_diff, score_diff, matched=pairs, image_size=size)
