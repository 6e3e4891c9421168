"""to_onnx: file layout, names, dynamic axes, default input, metadata, model state, and bad input."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from autotimm.export import ExportMetadata, OnnxDetector, export_to_onnx, read_metadata

LEVELS = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]  # 128 px at strides 8..128


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_raw_graph_names_shapes_and_single_file(resnet_detector, tmp_path):
    path = resnet_detector.to_onnx(str(tmp_path / "model.onnx"), example_input=torch.zeros(1, 3, 128, 128))
    assert path == str(tmp_path / "model.onnx")
    assert os.listdir(tmp_path) == ["model.onnx"]  # no side .data file
    proto = onnx.load(path)
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in proto.graph.initializer)  # weights inside
    assert [i.name for i in proto.graph.input] == ["images"]
    assert dims(proto.graph.input[0]) == ["batch", 3, 128, 128]
    names = [o.name for o in proto.graph.output]
    assert names == [f"{p}_l{i}" for p in ("cls", "reg", "ctr") for i in range(5)]
    shapes = {o.name: dims(o) for o in proto.graph.output}
    for i, (h, w) in enumerate(LEVELS):
        assert shapes[f"cls_l{i}"] == ["batch", 3, h, w]
        assert shapes[f"reg_l{i}"] == ["batch", 4, h, w]
        assert shapes[f"ctr_l{i}"] == ["batch", 1, h, w]


def test_temp_file_when_no_save_path(resnet_detector):
    path = resnet_detector.to_onnx(image_size=128)
    try:
        assert path.endswith(".onnx") and os.path.dirname(path) == tempfile.gettempdir()
        assert os.path.getsize(path) > 1_000_000  # resnet18 weights are in it
        assert OnnxDetector(path).input_size == (128, 128)
    finally:
        os.remove(path)


def test_default_example_input_is_the_size_predict_uses(resnet_detector, tmp_path):
    resnet_detector.image_size = 256  # as set from a data module at fit time
    try:
        path = resnet_detector.to_onnx(str(tmp_path / "m.onnx"))
    finally:
        resnet_detector.image_size = None
    proto = onnx.load(path)
    assert dims(proto.graph.input[0]) == ["batch", 3, 256, 256]
    assert read_metadata(path).input_size == [256, 256]


def test_metadata_carries_preprocessing_and_classes(resnet_detector, tmp_path):
    resnet_detector.class_names = ["red", "green", "blue"]
    resnet_detector.label_to_category_id = {0: 1, 1: 3, 2: 7}
    try:
        path = resnet_detector.to_onnx(str(tmp_path / "m.onnx"), image_size=128, include_postprocess=True, score_thresh=0.3, nms_thresh=0.6, max_detections=7)
    finally:
        resnet_detector.class_names = resnet_detector.label_to_category_id = None
    meta = read_metadata(path)
    config = resnet_detector.get_data_config()
    assert meta == ExportMetadata(
        detection_arch="fcos", end_to_end=True, num_classes=3, class_names=["red", "green", "blue"],
        strides=[8, 16, 32, 64, 128], input_size=[128, 128], mean=list(config["mean"]), std=list(config["std"]),
        pad_value=114, score_thresh=0.3, nms_thresh=0.6, max_detections=7, topk_per_level=1000,
        output_names=["boxes", "scores", "labels", "num_detections"], label_to_category_id={"0": 1, "1": 3, "2": 7},
        autotimm_version=meta.autotimm_version, dynamic=False, size_multiple=32, precision="fp32", exporter=meta.exporter,
    )
    assert meta.mean == pytest.approx([0.485, 0.456, 0.406]) and meta.std == pytest.approx([0.229, 0.224, 0.225])  # timm resnet18
    detector = OnnxDetector(path)
    assert detector.class_names == ["red", "green", "blue"] and detector.end_to_end
    out = detector.run(np.zeros((2, 3, 128, 128), np.float32))
    assert out["boxes"].shape == (2, 7, 4)  # K = max_detections


def test_custom_dynamic_axes_make_height_and_width_dynamic(resnet_detector, tmp_path):
    names = ["images"] + [f"{p}_l{i}" for p in ("cls", "reg", "ctr") for i in range(5)]
    axes = {n: {0: "batch", 2: "height", 3: "width"} for n in names}
    path = resnet_detector.to_onnx(str(tmp_path / "m.onnx"), example_input=torch.zeros(1, 3, 128, 128), dynamic_axes=axes)
    assert dims(onnx.load(path).graph.input[0]) == ["batch", 3, "height", "width"]
    x = torch.randn(2, 3, 128, 256)  # another size than the export's
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})
    with torch.no_grad():
        cls, reg, ctr = resnet_detector(x)
    for a, b in zip(got, [*cls, *reg, *ctr]):
        assert a.shape == tuple(b.shape)
        assert np.abs(a - b.numpy()).max() < 1e-4


def test_dynamic_batch_on_the_input_only_keeps_output_batch_dynamic(resnet_detector, tmp_path):
    path = resnet_detector.to_onnx(str(tmp_path / "m.onnx"), image_size=128, include_postprocess=True, dynamic_axes={"images": {0: "n"}})
    proto = onnx.load(path)
    assert dims(proto.graph.input[0]) == ["n", 3, 128, 128]
    out = {o.name: dims(o) for o in proto.graph.output}
    assert out["boxes"][1:] == [100, 4] and out["scores"][1:] == [100] and isinstance(out["boxes"][0], str)
    got = OnnxDetector(path).run(np.zeros((3, 3, 128, 128), np.float32))
    assert got["boxes"].shape == (3, 100, 4) and got["num_detections"].shape == (3,)


def test_export_keeps_the_model_mode(resnet_detector, tmp_path):
    resnet_detector.train()
    try:
        resnet_detector.to_onnx(str(tmp_path / "a.onnx"), image_size=128)
        assert resnet_detector.training
    finally:
        resnet_detector.eval()
    resnet_detector.to_onnx(str(tmp_path / "b.onnx"), image_size=128, include_postprocess=True)
    assert not resnet_detector.training


def test_export_to_onnx_is_what_to_onnx_calls(resnet_detector, tmp_path):
    a = export_to_onnx(resnet_detector, tmp_path / "a.onnx", torch.zeros(2, 3, 128, 128))
    b = resnet_detector.to_onnx(str(tmp_path / "b.onnx"), torch.zeros(2, 3, 128, 128))
    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    ra, rb = OnnxDetector(a).run(x), OnnxDetector(b).run(x)
    assert list(ra) == list(rb) and all(np.array_equal(ra[k], rb[k]) for k in ra)


# ---------------------------------------------------------------- bad input
def test_size_not_a_multiple_of_the_backbone_stride(resnet_detector, tmp_path):
    with pytest.raises(ValueError, match=r"230 x 230.*multiples of 32, the backbone's deepest stride.*valid sizes near it: 160, 192, 224, 256, 288.*use 256 x 256"):
        resnet_detector.to_onnx(str(tmp_path / "m.onnx"), example_input=torch.zeros(1, 3, 230, 230))
    with pytest.raises(ValueError, match=r"image_size=200.*multiples of 32.*image_size=224"):
        resnet_detector.to_onnx(str(tmp_path / "m.onnx"), image_size=200)
    with pytest.raises(ValueError, match=r"128 x 200.*use 128 x 224"):
        resnet_detector.to_onnx(str(tmp_path / "m.onnx"), example_input=torch.zeros(1, 3, 128, 200))
    assert not os.listdir(tmp_path)  # nothing written


@pytest.mark.parametrize("opset", [9, 10, 21])
def test_opset_outside_the_supported_range(resnet_detector, tmp_path, opset):
    with pytest.raises(ValueError, match=rf"opset_version={opset} is not supported.*11 to 20.*NonMaxSuppression.*opset_version=18"):
        resnet_detector.to_onnx(str(tmp_path / "m.onnx"), opset_version=opset, image_size=128, include_postprocess=True)


def test_lowest_supported_opset_exports_nms(resnet_detector, tmp_path):
    path = resnet_detector.to_onnx(str(tmp_path / "m.onnx"), opset_version=11, image_size=128, include_postprocess=True, exporter="torchscript")
    proto = onnx.load(path)
    assert proto.opset_import[0].version == 11
    assert "NonMaxSuppression" in {n.op_type for n in proto.graph.node}
    assert read_metadata(path).exporter == "torchscript"


def test_default_exporter_is_torch_export_and_falls_back_with_a_reason(resnet_detector, tmp_path, monkeypatch):
    path = resnet_detector.to_onnx(str(tmp_path / "d.onnx"), image_size=128, include_postprocess=True)
    assert read_metadata(path).exporter == "dynamo"
    assert "NonMaxSuppression" in {n.op_type for n in onnx.load(path).graph.node}  # the custom op, translated

    import autotimm.export.onnx as exporting

    def broken(*args, **kwargs):
        raise RuntimeError("simulated torch.export failure")

    monkeypatch.setattr(exporting, "_export_dynamo", broken)
    with pytest.warns(UserWarning, match=r"torch.export-based exporter failed \(RuntimeError: simulated torch.export failure\).*TorchScript-based exporter"):
        path = resnet_detector.to_onnx(str(tmp_path / "t.onnx"), image_size=128, include_postprocess=True)
    assert read_metadata(path).exporter == "torchscript"
    with pytest.raises(RuntimeError, match=r"simulated torch.export failure.*exporter='torchscript'"):
        resnet_detector.to_onnx(str(tmp_path / "x.onnx"), image_size=128, exporter="dynamo")


@pytest.mark.parametrize(
    "example,match",
    [
        (torch.zeros(3, 128, 128), r"Tensor\[B, 3, H, W\].*got \(3, 128, 128\)"),
        (torch.zeros(1, 1, 128, 128), r"got \(1, 1, 128, 128\)"),
        (torch.zeros(1, 3, 128, 128, dtype=torch.uint8), r"normalised float tensor, got dtype torch.uint8.*model.preprocess"),
        (np.zeros((1, 3, 128, 128), np.float32), r"got ndarray"),
    ],
)
def test_bad_example_input(resnet_detector, tmp_path, example, match):
    with pytest.raises(ValueError, match=match):
        resnet_detector.to_onnx(str(tmp_path / "m.onnx"), example_input=example)


def test_bad_dynamic_axes_and_postprocess_settings(resnet_detector, tmp_path):
    target = str(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"dynamic_axes names \['image'\] are not inputs or outputs.*'images'"):
        resnet_detector.to_onnx(target, image_size=128, dynamic_axes={"image": {0: "b"}})
    with pytest.raises(ValueError, match=r"\{'boxes': \[1\]\}.*only their axis 0 \(batch\).*dynamic=True"):
        resnet_detector.to_onnx(target, image_size=128, include_postprocess=True, dynamic_axes={"boxes": {0: "b", 1: "k"}})
    with pytest.raises(ValueError, match=r"exporter='onnx': expected one of \['auto', 'dynamo', 'torchscript'\]"):
        resnet_detector.to_onnx(target, image_size=128, exporter="onnx")
    with pytest.raises(ValueError, match=r"half='yes': expected True or False"):
        resnet_detector.to_onnx(target, image_size=128, half="yes")
    with pytest.raises(ValueError, match=r"score_thresh=1.5: expected a float in \[0, 1\)"):
        resnet_detector.to_onnx(target, image_size=128, include_postprocess=True, score_thresh=1.5)
    with pytest.raises(ValueError, match=r"nms_thresh=0.0: expected a float in \(0, 1\]"):
        resnet_detector.to_onnx(target, image_size=128, include_postprocess=True, nms_thresh=0.0)
    with pytest.raises(ValueError, match=r"max_detections=0: expected an int >= 1"):
        resnet_detector.to_onnx(target, image_size=128, include_postprocess=True, max_detections=0)
    with pytest.raises(ValueError, match=r"save_path '.*' is a folder"):
        resnet_detector.to_onnx(str(tmp_path), image_size=128)
