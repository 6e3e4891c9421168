"""The way back: a FiftyOne view -> COCO json -> DetectionDataModule with identical boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import autotimm.fiftyone as atfo
from autotimm.data import example
from autotimm.data.readers import read_coco
from autotimm.fiftyone.boxes import xyxy_to_relative_xywh
from fo_handmade import CATEGORY_IDS, CLASSES


def _assert_same_records(got, want):
    assert [r.image_path.resolve() for r in got] == [r.image_path.resolve() for r in want]
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.boxes, b.boxes)  # bit-identical float32
        assert np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.iscrowd, b.iscrowd)
        assert (a.width, a.height, a.image_id) == (b.width, b.height, b.image_id)


def test_shapes_view_round_trips_to_a_datamodule(fo, dataset_name, tmp_path):
    shapes = example("shapes")
    original = read_coco(shapes.val)
    dataset = atfo.to_dataset(shapes, "val", name=dataset_name, max_samples=6)
    dm = atfo.to_datamodule(dataset, tmp_path / "out", val=dataset, image_size=64, batch_size=2, num_workers=0)
    assert dm.class_names == list(shapes.class_names)
    assert dm.label_to_category_id == dict(enumerate(original.category_ids))
    _assert_same_records(dm.annotations("train").records, original.records[:6])
    _assert_same_records(dm.annotations("val").records, original.records[:6])
    dm.setup("fit")
    images, targets = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, 64, 64)
    assert len(targets[0]["boxes"]) == len(original.records[0].boxes)


def test_tagged_and_fixed_view_exports_the_fixes(fo, handmade_json, dataset_name, tmp_path):
    dataset = atfo.to_dataset(handmade_json, name=dataset_name)
    a, b, c = (dataset.match({"filepath": {"$regex": f"{n}$"}}).first() for n in ("a.png", "b.png", "c.png"))
    b.tags.append("bad_image")  # e.g. tagged in the App
    b.save()
    a.ground_truth.detections[1].label = "cat"  # a label fix: dog -> cat
    a.ground_truth.detections[0].bounding_box = xyxy_to_relative_xywh([[20, 20, 40, 30]], 100, 80)[0].tolist()
    a.save()

    view = dataset.match_tags("bad_image", bool=False)
    path = atfo.export_coco(view, tmp_path / "fixed.json")
    coco = json.loads(path.read_text())
    assert [c["id"] for c in coco["categories"]] == CATEGORY_IDS  # the source's ids survive
    assert [im["file_name"] for im in coco["images"]] == [a.filepath, c.filepath]  # images in place

    fixed = read_coco(path)
    assert fixed.class_names == CLASSES
    rec_a, rec_c = fixed.records
    assert rec_a.boxes.tolist() == [[20, 20, 40, 30], [60, 20, 90, 70], [0, 60, 40, 80]]
    assert rec_a.labels.tolist() == [0, 0, 0]  # the fixed label
    assert rec_a.iscrowd.tolist() == [False, False, True]
    assert rec_c.num_boxes == 0  # images without boxes stay


def test_existing_files_are_not_overwritten(fo, handmade_json, dataset_name, tmp_path):
    dataset = atfo.to_dataset(handmade_json, name=dataset_name)
    path = atfo.export_coco(dataset, tmp_path / "gt.json")
    before = path.read_text()
    with pytest.raises(ValueError, match=r"gt.json' already exists; pass overwrite=True"):
        atfo.export_coco(dataset.limit(1), path)
    assert path.read_text() == before
    atfo.export_coco(dataset.limit(1), path, overwrite=True)
    assert len(json.loads(path.read_text())["images"]) == 1
    (tmp_path / "train.json").write_text("{}")
    with pytest.raises(ValueError, match=r"train.json' already exists; pass overwrite=True"):
        atfo.to_datamodule(dataset, tmp_path, val=dataset)
    assert (tmp_path / "train.json").read_text() == "{}"
    assert not (tmp_path / "val.json").exists()  # checked before anything is written


def test_new_classes_must_be_declared(fo, handmade_json, dataset_name, tmp_path):
    dataset = atfo.to_dataset(handmade_json, name=dataset_name)
    sample = dataset.first()
    sample.ground_truth.detections[0].label = "wolf"
    sample.save()
    with pytest.raises(ValueError, match=r"label\(s\) \['wolf'\] are not among the classes.*Pass classes="):
        atfo.export_coco(dataset, tmp_path / "x.json")
    path = atfo.export_coco(dataset, tmp_path / "x.json", classes=[*CLASSES, "wolf"])
    categories = json.loads(path.read_text())["categories"]
    assert categories[-1] == {"id": 10, "name": "wolf"}  # after the source's largest id 9
    assert read_coco(path).class_names == [*CLASSES, "wolf"]
