"""Every tutorial notebook, executed top to bottom by a real Jupyter kernel with small parameters.

Each kernel starts in a temp folder (runs/ outputs land there), with HOME inside it and model hubs
offline. The parameters keep each notebook well under a minute and a half on a busy 2-core machine:
a tiny timm test backbone (asked for with pretrained=True, which falls back to random weights
offline, as the notebooks do on machines without a hub), 128-pixel images, a few batches.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import nbformat
import pytest

from autotimm.data.examples import example

from nb_runner import NOTEBOOKS, output_types, remove_fiftyone_database, run_notebook, stream_text, summary_values

TRAIN_FAST = dict(
    BACKBONE="test_resnet", IMAGE_SIZE=128, BATCH_SIZE=4, EPOCHS=1, FPN_CHANNELS=32, HEAD_NUM_CONVS=1,
    LIMIT_TRAIN_BATCHES=4, LIMIT_VAL_BATCHES=2, NUM_WORKERS=0,
)
FAST: dict[str, dict] = {
    # 01 keeps PRECISION="auto", the path users take (bf16 where the CPU has it).
    "01_quickstart.ipynb": dict(TRAIN_FAST, NUM_SHOW=2),
    "02_backbones_and_architectures.ipynb": dict(
        BACKBONE="resnet18", BUILD=["resnet18", "test_convnext"], IMAGE_SIZE=128, FPN_CHANNELS=32, HEAD_NUM_CONVS=1,
    ),
    "03_live_training_and_sliders.ipynb": dict(TRAIN_FAST, PRECISION="32-true", NUM_IMAGES=2),
    "04_error_analysis_fiftyone.ipynb": dict(
        TRAIN_FAST, PRECISION="32-true", CHECKPOINT=None, MAX_DETECTIONS=10, LAUNCH_APP=False,
    ),
    "05_export_onnx.ipynb": dict(TRAIN_FAST, PRECISION="32-true", CHECKPOINT=None, NUM_IMAGES=2, TIMING_REPEATS=1),
    "06_large_images_tiling.ipynb": dict(
        BACKBONE="test_resnet", TILE=128, SCENE_SIDE=400, OBJECTS=30, TRAIN_SCENES=1, VAL_SCENES=1, BATCH_SIZE=4,
        EPOCHS=1, FPN_CHANNELS=32, HEAD_NUM_CONVS=1, LIMIT_TRAIN_BATCHES=4, LIMIT_VAL_BATCHES=1, NUM_WORKERS=0,
        PRECISION="32-true",
    ),
}

pytestmark = pytest.mark.slow


def _run(name: str, tmp_path: Path) -> tuple[nbformat.NotebookNode, str]:
    nb = run_notebook(NOTEBOOKS / name, tmp_path, FAST[name])
    counts = output_types(nb)
    assert counts.get("error", 0) == 0, counts
    return nb, stream_text(nb)


def test_every_notebook_has_a_run_test() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(FAST)


def test_01_quickstart(tmp_path: Path) -> None:
    nb, text = _run("01_quickstart.ipynb", tmp_path)
    values = summary_values(text, "quickstart")
    assert 0.0 <= float(values["val/mAP"]) <= 1.0
    assert 0.0 <= float(values["val/mAP_50"]) <= 1.0
    assert float(values["val/mAP"]) <= float(values["val/mAP_50"])
    assert values["epochs"] == "1"
    assert values["images"] == "2"
    # The fallback to random weights is said once, not silently.
    assert stream_text(nb, "stderr").count("cannot be downloaded here") == 1
    # Samples, live plot, PR and F1 curves, confusion matrix, two predictions.
    assert output_types(nb).get("image/png", 0) >= 7
    assert "score_thresh set to the best-F1 threshold" in text
    run = tmp_path / "runs" / "quickstart"
    assert (run / "report" / "report.json").is_file()  # AutoTrainer's end-of-fit report
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    assert (run / "metrics.csv").is_file()


def test_02_backbones_and_architectures(tmp_path: Path) -> None:
    from autotimm import FeatureBackboneConfig, ObjectDetector

    nb, text = _run("02_backbones_and_architectures.ipynb", tmp_path)
    values = summary_values(text, "backbones")
    assert values["compared"] == "5"
    assert values["built"] == "2"
    assert values["arch"] == "yolox"
    # The builder's settings reach the model: same parameter count as building it directly.
    common = dict(num_classes=3, fpn_channels=32, head_num_convs=1, compile_model=False, deterministic=False)
    for arch in ("fcos", "yolox"):
        direct = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), detection_arch=arch, **common)
        assert int(values[f"{arch}_params"]) == sum(p.numel() for p in direct.parameters())
    assert "fpn_channels=32," in text  # generated code carries the injected value
    assert "FeatureBackboneConfig('resnet18', pretrained=True, fallback_to_scratch=True)" in text
    assert "fpn_channels=100: expected a multiple of 8" in text
    assert "swin_tiny_patch4_window7_224" in text and "(NHWC)" in text


def test_03_live_training_and_sliders(tmp_path: Path) -> None:
    nb, text = _run("03_live_training_and_sliders.ipynb", tmp_path)
    values = summary_values(text, "live")
    assert values["epochs"] == "1"
    assert values["steps"] == "4"
    assert 0.0 <= float(values["val/mAP"]) <= 1.0
    assert int(values["renders"]) >= 1
    low, mid, high = (int(values[f"dets@{s}"]) for s in ("0.05", "0.3", "0.5"))
    assert low >= mid >= high >= 0
    assert "Finished after 1 epoch(s), 4 steps." in text
    assert (tmp_path / "runs" / "live" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.skipif(importlib.util.find_spec("fiftyone") is None, reason="FiftyOne extra not installed")
def test_04_error_analysis_fiftyone(tmp_path: Path) -> None:
    # A name of its own: FiftyOne processes of one user share a single database service.
    name = "04_error_analysis_fiftyone.ipynb"
    try:
        nb = run_notebook(NOTEBOOKS / name, tmp_path, dict(FAST[name], DATASET_NAME=f"nbtest-{uuid.uuid4().hex[:12]}"))
    finally:
        remove_fiftyone_database(tmp_path)
    assert output_types(nb).get("error", 0) == 0
    text = stream_text(nb)
    values = summary_values(text, "fiftyone")
    coco = json.loads(example("shapes").val.read_text())
    num_gt = sum(1 for a in coco["annotations"] if not a.get("iscrowd", 0))  # 127
    assert int(values["samples"]) == len(coco["images"]) == 50
    assert int(values["gt"]) == num_gt
    tp, fp, fn = (int(values[k]) for k in ("tp", "fp", "fn"))
    assert tp + fn == num_gt
    assert tp + fp <= 10 * 50  # MAX_DETECTIONS per image reached add_predictions
    assert int(values["fp_patches"]) == fp
    assert int(values["fn_patches"]) == fn
    assert 0.0 <= float(values["mAP"]) <= 1.0
    assert values["app"] == "skipped"


def test_05_export_onnx(tmp_path: Path) -> None:
    nb, text = _run("05_export_onnx.ipynb", tmp_path)
    values = summary_values(text, "export")
    assert int(values["detections"]) > 0  # otherwise the comparison would be empty
    assert float(values["raw_match"]) >= 0.95
    assert float(values["e2e_match"]) >= 0.95
    for key in ("torch_fp32_ms", "onnx_raw_ms", "onnx_e2e_ms"):
        assert float(values[key]) > 0
    assert "differs from the nms_thresh=0.5 baked into the end-to-end graph" in text
    assert int(values["torch_free_dets"]) == int(values["in_process_dets"]) > 0  # torch unimportable, same detections
    assert "torch-free run at 128 px" in text and "torch-free run at 192 px" in text  # training size, and another (dynamic)
    export = tmp_path / "runs" / "export"
    assert (export / "detector_raw.onnx").stat().st_size > 0
    assert (export / "detector_e2e.onnx").stat().st_size > 0


def test_06_large_images_tiling(tmp_path: Path) -> None:
    nb, text = _run("06_large_images_tiling.ipynb", tmp_path)
    values = summary_values(text, "tiling")
    assert int(values["tiles"]) >= 9  # a 400-600 px scene in 128 px tiles, overlap 0.2: at least 3 x 3
    assert int(values["objects"]) > 0
    assert 0.0 <= float(values["map_plain"]) <= 1.0 and 0.0 <= float(values["map_tiled"]) <= 1.0
    assert output_types(nb).get("image/png", 0) >= 2  # the plain and the tiled plot
    assert "tiles         128 px" in text  # the data module's summary names the tiling
