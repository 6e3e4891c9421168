"""Deploying an export: one dynamic end-to-end file per architecture, trained briefly on the bundled
raccoon photos (a trained head gives clearly separated scores; an untrained one ties them, which
makes any top-k order arbitrary), checked against eager predict at 320, 416 and 640 px; the
torch-free runtime in a process where torch cannot be imported; and a float16 graph.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import numpy as np
import onnx
import pytest
import torch

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.data import example
from autotimm.export import OnnxDetector, read_metadata
from autotimm.export.parity import match_detections, pair_detections

SIZES = (320, 416, 640)
TRAIN_SIZE = 256
SCORE_THRESH = 0.1  # baked into the files
MAX_DETS = 300  # far above what clears COMPARE_THRESH, whatever the 30 steps' float sums (thread counts) made of the head
COMPARE_THRESH = {"fcos": 0.3, "yolox": 0.3}  # compared above this: after 30 steps, fewer than MAX_DETS per image
ARCHS = ["fcos", "yolox"]
# YOLOX's objectness starts at a 0.01 prior: at FCOS's lr (1e-4) 30 steps leave its best score at ~5e-4,
# at 3e-3 they give 0.44-0.88 on these photos (measured), so both have clear detections to compare.
LR = {"fcos": 1e-4, "yolox": 3e-3}


def photos(n: int = 3) -> list[str]:
    """The first n validation photos (various aspect ratios), as paths."""
    folder = example("raccoon").images_dir
    return [str(folder / name) for name in ("raccoon-1.jpg", "raccoon-10.jpg", "raccoon-100.jpg")[:n]]


@pytest.fixture(scope="session")
def deployed(tmp_path_factory):
    """arch -> (model trained 30 steps at 256 px, its dynamic end-to-end file), built once per session."""
    cache: dict = {}

    def get(arch: str):
        if arch not in cache:
            torch.manual_seed(0)
            model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=1, detection_arch=arch,
                                   fpn_channels=32, head_num_convs=1, compile_model=False, deterministic=False, metrics=[],
                                   score_thresh=SCORE_THRESH, max_detections_per_image=MAX_DETS, lr=LR[arch])
            dm = example("raccoon").datamodule(image_size=TRAIN_SIZE, batch_size=4, num_workers=0, augment="none")
            trainer = L.Trainer(max_steps=30, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path_factory.mktemp("fit"))
            trainer.fit(model, datamodule=dm)
            model.eval()
            path = model.to_onnx(str(tmp_path_factory.mktemp(arch) / "e2e.onnx"), include_postprocess=True, dynamic=True, image_size=320)
            cache[arch] = (model, path)
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ARCHS)
def test_one_dynamic_file_matches_eager_at_every_size(deployed, arch):
    model, path = deployed(arch)
    meta = read_metadata(path)
    assert meta.dynamic and meta.exporter == "dynamo" and meta.precision == "fp32" and meta.size_multiple == 32
    assert meta.class_names == ["raccoon"] and meta.input_size == [320, 320]
    dims = [d.dim_param or d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    detector = OnnxDetector(path)
    for size in SIZES:  # 320 and 416 are not multiples of the largest stride, 128
        x = model.preprocess(photos(), size)  # the same letterboxed batch for both
        thresh = COMPARE_THRESH[arch]  # a stricter threshold than the baked one keeps the same boxes above it
        with torch.no_grad():
            eager = model.detect(model.raw_outputs(x), (size, size), score_thresh=thresh)
        ours = detector.detect(detector.run(x), score_thresh=thresh)
        counts = [len(d["scores"]) for d in eager]
        assert all(0 < n < MAX_DETS for n in counts), f"{arch} {size}: the test needs some, uncapped detections, got {counts}"
        assert [len(d["scores"]) for d in ours] == counts
        same, box_diff, score_diff = match_detections(eager, ours, box_tol=0.5, score_tol=1e-4)
        assert same, f"{arch} {size}px: max box diff {box_diff} px, max score diff {score_diff}"


@pytest.mark.parametrize("arch", ARCHS)
def test_runtime_predict_is_model_predict_up_to_the_resize(deployed, arch):
    """Original-frame results: PIL's antialiased resize vs torchvision's differ by <= 1 grey level on
    ~0.1 % of pixels, so scores move by ~1e-3 at most, and the same objects are found."""
    model, path = deployed(arch)
    detector = OnnxDetector(path)
    for size in (320, 640):
        thresh = COMPARE_THRESH[arch]
        expected = model.predict(photos(), image_size=size, precision="fp32", score_thresh=thresh)
        got = detector.predict(photos(), image_size=size, batch_size=2, score_thresh=thresh)
        assert [r.image_path for r in got] == photos() and all(r.names == ["raccoon"] for r in got)
        assert all(isinstance(r["boxes"], np.ndarray) and r["boxes"].dtype == np.float32 and r["labels"].dtype == np.int64 for r in got)
        pairs, n_eager, n_onnx, box_diff, score_diff = pair_detections(expected, got, box_tol=2.0, score_tol=1e-2)
        assert pairs >= 0.9 * max(n_eager, n_onnx) > 0, f"{arch} {size}: {pairs} of {n_eager}/{n_onnx} matched"
        assert box_diff <= 2.0 and score_diff <= 1e-2


BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockTorch())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("torch imported")
    from autotimm.export import OnnxDetector

    detector = OnnxDetector(sys.argv[1])
    out = {size: [r.to_dict() for r in detector.predict(sys.argv[2:], image_size=int(size))] for size in ("320", "416")}
    assert not any(m.split(".")[0] in ("torch", "torchvision") for m in sys.modules)
    print(json.dumps(out))
    """
)


def test_runtime_runs_where_torch_cannot_be_imported(deployed, tmp_path):
    _, path = deployed("fcos")
    script = tmp_path / "no_torch.py"
    script.write_text(BLOCK_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), path, *photos(2)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    remote = json.loads(done.stdout)
    detector = OnnxDetector(path)
    local = {size: [r.to_dict() for r in detector.predict(photos(2), image_size=int(size))] for size in ("320", "416")}
    assert remote == local  # bit for bit
    assert all(len(r["detections"]) > 0 for size in local for r in local[size])


def test_half_graph_exports_runs_and_matches_to_fp16_tolerance(deployed, tmp_path):
    model, _ = deployed("fcos")
    path = model.to_onnx(str(tmp_path / "half.onnx"), include_postprocess=True, image_size=320, half=True)
    meta = read_metadata(path)
    assert meta.precision == "fp16" and not meta.dynamic and meta.input_size == [320, 320]
    proto = onnx.load(path)
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    assert {t.data_type for t in proto.graph.initializer if t.name in conv_weights} == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in and out
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    x = model.preprocess(photos(), 320)
    with torch.no_grad():
        eager = model.detect(model.raw_outputs(x), (320, 320))  # the float32 model
    detector = OnnxDetector(path)  # runs in ONNX Runtime's CPU provider too
    ours = detector.detect(detector.run(x))
    pairs, n_eager, n_onnx, box_diff, score_diff = pair_detections(eager, ours, box_tol=1.0, score_tol=5e-3)
    assert pairs >= 0.9 * max(n_eager, n_onnx) > 0, f"{pairs} of {n_eager}/{n_onnx}; box {box_diff}, score {score_diff}"
    with pytest.raises(ValueError, match=r"precision='fp32'.*holds a fp16 graph"):
        detector.predict(photos(1), precision="fp32")
