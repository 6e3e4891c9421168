"""model.evaluate() on a FiftyOne view gives the same report as on the COCO file the view was read from."""

from __future__ import annotations

import pytest

import autotimm.fiftyone as atfo
from autotimm.data import example


def test_evaluate_view_equals_evaluate_file(fo, dataset_name):
    import torch

    from autotimm import FeatureBackboneConfig, ObjectDetector

    torch.manual_seed(0)
    tiny_model = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
                                head_num_convs=1, compile_model=False, deterministic=False, score_thresh=0.0)
    tiny_model.image_size = 64
    shapes = example("shapes")
    dataset = atfo.to_dataset(shapes, "val", name=dataset_name)
    from_view = tiny_model.evaluate(dataset.view(), precision="fp32")
    from_file = tiny_model.evaluate(str(shapes.val), precision="fp32")  # the annotation file, images beside it
    assert from_view.num_images == from_file.num_images == 50
    assert from_view.class_names == list(shapes.class_names)
    assert from_view.summary["mar_100"] > 0  # not a comparison of zeros
    assert from_view.summary == pytest.approx(from_file.summary, abs=1e-4)
    assert from_view.num_gt.tolist() == from_file.num_gt.tolist()
