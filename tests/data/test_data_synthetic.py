"""Synthetic shapes generator: deterministic, consistent with the bundled copy, sane geometry."""

from __future__ import annotations

import json

import numpy as np

from autotimm.data.examples import data_root
from autotimm.data.readers import read_coco
from autotimm.data.synthetic import CLASS_NAMES, ShapesConfig, _overlap, generate_image, main


def test_same_seed_same_image_other_seed_other_image():
    a, boxes_a, labels_a = generate_image(0, "train", 3)
    b, boxes_b, labels_b = generate_image(0, "train", 3)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(boxes_a, boxes_b) and np.array_equal(labels_a, labels_b)
    c, _, _ = generate_image(1, "train", 3)
    assert a.size != c.size or not np.array_equal(np.asarray(a), np.asarray(c))


def test_bundled_copy_matches_the_generator():
    ann = json.loads((data_root() / "shapes/train.json").read_text())
    for index in range(3):
        image, boxes, labels = generate_image(0, "train", index)
        entry = ann["images"][index]
        assert (entry["width"], entry["height"]) == image.size
        mine = [a for a in ann["annotations"] if a["image_id"] == entry["id"]]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in mine)]
        assert np.allclose(xyxy, boxes.reshape(-1, 4))
        assert [a["category_id"] - 1 for a in mine] == labels.tolist()


def test_geometry_of_the_bundled_sets():
    cfg = ShapesConfig()
    for split, count in (("train", 200), ("val", 50)):
        records, names, ids = read_coco(data_root() / f"shapes/{split}.json")
        assert names == list(CLASS_NAMES) and ids == [1, 2, 3] and len(records) == count
        for r in records:
            assert cfg.min_side <= r.width <= cfg.max_side and cfg.min_side <= r.height <= cfg.max_side
            if r.num_boxes:
                sides = r.boxes[:, 2:] - r.boxes[:, :2]
                short = min(r.width, r.height)
                assert (sides >= 0.8 * cfg.size_range[0] * short - 1).all()  # not tiny
                assert (sides <= 1.2 * cfg.size_range[1] * short + 1).all()  # not filling the image
            for i in range(r.num_boxes - 1):
                assert _overlap(r.boxes[i].astype(float), r.boxes[i + 1 :].astype(float)).max() <= cfg.max_overlap
        counts = np.bincount(np.concatenate([r.labels for r in records]), minlength=3)
        assert (counts > 0.2 * counts.sum()).all()  # classes roughly balanced


def test_cli_writes_coco_and_images(tmp_path, capsys):
    main(["--out", str(tmp_path / "s"), "--train", "3", "--val", "0", "--seed", "5"])
    assert str(tmp_path / "s/train.json") in capsys.readouterr().out
    records, names, _ = read_coco(tmp_path / "s/train.json")
    assert len(records) == 3 and names == list(CLASS_NAMES)
    assert all(r.image_path.is_file() for r in records)
    assert not (tmp_path / "s/val.json").exists()
