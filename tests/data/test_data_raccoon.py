"""The bundled raccoon dataset: its VOC and COCO versions must give identical targets."""

from __future__ import annotations

import numpy as np
import torch

from autotimm.data.dataset import DetectionDataset
from autotimm.data.examples import data_root
from autotimm.data.readers import read_coco, read_voc

RACCOON = data_root() / "raccoon"


def test_voc_and_coco_records_are_identical():
    voc = {r.image_path.name: r for r in read_voc(RACCOON / "voc", RACCOON / "images").records}
    coco = [r for split in ("train", "val") for r in read_coco(RACCOON / f"coco/{split}.json", RACCOON / "images").records]
    assert len(coco) == len(voc) == 200
    assert sum(r.num_boxes for r in coco) == 217
    for record in coco:
        other = voc[record.image_path.name]
        assert (record.width, record.height) == (other.width, other.height)
        np.testing.assert_array_equal(record.boxes, other.boxes)
        np.testing.assert_array_equal(record.labels, other.labels)


def test_voc_split_lists_match_the_coco_split():
    for split in ("train", "val"):
        voc = read_voc(RACCOON / f"splits/{split}.txt", RACCOON / "images", annotations_dir=RACCOON / "voc")
        coco = read_coco(RACCOON / f"coco/{split}.json", RACCOON / "images")
        assert [r.image_path.name for r in voc.records] == [r.image_path.name for r in coco.records]


def test_voc_and_coco_give_identical_dataset_targets():
    voc = read_voc(RACCOON / "splits/val.txt", RACCOON / "images", annotations_dir=RACCOON / "voc")
    coco = read_coco(RACCOON / "coco/val.json", RACCOON / "images")
    a = DetectionDataset(voc.records[:6], voc.class_names, image_size=128)
    b = DetectionDataset(coco.records[:6], coco.class_names, image_size=128)
    for i in range(6):
        (image_a, target_a), (image_b, target_b) = a[i], b[i]
        assert torch.equal(image_a, image_b)
        for key in ("boxes", "labels", "iscrowd", "orig_size", "letterbox"):
            assert torch.equal(target_a[key], target_b[key]), key
