"""The hand-made evaluation example shared by the FiftyOne tests (IoUs worked out in
test_evaluation.py's docstring)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CLASSES = ["cat", "dog", "fox"]
CATEGORY_IDS = [3, 7, 9]  # not 1..K on purpose: exports must keep the source's ids
SIZES = {"a.png": (100, 80), "b.png": (60, 50), "c.png": (40, 40)}  # (width, height)
# Ground truth, x1y1x2y2 original pixels: (box, label, iscrowd)
GT = {
    "a.png": [([10, 10, 50, 50], 0, 0), ([60, 20, 90, 70], 1, 0), ([0, 60, 40, 80], 0, 1)],
    "b.png": [([5, 5, 25, 45], 1, 0), ([30, 10, 55, 40], 2, 0)],
    "c.png": [],
}
# Predictions: (box, label, score). Hand-computed IoUs in test_evaluation.py.
PREDS = {
    "a.png": [
        ([12, 10, 50, 52], 0, 0.9), ([60, 20, 80, 70], 1, 0.8), ([70, 0, 95, 15], 0, 0.7), ([5, 62, 35, 78], 0, 0.6),
    ],
    "b.png": [([30, 10, 55, 40], 1, 0.75), ([31, 12, 54, 40], 2, 0.65)],
    "c.png": [([0, 0, 20, 20], 0, 0.95)],
}


def write_handmade(root: Path) -> Path:
    """Three small images and a COCO json of GT; returns the json path."""
    root.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id, (name, (w, h)) in enumerate(SIZES.items(), start=1):
        pixels = (np.arange(w * h * 3).reshape(h, w, 3) % 251).astype(np.uint8)
        Image.fromarray(pixels).save(root / name)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for (x1, y1, x2, y2), label, crowd in GT[name]:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": CATEGORY_IDS[label],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd,
            })
    categories = [{"id": cid, "name": name} for cid, name in zip(CATEGORY_IDS, CLASSES, strict=True)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def handmade_dicts(name: str) -> tuple[dict, dict]:
    """(prediction dict, target dict) of one hand-made image, original frame, torch tensors."""
    gt, pr = GT[name], PREDS[name]
    target = {
        "boxes": torch.tensor([b for b, _, _ in gt], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([l for _, l, _ in gt], dtype=torch.int64),
        "iscrowd": torch.tensor([c for _, _, c in gt], dtype=torch.int64),
    }
    pred = {
        "boxes": torch.tensor([b for b, _, _ in pr], dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([l for _, l, _ in pr], dtype=torch.int64),
        "scores": torch.tensor([s for _, _, s in pr], dtype=torch.float32),
    }
    return pred, target
