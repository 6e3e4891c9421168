"""ONNX Runtime reproduces the eager model: raw maps within 1e-4, final detections as predict(fp32).

Backbones of three kinds: a 5-stage CNN (resnet18), a 4-stage CNN (convnext_tiny) and an NHWC
transformer (swin_tiny), with the FCOS head; resnet18 with the YOLOX head too. Batch sizes 1 and 3;
two input sizes for resnet18.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autotimm.export import OnnxDetector
from autotimm.arch.registry import ARCHITECTURES
from autotimm.export.parity import match_detections

from export_helpers import make_detector, make_images

MAX_DETS = 200
YOLOX = pytest.mark.skipif("yolox" not in ARCHITECTURES, reason="detection_arch='yolox' is not registered yet")
# (backbone, arch, input size, score threshold giving a few to ~90 detections per image at that size)
CASES = [
    ("resnet18", "fcos", 128, 0.2),
    ("resnet18", "fcos", 256, 0.2),
    ("convnext_tiny", "fcos", 128, 0.15),
    ("swin_tiny_patch4_window7_224", "fcos", 128, 0.15),
    pytest.param("resnet18", "yolox", 128, 0.3, marks=YOLOX),
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """(backbone, arch, size) -> (model, raw OnnxDetector, end-to-end OnnxDetector), built once."""
    cache: dict = {}
    models: dict = {}

    def get(backbone: str, arch: str, size: int, score_thresh: float):
        key = (backbone, arch, size)
        if key not in cache:
            if (backbone, arch) not in models:  # YOLOX's class prior is 0.01 * objectness: lift it for clear scores
                models[backbone, arch] = make_detector(backbone, arch, cls_bias=0.0 if arch == "yolox" else None)
            model = models[backbone, arch]
            folder = tmp_path_factory.mktemp(f"{backbone}_{arch}_{size}")
            kw = dict(image_size=size, score_thresh=score_thresh, max_detections=MAX_DETS)
            # the TorchScript-based exporter here (the fallback, and quick); test_export_deploy covers torch.export
            raw = OnnxDetector(model.to_onnx(str(folder / "raw.onnx"), exporter="torchscript", **kw))
            e2e = OnnxDetector(model.to_onnx(str(folder / "e2e.onnx"), include_postprocess=True, exporter="torchscript", **kw))
            cache[key] = (model, raw, e2e)
        return cache[key]

    return get


@pytest.mark.parametrize("backbone,arch,size,score_thresh", CASES)
def test_raw_outputs_match_eager(exports, backbone, arch, size, score_thresh):
    model, raw, _ = exports(backbone, arch, size, score_thresh)
    images = make_images()
    for batch in (images[:1], images):  # batch 1 and 3 through one graph (dynamic batch axis)
        x = model.preprocess(batch, size)
        got = raw.run(x)
        with torch.no_grad():
            cls, reg, third = model(x)  # third: centerness (FCOS) or objectness (YOLOX) logits
        expected = dict(zip(raw.output_names, [*cls, *reg, *third]))
        prefix = {"fcos": "ctr", "yolox": "obj"}[arch]
        assert raw.output_names == [f"{p}_l{i}" for p in ("cls", "reg", prefix) for i in range(5)]
        assert list(got) == raw.output_names
        for name, value in expected.items():
            assert got[name].shape == tuple(value.shape), name
            diff = float(np.abs(got[name] - value.numpy()).max())
            scale = max(1.0, float(value.abs().max()))  # box distances are pixels, up to ~stride x a few
            assert diff < 1e-4 * scale, f"{backbone} {size}px batch {len(batch)} {name}: max abs diff {diff} (scale {scale})"


@pytest.mark.parametrize("backbone,arch,size,score_thresh", CASES)
def test_end_to_end_detections_match_predict(exports, backbone, arch, size, score_thresh):
    model, raw, e2e = exports(backbone, arch, size, score_thresh)
    # The model's own letterboxed canvases: predict() then resizes nothing, so PIL's resize (the
    # runtime's) and torchvision's (the model's) cannot differ and the graphs are compared exactly.
    canvases, _, _ = model.letterbox_batch(make_images(), size)
    images = list(canvases)
    expected = model.predict(images, image_size=size, precision="fp32", score_thresh=score_thresh, max_detections=MAX_DETS)
    counts = [len(d["scores"]) for d in expected]
    assert all(0 < n < MAX_DETS for n in counts), f"test needs some but not capped detections, got {counts}"
    for detector in (e2e, raw):
        for batch_size in (1, 3):
            got = detector.predict(images, batch_size=batch_size)
            assert [len(d["scores"]) for d in got] == counts
            same, box_diff, score_diff = match_detections(expected, got, box_tol=1e-2, score_tol=1e-4)
            assert same, f"{detector!r} batch {batch_size}: box diff {box_diff}, score diff {score_diff}"
            assert all(d["labels"].dtype == np.int64 and d["boxes"].dtype == np.float32 for d in got)


@pytest.mark.parametrize("backbone,arch,size,score_thresh", CASES[:1])
def test_end_to_end_graph_outputs_are_padded_and_sorted(exports, backbone, arch, size, score_thresh):
    model, _, e2e = exports(backbone, arch, size, score_thresh)
    x = model.preprocess(make_images(), size)
    out = e2e.run(x)
    assert list(out) == ["boxes", "scores", "labels", "num_detections"]
    assert out["boxes"].shape == (3, MAX_DETS, 4) and out["scores"].shape == (3, MAX_DETS)
    assert out["labels"].shape == (3, MAX_DETS) and out["labels"].dtype == np.int64
    assert out["num_detections"].shape == (3,) and out["num_detections"].dtype == np.int64
    with torch.no_grad():
        eager = model.detect(model(x), (size, size), score_thresh, None, MAX_DETS)  # input frame
    for i, det in enumerate(eager):
        n = int(out["num_detections"][i])
        assert n == len(det["scores"])
        assert np.all(np.diff(out["scores"][i, :n]) <= 0)  # sorted by score
        assert np.all(out["scores"][i, :n] > score_thresh)
        assert np.all(out["labels"][i, n:] == -1) and np.all(out["scores"][i, n:] == 0) and np.all(out["boxes"][i, n:] == 0)
        ours = {"boxes": torch.from_numpy(out["boxes"][i, :n]), "scores": torch.from_numpy(out["scores"][i, :n]), "labels": torch.from_numpy(out["labels"][i, :n])}
        assert match_detections([det], [ours])[0]
        assert float(ours["boxes"].min()) >= 0 and float(ours["boxes"].max()) <= size  # clipped to the input
