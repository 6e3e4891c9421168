"""Detections: dict-compatible, plot/save/to_json/to_coco/to_fiftyone on a hand-made case; the drawing helper."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from autotimm.drawing import class_colour, draw_detections
from autotimm.results import Detections


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((50, 80, 3), 60, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def det(image_file):
    return Detections(
        boxes=torch.tensor([[10.0, 5.0, 40.0, 45.0], [50.0, 10.0, 70.0, 30.0]]),
        scores=torch.tensor([0.9, 0.2]),
        labels=torch.tensor([1, 0]),
        names=["dog", "cat"],
        image_path=str(image_file),
        image_size=(50, 80),
        label_to_category_id={0: 7, 1: 9},
    )


def test_dict_contract(det):
    assert set(det) == {"boxes", "scores", "labels"} and len(det) == 3 and det.num_detections == 2
    assert torch.equal(det["labels"], torch.tensor([1, 0])) and det.get("scores") is det.scores
    assert det.get("masks") is None
    merged = {**det, "boxes": det["boxes"] + 1}
    assert set(merged) == {"boxes", "scores", "labels"} and merged["boxes"][0, 0] == 11
    kept = det.filter(0.5)
    assert kept.num_detections == 1 and kept.names == det.names and kept.image_path == det.image_path
    with pytest.raises(KeyError, match="'masks': Detections holds"):
        det["masks"]
    with pytest.raises(ValueError, match=r"boxes \[N, 4\], scores \[N\] and labels \[N\]"):
        Detections(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long))


def test_plot_draws_boxes_in_class_colours_above_the_threshold(det):
    pil = det.plot(line_width=1)
    assert isinstance(pil, Image.Image) and pil.size == (80, 50)
    pixels = np.asarray(pil)
    # Box 0 (label 1, "cat 0.90"): its bottom edge at y=45 is in class 1's colour; box 1's edge in class 0's.
    assert tuple(pixels[45, 25]) == class_colour(1)
    assert tuple(pixels[30, 60]) == class_colour(0)
    assert tuple(pixels[2, 2]) == (60, 60, 60)  # background untouched
    high = np.asarray(det.plot(score_thresh=0.5, line_width=1))
    assert tuple(high[45, 25]) == class_colour(1) and tuple(high[30, 60]) == (60, 60, 60)  # 0.2 < 0.5: not drawn
    fig = det.plot(kind="figure")
    assert fig._repr_png_().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="kind='svg'"):
        det.plot(kind="svg")


def test_plot_on_another_image_checks_its_size(det):
    with pytest.raises(ValueError, match=r"is \(10, 10\) \(h, w\) but these detections are for a \(50, 80\)"):
        det.plot(image=np.zeros((10, 10, 3), np.uint8))
    assert det.plot(image=np.zeros((50, 80, 3), np.uint8)).size == (80, 50)


def test_save_writes_the_drawing(det, tmp_path):
    out = det.save(tmp_path / "out" / "drawn.png", line_width=1)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(det.plot(line_width=1)))
    with pytest.raises(ValueError, match="image suffix"):
        det.save(tmp_path / "noext")


def test_to_json_and_to_coco(det):
    data = json.loads(det.to_json())
    assert data["image_size"] == [50, 80] and data["image_path"] == det.image_path
    assert data["detections"][0] == {"box": [10.0, 5.0, 40.0, 45.0], "score": pytest.approx(0.9), "label": 1, "name": "cat"}
    records = det.to_coco(image_id=3)
    assert records[0] == {"image_id": 3, "category_id": 9, "bbox": [10.0, 5.0, 30.0, 40.0], "score": pytest.approx(0.9)}
    assert records[1]["category_id"] == 7 and records[1]["bbox"] == [50.0, 10.0, 20.0, 20.0]
    assert det.to_coco(3, category_ids={0: 0, 1: 1})[0]["category_id"] == 1


def test_to_fiftyone(det):
    pytest.importorskip("fiftyone")
    fo_dets = det.to_fiftyone()
    assert [d.label for d in fo_dets.detections] == ["cat", "dog"]
    assert fo_dets.detections[0].bounding_box == pytest.approx([10 / 80, 5 / 50, 30 / 80, 40 / 50])
    assert fo_dets.detections[1].confidence == pytest.approx(0.2)


def test_in_memory_results_keep_their_image():
    pixels = torch.zeros(3, 20, 30, dtype=torch.uint8)
    det = Detections(torch.tensor([[2.0, 2.0, 12.0, 12.0]]), torch.tensor([0.5]), torch.tensor([0]), image=pixels, image_size=(20, 30))
    assert det.plot(line_width=1).size == (30, 20)
    bare = Detections(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"keep no image to draw on.*r.plot\(image=...\)"):
        bare.plot()


def test_draw_detections_hand_checked():
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    gt = {"boxes": torch.tensor([[2.0, 2.0, 10.0, 10.0]]), "labels": torch.tensor([2])}  # no scores: ground truth
    out = draw_detections(image, gt, show_labels=False, line_width=1)
    assert tuple(out[:, 2, 5].tolist()) == class_colour(2) and tuple(out[:, 10, 5].tolist()) == class_colour(2)
    assert out[:, 5, 5].sum() == 0 and image.sum() == 0  # inside untouched, input not modified
    # A box partly outside the image is clipped, not dropped.
    outside = {"boxes": torch.tensor([[-5.0, 4.0, 30.0, 8.0]]), "labels": torch.tensor([0])}
    assert tuple(draw_detections(image, outside, show_labels=False, line_width=1)[:, 4, 10].tolist()) == class_colour(0)
    with pytest.raises(ValueError, match="expected a uint8 Tensor\\[3, H, W\\]"):
        draw_detections(image.float(), gt)
    # Colours per detection (e.g. TP / FP) override the class colours, and follow the score filter.
    two = {"boxes": torch.tensor([[2.0, 2.0, 10.0, 10.0], [12.0, 12.0, 18.0, 18.0]]), "labels": torch.tensor([0, 0]),
           "scores": torch.tensor([0.9, 0.1])}
    out = draw_detections(image, two, show_labels=False, line_width=1, colors=[(1, 2, 3), (4, 5, 6)], score_thresh=0.5)
    assert tuple(out[:, 2, 5].tolist()) == (1, 2, 3) and out[:, 12, 15].sum() == 0
    with pytest.raises(ValueError, match="1 colors for 2 boxes"):
        draw_detections(image, two, colors=[(1, 2, 3)])
    with pytest.raises(ValueError, match="2 boxes, 1 labels"):
        draw_detections(image, {"boxes": torch.zeros(2, 4), "labels": torch.tensor([0])})
