"""OnnxDetector: the model's preprocessing, run-time settings, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from autotimm.export import OnnxDetector
from autotimm.export.parity import match_detections, pair_detections

SIZE = 128


@pytest.fixture(scope="module")
def files(resnet_detector, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime")
    kw = dict(image_size=SIZE, score_thresh=0.15, max_detections=50)
    raw = resnet_detector.to_onnx(str(folder / "raw.onnx"), exporter="torchscript", **kw)  # quick; deploy tests use torch.export
    e2e = resnet_detector.to_onnx(str(folder / "e2e.onnx"), include_postprocess=True, exporter="torchscript", **kw)
    return raw, e2e


def test_preprocess_is_the_models(resnet_detector, files, images):
    detector = OnnxDetector(files[0])
    x, params, sizes = detector.preprocess(images)
    batch, params_ref, sizes_ref = resnet_detector.letterbox_batch(images, SIZE)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (3, 3, SIZE, SIZE)
    assert np.array_equal(params, params_ref.numpy()) and np.array_equal(sizes, sizes_ref.numpy())
    assert sizes.tolist() == [[128, 128], [120, 128], [200, 180]]
    assert params[:, 0].tolist() == pytest.approx([1.0, 1.0, 0.64])  # 128 / 200
    reference = resnet_detector.normalize(batch).numpy()
    assert np.abs(x[:2] - reference[:2]).max() < 1e-6  # no resize: the same pixels, the same normalisation
    pixels = np.rint((x[2] * detector.pixel_std[0] + detector.pixel_mean[0]) * 255)  # the resized image
    ref_pixels = batch[2].numpy().astype(np.float64)
    assert np.abs(pixels - ref_pixels).max() <= 1 and (pixels != ref_pixels).mean() < 0.02  # PIL vs torchvision resize


def test_raw_file_takes_run_time_settings(resnet_detector, files, images):
    images = images[:2]  # letterboxed without a resize: the runtime's pixels are the model's
    detector = OnnxDetector(files[0])
    for kw in (dict(score_thresh=0.25), dict(nms_thresh=0.3, max_detections=5)):
        expected = resnet_detector.predict(images, image_size=SIZE, precision="fp32", **{"score_thresh": 0.15, "max_detections": 50, **kw})
        got = detector.predict(images, **kw)
        assert match_detections(expected, got)[0]
        assert all(len(d["scores"]) > 0 for d in got)
    assert max(len(d["scores"]) for d in detector.predict(images, max_detections=5)) == 5


def test_end_to_end_file_filters_but_cannot_change_nms(files, images):
    raw, e2e = OnnxDetector(files[0]), OnnxDetector(files[1])
    images = images[:2]
    full = e2e.predict(images)
    higher = e2e.predict(images, score_thresh=0.25)
    assert match_detections(raw.predict(images, score_thresh=0.25), higher)[0]
    for a, b in zip(full, higher):
        keep = a["scores"] > 0.25
        assert 0 < int(keep.sum()) < len(a["scores"])
        assert np.array_equal(a["scores"][keep], b["scores"]) and np.array_equal(a["boxes"][keep], b["boxes"])
    top3 = e2e.predict(images, max_detections=3)
    assert all(np.array_equal(a["scores"][:3], b["scores"]) for a, b in zip(full, top3))
    with pytest.raises(ValueError, match=r"nms_thresh=0.3 differs from the nms_thresh=0.5 baked into.*include_postprocess=True, nms_thresh=0.3"):
        e2e.predict(images, nms_thresh=0.3)
    with pytest.raises(ValueError, match=r"already dropped scores <= 0.15 and kept at most 50"):
        e2e.predict(images, score_thresh=0.1)
    with pytest.raises(ValueError, match=r"already dropped scores <= 0.15 and kept at most 50"):
        e2e.predict(images, max_detections=51)


def test_accepts_every_image_kind(files, images, tmp_path):
    from PIL import Image

    detector = OnnxDetector(files[1])
    array = images[1].permute(1, 2, 0).numpy()  # HxWxC uint8
    path = tmp_path / "image.png"
    Image.fromarray(array).save(path)
    results = detector.predict([array, Image.fromarray(array), str(path), images[1], images[1].float() / 255])
    reference = results[0]
    assert len(reference["scores"]) > 0
    for other in results[1:]:
        assert np.array_equal(other["labels"], reference["labels"]) and np.allclose(other["boxes"], reference["boxes"])
    single = detector.predict(images[1])  # one image, not a list
    assert len(single) == 1 and np.array_equal(single[0]["scores"], reference["scores"])


def test_folder_source_gives_detections_like_the_model(resnet_detector, files, images, tmp_path):
    from PIL import Image

    from autotimm.results import Detections

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    detector = OnnxDetector(files[0])
    results = detector.predict(folder, batch_size=2)
    assert [r.image_path for r in results] == [str(folder / f"{i}.png") for i in range(len(images))]
    assert all(isinstance(r, Detections) and r.names == detector.class_names for r in results)
    expected = resnet_detector.predict(folder, image_size=SIZE, precision="fp32", score_thresh=0.15, max_detections=50)
    assert match_detections(expected[:2], results[:2])[0]  # no resize at 128 px: exactly the model's
    pairs, n_model, n_onnx, _, _ = pair_detections(expected[2:], results[2:], box_tol=1.0, score_tol=1e-2)  # resized
    assert pairs >= 0.9 * max(n_model, n_onnx) > 0
    bgr = images[1].flip(0)  # channels reversed
    assert np.array_equal(detector.predict(bgr, channels="bgr")[0]["boxes"], detector.predict(images[1])[0]["boxes"])


def test_repr_and_attributes(files):
    detector = OnnxDetector(files[1])
    assert repr(detector) == f"OnnxDetector('{files[1]}', fcos, end-to-end, input 128x128, 3 classes)"
    assert detector.input_size == (128, 128) and detector.strides == (8, 16, 32, 64, 128)
    assert detector.output_names == ["boxes", "scores", "labels", "num_detections"]
    assert OnnxDetector(files[0]).output_names[:2] == ["cls_l0", "cls_l1"]


def test_bad_input(files, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ONNX file not found: '.*missing.onnx'.*to_onnx"):
        OnnxDetector(tmp_path / "missing.onnx")
    plain = str(tmp_path / "plain.onnx")
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.zeros(1, 3, 8, 8),), plain, dynamo=False)
    with pytest.raises(ValueError, match=r"plain.onnx' lacks autotimm metadata \['detection_arch'.*model.to_onnx\(\)"):
        OnnxDetector(plain)
    detector = OnnxDetector(files[0])
    with pytest.raises(ValueError, match=r"takes normalised images of shape \[B, 3, 128, 128\]; got \(1, 3, 64, 64\)"):
        detector.run(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"image_size=160: '.*raw.onnx' was exported for 128x128 inputs only.*dynamic=True"):
        detector.predict(np.zeros((32, 32, 3), np.uint8), image_size=160)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        detector.predict(torch.zeros(3, 32, 32, dtype=torch.uint8), batch_size=0)
    assert detector.predict([]) == []  # like model.predict([])
    with pytest.raises(ValueError, match=r"No images given"):
        detector.preprocess([])
