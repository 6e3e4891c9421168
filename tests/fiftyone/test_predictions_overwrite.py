"""An existing prediction field is never replaced silently (issue 13, item 16)."""

from __future__ import annotations

import numpy as np
import pytest

import autotimm.fiftyone as atfo
from autotimm.data import example

CLASSES = ["circle", "square", "triangle"]


def _one_box(label: int) -> dict:
    return {"boxes": np.array([[2.0, 2.0, 30.0, 30.0]]), "labels": np.array([label]), "scores": np.array([0.9])}


def test_existing_field_is_refused_and_overwrite_drops_stale_evaluations(fo, dataset_name):
    dataset = atfo.to_dataset(example("shapes"), "val", name=dataset_name, max_samples=2)
    atfo.set_predictions(dataset, [_one_box(0), _one_box(1)], CLASSES)
    first = dataset.first()
    first["predictions"].detections[0].tags = ["checked"]  # a user's edit
    first.save()
    atfo.evaluate(dataset, eval_key="eval")
    assert "eval" in dataset.list_evaluations() and dataset.has_sample_field("eval_tp")

    with pytest.raises(ValueError, match=r"field='predictions' already exists .*2 samples.*'eval'.*overwrite=True.*'predictions_2'"):
        atfo.set_predictions(dataset, [_one_box(2), _one_box(2)], CLASSES)
    assert dataset.first()["predictions"].detections[0].tags == ["checked"]  # untouched

    atfo.set_predictions(dataset, [_one_box(2), _one_box(2)], CLASSES, field="predictions_2")  # a new field is fine
    atfo.set_predictions(dataset, [_one_box(2), _one_box(2)], CLASSES, overwrite=True)
    assert dataset.distinct("predictions.detections.label") == ["triangle"]
    assert "eval" not in dataset.list_evaluations() and not dataset.has_sample_field("eval_tp")


def test_add_predictions_refuses_before_predicting(fo, dataset_name):
    dataset = atfo.to_dataset(example("shapes"), "val", name=dataset_name, max_samples=2)
    atfo.set_predictions(dataset, [_one_box(0), _one_box(1)], CLASSES)

    class Counting:
        class_names = CLASSES
        calls = 0

        def predict(self, paths, batch_size=8):
            Counting.calls += 1
            return [_one_box(2) for _ in paths]

    with pytest.raises(ValueError, match=r"field='predictions' already exists"):
        atfo.add_predictions(dataset, Counting())
    assert Counting.calls == 0
    atfo.add_predictions(dataset, Counting(), overwrite=True)
    assert Counting.calls == 1 and dataset.distinct("predictions.detections.label") == ["triangle"]
