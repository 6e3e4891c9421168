"""YOLO reader: data.yaml, normalised cx cy w h, background images, polygons, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotimm.data.datamodule import DetectionDataModule
from autotimm.data.readers import read_yolo
from autotimm.data.readers.yolo import label_path


@pytest.fixture
def yolo(tmp_path, image_writer) -> Path:
    root = tmp_path / "ds"
    image_writer(root / "images/train/a.jpg", 100, 50)
    image_writer(root / "images/train/b.png", 40, 40)
    image_writer(root / "images/val/c.jpg", 80, 60)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/val").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n")
    # b.png has no label file: a background image
    (root / "labels/val/c.txt").write_text("2 0.25 0.5 0.25 0.5 0.5 0.75\n")  # triangle polygon
    yaml_file = root / "data.yaml"
    yaml_file.write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n  2: bird\n")
    return yaml_file


def test_normalised_boxes_become_pixels(yolo):
    records, names, ids = read_yolo(yolo, "train")
    assert names == ["cat", "dog", "bird"] and ids == [1, 2, 3]
    a, b = records
    # a is 100x50: (0.5, 0.5, 0.2, 0.4) -> cx 50 cy 25 w 20 h 20 -> [40, 15, 60, 35]
    #              (0.1, 0.1, 0.2, 0.2) -> cx 10 cy 5 w 20 h 10 -> [0, 0, 20, 10]
    np.testing.assert_allclose(a.boxes, [[40, 15, 60, 35], [0, 0, 20, 10]], atol=1e-4)
    assert a.labels.tolist() == [1, 0]
    assert (a.width, a.height) == (100, 50)
    assert b.num_boxes == 0 and b.image_path.name == "b.png"


def test_polygon_line_becomes_its_bounding_box(yolo):
    record = read_yolo(yolo, "val").records[0]
    # c is 80x60; x in {0.25, 0.25, 0.5} -> [20, 40]; y in {0.5, 0.5, 0.75} -> [30, 45]
    np.testing.assert_allclose(record.boxes, [[20, 30, 40, 45]], atol=1e-4)
    assert record.labels.tolist() == [2]


def test_names_as_list_and_txt_split(yolo):
    root = yolo.parent
    (root / "train.txt").write_text("./images/train/a.jpg\n")
    yolo.write_text("train: train.txt\nnames: [cat, dog, bird]\nnc: 3\n")
    records, names, _ = read_yolo(yolo, "train")
    assert names == ["cat", "dog", "bird"]
    assert [r.image_path.name for r in records] == ["a.jpg"]


def test_label_index_beyond_names_names_file_and_line(yolo):
    (yolo.parent / "labels/train/a.txt").write_text("0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=r"a\.txt line 2: class index 3 is not in 0\.\.2 \(data\.yaml 'names' has 3 entries\)"):
        read_yolo(yolo, "train")


def test_malformed_line(yolo):
    (yolo.parent / "labels/train/a.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(ValueError, match=r"a\.txt line 1: expected 'class cx cy w h'"):
        read_yolo(yolo, "train")


def test_missing_and_empty_splits(yolo):
    with pytest.raises(ValueError, match=r"data\.yaml: no 'test' split; the file defines \['train', 'val'\]"):
        read_yolo(yolo, "test")
    (yolo.parent / "images/empty").mkdir()
    yolo.write_text("train: images/empty\nnames: [cat]\n")
    with pytest.raises(ValueError, match=r"data\.yaml \(split 'train'\): the split holds no images"):
        read_yolo(yolo, "train")


def test_bad_names_and_nc(yolo):
    yolo.write_text("train: images/train\nnames: {0: cat, 2: dog}\n")
    with pytest.raises(ValueError, match=r"'names' keys must be 0\.\.K-1 without gaps; got \[0, 2\]"):
        read_yolo(yolo)
    yolo.write_text("train: images/train\nnames: [cat, dog]\nnc: 3\n")
    with pytest.raises(ValueError, match="'nc' is 3 but 'names' has 2 entries"):
        read_yolo(yolo)


def test_label_path_swaps_the_last_images_folder():
    assert label_path(Path("/x/images/data/images/train/a.jpg")) == Path("/x/images/data/labels/train/a.txt")


def test_from_yolo_takes_every_defined_split(yolo):
    dm = DetectionDataModule.from_yolo(yolo, image_size=64, batch_size=2, num_workers=0)
    assert set(dm.sources) == {"train", "val"}
    assert dm.class_names == ["cat", "dog", "bird"]
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 and len(dm.val_dataset) == 1
