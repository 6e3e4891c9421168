"""predict() on every kind of source: folder, glob, list, arrays/tensors (RGB and BGR), a video; clear errors."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from autotimm import FeatureBackboneConfig, ObjectDetector
from autotimm.results import Detections
from autotimm.sources import read_video, resolve


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = ObjectDetector(FeatureBackboneConfig("test_resnet", pretrained=False), num_classes=3, fpn_channels=16,
                       head_num_convs=1, compile_model=False, deterministic=False, score_thresh=0.0, nms_thresh=1.0,
                       max_detections_per_image=5)
    m.class_names = ["red", "green", "blue"]
    return m


def _image(seed: int, h: int = 40, w: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    # Written out of order, with a non-image and a sub-folder that must be skipped.
    for name, seed in (("b.png", 1), ("a.jpg", 0), ("c.PNG", 2)):
        Image.fromarray(_image(seed)).save(d / name, quality=95)
    (d / "notes.txt").write_text("not an image")
    (d / "sub").mkdir()
    Image.fromarray(_image(3)).save(d / "sub" / "d.png")
    return d


def test_folder_gives_its_images_sorted(model, folder):
    assert [p.name for p in resolve(folder).items] == ["a.jpg", "b.png", "c.PNG"]
    results = model.predict(str(folder), image_size=64, precision="fp32")
    assert [r.image_path for r in results] == [str(folder / n) for n in ("a.jpg", "b.png", "c.PNG")]
    assert all(isinstance(r, Detections) and r.image_size == (40, 60) and r.image is None for r in results)
    # Same answer as predicting the files one by one.
    single = model.predict(str(folder / "b.png"), image_size=64, precision="fp32")[0]
    assert torch.allclose(results[1]["boxes"], single["boxes"]) and torch.equal(results[1]["labels"], single["labels"])


def test_glob_and_recursive_glob(model, folder):
    assert [p.name for p in resolve(str(folder / "*.png")).items] == ["b.png"]  # suffix match is case-sensitive in glob
    assert [p.name for p in resolve(str(folder / "**" / "*.png")).items] == ["b.png", "d.png"]
    results = model.predict(str(folder / "**" / "*.png"), image_size=64)
    assert [r.image_path.rsplit("/", 1)[-1] for r in results] == ["b.png", "d.png"]


def test_list_mixes_folders_paths_and_memory(model, folder):
    items = resolve([folder, str(folder / "sub" / "d.png"), _image(0)]).items
    assert len(items) == 5 and isinstance(items[-1], np.ndarray)


def test_bgr_arrays_and_tensors_equal_rgb(model):
    rgb = _image(5)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    expected = model.predict(rgb, image_size=64, precision="fp32")[0]
    got_array = model.predict(bgr, image_size=64, precision="fp32", channels="bgr")[0]
    got_tensor = model.predict(torch.from_numpy(bgr).permute(2, 0, 1), image_size=64, precision="fp32", channels="bgr")[0]
    for got in (got_array, got_tensor):
        assert torch.equal(got["boxes"], expected["boxes"]) and torch.equal(got["labels"], expected["labels"])
        assert torch.equal(got.image, torch.from_numpy(rgb).permute(2, 0, 1))  # kept, in RGB
    # Read as RGB the BGR array is another picture: the default is RGB, not silently BGR.
    assert not torch.equal(model.predict(bgr, image_size=64, precision="fp32")[0].image, got_array.image)
    with pytest.raises(ValueError, match="channels='brg'"):
        model.predict(rgb, channels="brg")


def test_batched_arrays_and_tensors(model):
    batch = np.stack([_image(0), _image(1)])  # [2, H, W, 3]
    assert len(model.predict(batch, image_size=64)) == 2
    assert len(model.predict(torch.from_numpy(batch).permute(0, 3, 1, 2), image_size=64)) == 2


def _write_video(path, frames):
    cv2 = pytest.importorskip("cv2")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f[:, :, ::-1]))
    writer.release()


def test_video_streams_frames(model, tmp_path):
    # Flat colours survive MJPG compression closely: frame k is red, green, blue, ...
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    frames = [np.full((48, 64, 3), c, dtype=np.uint8) for c in colours]
    path = tmp_path / "clip.avi"
    _write_video(path, frames)
    decoded = list(read_video(path))
    assert len(decoded) == 4 and [f.frame_index for f in decoded] == [0, 1, 2, 3]
    for f, c in zip(decoded, colours):
        assert f.image.shape == (3, 48, 64)
        assert (f.image.float().mean(dim=(1, 2)) - torch.tensor(c, dtype=torch.float)).abs().max() < 8  # RGB order
    stream = model.predict(str(path), image_size=64, stream=True, batch_size=3)
    assert isinstance(stream, types.GeneratorType)
    results = list(stream)
    assert [r.frame_index for r in results] == [0, 1, 2, 3]
    assert all(r.image_path == str(path) and r.image_size == (48, 64) and r.image is not None for r in results)
    assert results[2].plot().size == (64, 48)
    # Without stream=True the frames are not kept (a long video would not fit in memory).
    listed = model.predict(str(path), image_size=64)
    assert len(listed) == 4 and listed[0].image is None
    with pytest.raises(ValueError, match="stream=True"):
        listed[0].plot()


def test_unknown_sources_say_what_is_accepted(model, tmp_path):
    with pytest.raises(TypeError, match=r"Cannot predict on dict .* pass an image path, a folder of images, a glob"):
        model.predict({"a": 1})
    with pytest.raises(FileNotFoundError, match="no such image file, folder, glob match or video"):
        model.predict(str(tmp_path / "missing.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        model.predict(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="matches no image files"):
        model.predict(str(tmp_path / "*.jpg"))
    assert model.predict([]) == []


def test_stream_of_a_folder_and_progress(model, folder, capsys):
    gen = model.predict(folder, image_size=64, stream=True, progress=True)
    first = next(gen)
    assert first.image_path.endswith("a.jpg")
    assert len(list(gen)) == 2
    assert "predict" in capsys.readouterr().err  # the tqdm bar
