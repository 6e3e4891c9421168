"""add_predictions(tile=...): tiled predictions of a large image stored in original pixels."""

from __future__ import annotations

import numpy as np

import autotimm.fiftyone as atfo
from autotimm.data.synthetic import LargeSceneConfig, write_large_scenes
from autotimm.fiftyone.boxes import relative_xywh_to_xyxy


def test_tiled_predictions_of_a_large_image(fo, dataset_name, tiny_model, tmp_path):
    cfg = LargeSceneConfig(min_side=300, max_side=340, min_objects=10, max_objects=12, object_px=(8, 30))
    json_path = write_large_scenes(tmp_path, "val", 1, cfg=cfg)
    dataset = atfo.to_dataset(str(json_path), name=dataset_name, images_dir=str(tmp_path))
    atfo.add_predictions(dataset, tiny_model, tile=128, overlap=0.25, score_thresh=0.02, max_detections=50)
    expected = tiny_model.predict(dataset.values("filepath"), tile=128, overlap=0.25, score_thresh=0.02,
                                  max_detections=50)[0]
    sample = dataset.first()
    dets = sample["predictions"].detections
    boxes = relative_xywh_to_xyxy([d.bounding_box for d in dets], sample.metadata.width, sample.metadata.height)
    assert 0 < len(dets) == expected.num_detections <= 50
    assert np.allclose(boxes, expected["boxes"].numpy(), atol=1e-3)
    assert float(np.max(boxes[:, 2])) > 128  # boxes from tiles right of the first one, in original pixels
