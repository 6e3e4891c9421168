"""add_predictions with a real (untrained, tiny) ObjectDetector and its ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

import autotimm.fiftyone as atfo
from autotimm.data import example
from autotimm.fiftyone.boxes import relative_xywh_to_xyxy


@pytest.fixture
def shapes(fo, dataset_name):
    return atfo.to_dataset(example("shapes"), "val", name=dataset_name, max_samples=3)


def _stored(dataset, field):
    """Per sample: (boxes x1y1x2y2 original pixels, confidences, labels) read back from FiftyOne."""
    out = []
    for sample in dataset:
        dets = sample[field].detections
        boxes = relative_xywh_to_xyxy([d.bounding_box for d in dets], sample.metadata.width, sample.metadata.height)
        out.append((boxes, np.array([d.confidence for d in dets]), [d.label for d in dets]))
    return out


def test_predictions_are_the_models_own_in_original_pixels(shapes, tiny_model):
    atfo.add_predictions(shapes, tiny_model, batch_size=2, image_size=64, score_thresh=0.02, max_detections=20)
    # same batches as add_predictions: bf16 numerics may depend on the batch an image is in
    expected = tiny_model.predict(shapes.values("filepath"), batch_size=2, image_size=64, score_thresh=0.02,
                                  max_detections=20)
    names = list(example("shapes").class_names)  # model.class_names is None: the dataset's list is used
    assert shapes.classes["predictions"] == names
    total = 0
    for (boxes, conf, labels), det in zip(_stored(shapes, "predictions"), expected, strict=True):
        assert len(boxes) == len(det["boxes"]) <= 20
        assert np.allclose(boxes, det["boxes"].numpy(), atol=1e-4)
        assert np.allclose(conf, det["scores"].float().numpy(), atol=1e-6)
        assert labels == [names[k] for k in det["labels"].tolist()]
        total += len(boxes)
    assert total > 0


def test_model_class_names_win_and_bad_names_fail_fast(shapes, tiny_model):
    tiny_model.class_names = ["a", "b", "c"]
    try:
        atfo.add_predictions(shapes, tiny_model, field="renamed", image_size=64, max_detections=5)
    finally:
        tiny_model.class_names = None
    assert set(shapes.distinct("renamed.detections.label")) <= {"a", "b", "c"}
    with pytest.raises(ValueError, match=r"class_names= has 2 names \['x', 'y'\] but the model predicts 3"):
        atfo.add_predictions(shapes, tiny_model, class_names=["x", "y"])
    with pytest.raises(ValueError, match="is the ground-truth field"):
        atfo.add_predictions(shapes, tiny_model, field="ground_truth")
    with pytest.raises(ValueError, match="has no predict\\(\\) method"):
        atfo.add_predictions(shapes, object())
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        atfo.add_predictions(shapes, tiny_model, batch_size=0)
    with pytest.raises(ValueError, match="field='image_id' is a .*IntField.*not a Detections field"):
        atfo.add_predictions(shapes, tiny_model, field="image_id")
    assert shapes.values("image_id") == [1, 2, 3]  # untouched


def test_no_class_names_anywhere_fails_before_predicting(fo, tiny_model, dataset_name):
    dataset = fo.Dataset(dataset_name)
    dataset.add_sample(fo.Sample(filepath=str(example("shapes").root / "val" / "000000.jpg")))
    with pytest.raises(ValueError, match=r"No class names.*model.class_names is empty.*Pass class_names="):
        atfo.add_predictions(dataset, tiny_model)
    assert not dataset.has_sample_field("predictions")


def test_set_predictions_needs_one_dict_per_sample(shapes):
    with pytest.raises(ValueError, match="Got 1 detection dicts for 3 samples"):
        atfo.set_predictions(shapes, [{"boxes": np.zeros((0, 4)), "labels": [], "scores": []}], ["a"])
    bad = [{"boxes": [[0, 0, 5, 5]], "labels": [3], "scores": [0.5]}] * 3
    with pytest.raises(ValueError, match=r"label 3 is outside the 3 class names"):
        atfo.set_predictions(shapes, bad, ["circle", "square", "triangle"])


def test_onnx_detector_works_like_the_model(shapes, tiny_model, tmp_path):
    from autotimm.export import OnnxDetector

    tiny_model.class_names = list(example("shapes").class_names)
    try:
        path = tiny_model.to_onnx(tmp_path / "tiny.onnx", image_size=128)
    finally:
        tiny_model.class_names = None
    onnx = OnnxDetector(path)
    atfo.add_predictions(shapes, onnx, field="onnx", batch_size=2, score_thresh=0.02, max_detections=10)
    expected = onnx.predict(shapes.values("filepath"), batch_size=2, score_thresh=0.02, max_detections=10)
    for (boxes, conf, labels), det in zip(_stored(shapes, "onnx"), expected, strict=True):
        assert isinstance(det["boxes"], np.ndarray)  # the torch-free runtime returns numpy
        assert np.allclose(boxes, det["boxes"], atol=1e-4)
        assert np.allclose(conf, det["scores"], atol=1e-6)
        assert labels == [onnx.class_names[k] for k in det["labels"].tolist()]
    with pytest.raises(ValueError, match=r"image_size=160: .* was exported for 128x128 inputs only"):
        atfo.add_predictions(shapes, onnx, image_size=160)  # a fixed-size file takes its own size only


def test_inverted_boxes_are_refused_with_the_image_named(shapes):
    bad = [{"boxes": [[10, 10, 5, 20]], "labels": [0], "scores": [0.5]}] * 3
    with pytest.raises(ValueError, match=r"000000.jpg: box 0 \[10, 10, 5, 20\] is not x1y1x2y2"):
        atfo.set_predictions(shapes, bad, ["circle", "square", "triangle"])


def test_a_predictor_that_drops_images_is_caught(shapes, tiny_model):
    class FirstOnly:
        """A real model behind a predict() that loses all but the first image of each call."""

        class_names = ["circle", "square", "triangle"]

        def predict(self, images, batch_size=8):
            return tiny_model.predict(images[:1], image_size=64)

    with pytest.raises(ValueError, match=r"FirstOnly.predict\(\) returned 1 results for 2 images"):
        atfo.add_predictions(shapes, FirstOnly(), batch_size=2)
