"""model.evaluate(): the same mAP as validation, from a data module, an annotation file, or FiftyOne."""

from __future__ import annotations

import pytest
import torch

from autotimm import AutoTrainer, DetectionDataModule, FeatureBackboneConfig, ObjectDetector


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from autotimm.data.synthetic import ShapesConfig, write_split

    out = tmp_path_factory.mktemp("shapes")
    cfg = ShapesConfig(min_side=96, max_side=128, max_objects=4, empty_prob=0.15)
    return write_split(out, "val", 8, seed=3, cfg=cfg)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # Untrained, but with a low score threshold many random boxes overlap the shapes: recall is not 0.
    return ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
                          head_num_convs=1, compile_model=False, deterministic=False, score_thresh=0.0, nms_thresh=0.6)


def test_evaluate_equals_validation(model, shapes, tmp_path):
    data = DetectionDataModule(val=shapes, image_size=96, batch_size=3, num_workers=0, persistent_workers=False)
    trainer = AutoTrainer(default_root_dir=str(tmp_path), precision="32-true", logger=False, enable_checkpointing=False,
                          monitor=None, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    metrics = trainer.validate(model, datamodule=data, verbose=False)[0]
    report = model.evaluate(data, precision="fp32")
    assert report.summary["mar_100"] > 0.01  # not a vacuous comparison of zeros
    for ours, logged in (("map", "val/mAP"), ("map_50", "val/mAP_50"), ("map_75", "val/mAP_75"),
                         ("mar_100", "val/mAP_mar_100"), ("map_small", "val/mAP_small")):
        assert report.summary[ours] == pytest.approx(float(metrics[logged]), abs=1e-4), ours
    assert report.num_images == 8 and report.class_names == data.class_names
    # The same from the annotation file (images next to it), and the threshold can go to the model.
    again = model.evaluate(str(shapes), precision="fp32")
    assert again.summary == pytest.approx(report.summary, abs=1e-6)
    threshold = report.best_threshold()
    assert 0.0 <= threshold <= 1.0
    tuned = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, compile_model=False,
                           deterministic=False, fpn_channels=16, head_num_convs=1)
    tuned.score_thresh = report.best_threshold()
    assert tuned.score_thresh == threshold


def test_evaluate_bad_input(model, shapes, tmp_path):
    with pytest.raises(ValueError, match=r"iou_thresh=0.4\): expected one of COCO's IoU thresholds"):
        model.evaluate(shapes, iou_thresh=0.4)
    with pytest.raises(ValueError, match=r"score_thresh=1.5"):
        model.evaluate(shapes, score_thresh=1.5)
    with pytest.raises(TypeError, match="evaluate\\(\\) cannot read int"):
        model.evaluate(3)
    with pytest.raises(FileNotFoundError, match="no such annotation file"):
        model.evaluate(str(tmp_path / "missing.json"))
    data = DetectionDataModule(val=shapes, image_size=96, num_workers=0)
    with pytest.raises(ValueError, match="has no test split"):
        model.evaluate(data, split="test")
    named = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, compile_model=False,
                           deterministic=False, fpn_channels=16, head_num_convs=1)
    named.class_names = ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"model's classes \['a', 'b', 'c'\] differ"):
        named.evaluate(data)
