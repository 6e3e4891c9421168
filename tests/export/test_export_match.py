"""match_detections, the comparison behind the parity tests and the CLI check, on hand-made cases."""

from __future__ import annotations

import pytest
import torch

from autotimm.export.parity import ParityReport, match_detections


def dets(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


A = dets([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [0.9, 0.5, 0.5], [0, 1, 1])


def test_identical_and_tie_reordered_detections_match():
    assert match_detections([A], [A]) == (True, 0.0, 0.0)
    swapped = dets([[0, 0, 10, 10], [30, 30, 40, 40], [5, 5, 20, 20]], [0.9, 0.5, 0.5], [0, 1, 1])  # tied scores swapped
    assert match_detections([A], [swapped]) == (True, 0.0, 0.0)


def test_small_differences_within_tolerance_are_reported():
    near = dets([[0, 0, 10.005, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [0.90005, 0.5, 0.5], [0, 1, 1])
    same, box_diff, score_diff = match_detections([A], [near], box_tol=1e-2, score_tol=1e-4)
    assert same
    assert box_diff == pytest.approx(0.005, abs=1e-6) and score_diff == pytest.approx(5e-5, abs=1e-7)


@pytest.mark.parametrize(
    "other",
    [
        dets([[0, 0, 10.02, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [0.9, 0.5, 0.5], [0, 1, 1]),  # box off by 0.02 px
        dets([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [0.9, 0.5, 0.5], [2, 1, 1]),  # other label
        dets([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], [0.9002, 0.5, 0.5], [0, 1, 1]),  # score off by 2e-4
        dets([[0, 0, 10, 10], [5, 5, 20, 20]], [0.9, 0.5], [0, 1]),  # one missing
        dets([[0, 0, 10, 10], [5, 5, 20, 20], [5, 5, 20, 20]], [0.9, 0.5, 0.5], [0, 1, 1]),  # one matched twice
    ],
)
def test_differences_beyond_tolerance_fail(other):
    assert match_detections([A], [other], box_tol=1e-2, score_tol=1e-4)[0] is False


def test_image_count_and_empty_images():
    empty = dets([], [], [])
    assert match_detections([empty, A], [empty, A])[0] is True
    assert match_detections([A], [A, A])[0] is False
    assert match_detections([empty], [A])[0] is False


def test_report_text_and_verdict():
    report = ParityReport(raw_max_abs_diff=3e-6, detections_match=True, num_detections=(4, 4), max_box_diff=0.001, max_score_diff=2e-7)
    assert report.ok() and str(report) == (
        "raw outputs: max abs diff 3e-06\n"
        "detections: match (eager 4, onnx 4; max box diff 0.001 px, max score diff 2e-07)"
    )
    assert not ParityReport(0.5, True, (4, 4), 0.0, 0.0).ok()
    assert not ParityReport(None, False, (4, 3), 0.0, 0.0).ok()
    assert "raw outputs: max abs diff n/a" in str(ParityReport(None, True, (0, 0), 0.0, 0.0))
