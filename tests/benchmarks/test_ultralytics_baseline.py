"""The Ultralytics baseline's data and scoring side (training itself needs the benchmark-only
``ultralytics`` package and is run by hand; see the module docstring)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` lives at the repository root, beside `autotimm`
    sys.path.insert(0, str(REPO))

from benchmarks.ultralytics_baseline import main, val_set, write_yolo_dataset  # noqa: E402

from autotimm.data import example  # noqa: E402
from autotimm.metrics import coco_map  # noqa: E402


def test_yolo_layout_holds_the_bundled_split_box_for_box(tmp_path):
    data = write_yolo_dataset(tmp_path)
    spec = json.loads(data.read_text())
    assert spec == {"path": str(tmp_path), "train": "images/train", "val": "images/val", "names": {"0": "raccoon"}}
    raccoon = example("raccoon")
    for split, ann in (("train", raccoon.train), ("val", raccoon.val)):
        coco = json.loads(ann.read_text())
        images = sorted((tmp_path / "images" / split).iterdir())
        assert len(images) == len(coco["images"]) and all(p.resolve().is_file() for p in images)
        assert len(list((tmp_path / "labels" / split).iterdir())) == len(coco["images"])
    # raccoon-1.jpg (train): 650 x 417, one box [81, 88, 441, 320] (x, y, w, h)
    line = (tmp_path / "labels/train/raccoon-1.txt").read_text().splitlines()
    assert len(line) == 1
    cls, cx, cy, w, h = line[0].split()
    assert cls == "0"
    assert float(cx) == pytest.approx((81 + 441 / 2) / 650, abs=1e-6) and float(cy) == pytest.approx((88 + 320 / 2) / 417, abs=1e-6)
    assert float(w) == pytest.approx(441 / 650, abs=1e-6) and float(h) == pytest.approx(320 / 417, abs=1e-6)
    write_yolo_dataset(tmp_path)  # a second call over the same folder keeps working


def test_val_targets_are_the_json_boxes_and_score_themselves_perfectly():
    files, targets = val_set()
    coco = json.loads(example("raccoon").val.read_text())
    assert [f.name for f in files] == [im["file_name"] for im in coco["images"]]
    assert sum(len(t["boxes"]) for t in targets) == len(coco["annotations"]) == 44
    first = next(a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"])
    x, y, w, h = first["bbox"]
    assert targets[0]["boxes"][0].tolist() == pytest.approx([x, y, x + w, y + h])
    import torch

    preds = [{"boxes": t["boxes"], "scores": torch.ones(len(t["boxes"])), "labels": t["labels"]} for t in targets]
    stats = coco_map(preds, targets)
    assert stats["map"] == pytest.approx(1.0) and stats["map_50"] == pytest.approx(1.0)


def test_inference_refuses_an_unknown_pair(tmp_path):
    with pytest.raises(SystemExit, match=r"expected PRESET=MODEL"):
        main(["inference", "--pairs", "tiny=yolov8n", "--out", str(tmp_path / "i.json")])
