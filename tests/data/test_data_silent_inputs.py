"""Inputs that used to go wrong silently (issue 13, items 7-11, 14, 15)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from autotimm.data import DetectionDataModule
from autotimm.data.image_io import load_image, read_image_size, read_pil
from autotimm.data.readers import read_annotations, read_coco, read_yolo


# ---------------------------------------------------------------------------------------------- 7
def test_16_bit_png_is_scaled_not_white(tmp_path):
    values = np.array([[0, 257], [128 * 257, 65535]], np.uint16)  # 8-bit 0, 1, 128, 255
    path = tmp_path / "scan.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I")  # what PIL makes of a 16-bit greyscale PNG
    image = load_image(path)  # predict's path
    assert image.shape == (3, 2, 2) and str(image.dtype) == "torch.uint8"
    assert image[0].tolist() == [[0, 1], [128, 255]] and bool((image[0] == image[2]).all())
    assert np.asarray(read_pil(path))[..., 0].tolist() == [[0, 1], [128, 255]]  # the datasets' path


# ---------------------------------------------------------------------------------------------- 8
@pytest.mark.parametrize("bbox", [["10", "10", "20", "20"], [10, None, 20, 20], [10, 10, True, 20]])
def test_coco_non_numeric_bbox_names_annotation_and_file(coco_factory, bbox):
    path = coco_factory(annotations=[{"id": 42, "image_id": 10, "category_id": 7, "bbox": bbox}])
    with pytest.raises(ValueError, match=r"ann\.json: annotation id 42 \(image_id 10\) has bbox .* non-numeric"):
        read_coco(path)


# ---------------------------------------------------------------------------------------------- 9
def test_duplicate_ids_and_boxes_warn_once_with_the_ids(coco_factory):
    path = coco_factory(annotations=[
        {"id": 1, "image_id": 10, "category_id": 7, "bbox": [4, 5, 10, 20]},
        {"id": 1, "image_id": 11, "category_id": 3, "bbox": [0, 0, 8, 8]},
        {"id": 5, "image_id": 10, "category_id": 7, "bbox": [4, 5, 10, 20]},  # the same box again
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_coco(path)
    messages = [str(w.message) for w in caught]
    assert sum("annotation ids are repeated: [1]" in m for m in messages) == 1
    assert sum("appear twice" in m and "image_id 10: ids 1 and 5" in m for m in messages) == 1


# ---------------------------------------------------------------------------------------------- 10
def test_split_without_boxes_refused_for_train_warned_for_val(coco_factory):
    empty = coco_factory(annotations=[], name="empty.json")
    boxes = coco_factory(name="boxes.json")
    dm = DetectionDataModule(train=empty, val=boxes, image_size=64, num_workers=0, batch_size=2)
    with pytest.raises(ValueError, match=r"empty.json: the train split has 3 images but not one box"):
        dm.setup("fit")
    dm = DetectionDataModule(train=boxes, val=empty, image_size=64, num_workers=0, batch_size=2)
    with pytest.warns(UserWarning, match=r"empty.json: the val split has 3 images but not one box.*NaN"):
        dm.setup("fit")


def test_undefined_map_is_logged_as_nan_not_minus_one():
    import torch

    from autotimm import FeatureBackboneConfig, ObjectDetector

    model = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=2, fpn_channels=16,
                           head_num_convs=1, compile_model=False, deterministic=False)
    logged = {}
    model.log = lambda name, value, **kw: logged.__setitem__(name, value)  # what Lightning would receive
    no_boxes = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    model.metrics.update("val", [{**no_boxes, "scores": torch.zeros(0)}], [no_boxes])
    model.on_validation_epoch_end()
    assert "val/mAP" in logged and bool(torch.isnan(logged["val/mAP"]))
    assert not any(float(v) == -1 for v in logged.values() if v.numel() == 1)


# ---------------------------------------------------------------------------------------------- 11
def test_yolo_labels_in_pixels_are_named(tmp_path, image_writer):
    root = tmp_path / "ds"
    image_writer(root / "images/train/a.jpg", 100, 50)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("0 50 25 20 10\n")  # pixels, not fractions
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [cat]\n")
    with pytest.warns(UserWarning, match=r"labels of 1 file\(s\) look unnormalised .*a\.txt.*divided by the image"):
        ann = read_yolo(root / "data.yaml")
    assert ann.records[0].num_boxes == 0


# ---------------------------------------------------------------------------------------------- 14
def test_wrong_format_for_a_coco_json_suggests_coco(coco_factory):
    path = coco_factory()
    for wrong in ("voc", "yolo", "csv"):
        with pytest.raises(ValueError, match=rf"format='{wrong}' but '.*ann.json' looks like a COCO json.*format='coco'"):
            read_annotations(wrong, path)
    assert len(read_annotations("coco", path).records) == 3


# ---------------------------------------------------------------------------------------------- 15
def test_decompression_bomb_names_file_and_setting(tmp_path, image_writer, monkeypatch):
    path = image_writer(tmp_path / "huge.png", 64, 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64*64 = 4096 > 2 * 1000: PIL refuses it
    for read in (read_pil, read_image_size):
        with pytest.raises(ValueError, match=r"huge\.png' is larger than .*PIL\.Image\.MAX_IMAGE_PIXELS = 1000"):
            read(path)
