"""ThresholdExplorer: one forward per image, slider moves re-run only detect(), boxes drawn in the original frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.widgets import ThresholdExplorer


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ObjectDetector(
        FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
        head_num_convs=1, compile_model=False, deterministic=False,
    )


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (90, 120, 3), dtype=np.uint8), rng.integers(0, 255, (50, 120, 3), dtype=np.uint8)]


def count_forwards(model) -> list[int]:
    calls: list[int] = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    return calls


def rectangles(explorer) -> int:
    """Boxes shown: the explorer's picture must be the shared drawing of exactly its detections."""
    from autotimm.drawing import draw_detections

    pixels = torch.from_numpy(explorer.cache[explorer.index.value].pixels).permute(2, 0, 1)
    expected = draw_detections(pixels, explorer.detections, explorer.class_names)
    assert torch.equal(explorer.drawn, expected)
    shown = explorer.figure.axes[0].images[0].get_array()
    assert np.array_equal(np.asarray(shown), expected.permute(1, 2, 0).numpy())
    return len(explorer.detections["boxes"])


def test_sliders_redraw_from_cache_without_new_forward_passes(model, images):
    calls = count_forwards(model)
    explorer = ThresholdExplorer(model, images, image_size=64, class_names=["red", "green", "blue"], figsize=(3, 3), dpi=40)
    assert len(calls) == 2  # one forward per image, at construction
    explorer.score.value, explorer.nms.value, explorer.max_detections.value = 0.0, 1.0, 7
    assert rectangles(explorer) == len(explorer.detections["boxes"]) == 7
    assert "7 detections" in explorer.summary.value
    explorer.max_detections.value = 3
    assert rectangles(explorer) == 3
    explorer.score.value = 0.99
    assert rectangles(explorer) == 0 and "0 detections" in explorer.summary.value
    explorer.index.value = 1
    explorer.score.value = 0.0
    assert rectangles(explorer) == 3
    assert len(calls) == 2  # no network run for any slider move
    assert bytes(explorer.image.value).startswith(b"\x89PNG")
    assert not torch.equal(explorer.drawn, torch.from_numpy(explorer.cache[1].pixels).permute(2, 0, 1))  # boxes drawn


def test_drawn_detections_equal_predict_in_the_original_frame(model, images):
    explorer = ThresholdExplorer(model, images, image_size=64, figsize=(3, 3), dpi=40)
    for index, (score, nms, top) in [(0, (0.0, 1.0, 20)), (0, (0.0, 0.3, 50)), (1, (0.05, 0.5, 100))]:
        explorer.set(score_thresh=score, nms_thresh=nms, max_detections=top, index=index)
        expected = model.predict(images[index], image_size=64, score_thresh=score, nms_thresh=nms,
                                 max_detections=top, precision="fp32")[0]
        got = explorer.detections
        assert len(got["boxes"]) == len(expected["boxes"]) == rectangles(explorer)
        assert torch.allclose(got["boxes"], expected["boxes"]) and torch.equal(got["labels"], expected["labels"])
        assert torch.allclose(got["scores"], expected["scores"])
        h, w = images[index].shape[:2]
        assert explorer.figure.axes[0].images[0].get_array().shape == (h, w, 3)
        assert (got["boxes"][:, [0, 2]] <= w).all() and (got["boxes"][:, [1, 3]] <= h).all()
    # The drawn box outline sits at the detection's original-frame corner, in its class colour.
    from autotimm.drawing import class_colour

    x1, y1, x2, y2 = explorer.detections["boxes"][-1].round().long().clamp(min=0).tolist()
    label = int(explorer.detections["labels"][-1])  # drawn last: on top
    x2, y2 = min(x2, images[1].shape[1] - 1), min(y2, images[1].shape[0] - 1)
    assert tuple(explorer.drawn[:, y2, x2].tolist()) == class_colour(label)  # bottom-right corner: no tag there


def test_sliders_start_at_the_model_settings(model, images):
    model.score_thresh, model.nms_thresh, model.max_detections_per_image = 0.2, 0.4, 50
    explorer = ThresholdExplorer(model, images[0], image_size=64, figsize=(3, 3), dpi=40)
    assert (explorer.score.value, explorer.nms.value, explorer.max_detections.value) == (0.2, 0.4, 50)
    assert explorer.index.layout.display == "none"  # one image: no image slider
    assert explorer.score.layout.display is None and explorer.nms.layout is not explorer.index.layout
    assert model.training  # the explorer restores the model's mode


def test_bad_input(model):
    with pytest.raises(ValueError, match=r"images=\[\]"):
        ThresholdExplorer(model, [])
    explorer = ThresholdExplorer(model, [np.zeros((40, 40, 3), np.uint8)], image_size=64, figsize=(3, 3), dpi=40)
    with pytest.raises(ValueError, match=r"nms_thresh=1.5 is outside \[0.05, 1.0\]"):
        explorer.set(nms_thresh=1.5)
    with pytest.raises(ValueError, match="expected an autotimm ObjectDetector, got Linear"):
        ThresholdExplorer(torch.nn.Linear(2, 2), [np.zeros((8, 8, 3), np.uint8)])


def test_report_curves_follow_the_score_slider(model, images):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))
    from metrics_testdata import coco_like_set

    from autotimm.evaluation import build_report

    report = build_report(*coco_like_set(seed=0, num_images=4, num_classes=3), ["red", "green", "blue"])
    explorer = ThresholdExplorer(model, images[0], image_size=64, figsize=(3, 3), dpi=40, report=report)
    first = bytes(explorer.curves.value)
    assert first.startswith(b"\x89PNG")
    explorer.score.value = 0.5
    assert bytes(explorer.curves.value) != first  # the marker moved
    assert explorer.curves in explorer.children[-1].children  # shown beside the image
    plain = ThresholdExplorer(model, images[0], image_size=64, figsize=(3, 3), dpi=40)
    assert bytes(plain.curves.value) == b""
