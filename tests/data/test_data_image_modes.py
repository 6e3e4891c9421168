"""Greyscale, RGBA, palette, CMYK and EXIF-rotated files all become correct RGB tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from autotimm.data.dataset import DetectionDataset
from autotimm.data.image_io import load_image, read_image_size
from autotimm.data.records import DetectionRecord
from autotimm.data.validation import check_image


def pixel(t: torch.Tensor, x: int, y: int) -> list[int]:
    return t[:, y, x].tolist()


def test_greyscale(tmp_path):
    Image.new("L", (8, 6), 77).save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.shape == (3, 6, 8) and image.dtype == torch.uint8
    assert pixel(image, 3, 3) == [77, 77, 77]


def test_rgba_transparent_becomes_white(tmp_path):
    im = Image.new("RGBA", (8, 6), (255, 0, 0, 255))
    im.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    im.save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert pixel(image, 0, 0) == [255, 255, 255]
    assert pixel(image, 5, 5) == [255, 0, 0]


def test_palette(tmp_path):
    im = Image.new("P", (8, 6), 1)
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    im.save(tmp_path / "p.png")
    assert pixel(load_image(tmp_path / "p.png"), 2, 2) == [10, 20, 30]


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)  # pure red
    r, g, b = pixel(load_image(tmp_path / "c.jpg"), 8, 8)
    assert r > 240 and g < 15 and b < 15


def test_exif_rotation_applied_to_pixels_size_and_boxes(tmp_path):
    # stored 40 wide x 20 high, left half red; orientation 6 = rotate 90 deg clockwise to display
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "r.jpg")
    assert image.shape == (3, 40, 20)  # displayed 20 wide x 40 high
    assert pixel(image, 10, 5)[0] > 200  # the red half is now on top
    assert pixel(image, 10, 35)[0] < 40
    assert read_image_size(tmp_path / "r.jpg") == (20, 40)
    assert check_image(tmp_path / "r.jpg", (20, 40)) is None
    # a box on the red half, annotated in the displayed (original) frame
    record = DetectionRecord(tmp_path / "r.jpg", 20, 40, boxes=[[0, 0, 20, 20]], labels=[0])
    image, target = DetectionDataset([record], ["red"], image_size=80)[0]
    assert target["orig_size"].tolist() == [40, 20]
    assert torch.allclose(target["boxes"], torch.tensor([[0.0, 0.0, 40.0, 40.0]]))  # scale 2
    patch = image[:, 2:38, 2:38].float().mean(dim=(1, 2))
    assert patch[0] > 200 and patch[1] < 40


def test_raccoon_greyscale_files_load_as_rgb():
    from autotimm.data.examples import data_root

    grey = [p for p in sorted((data_root() / "raccoon/images").glob("*.jpg")) if Image.open(p).mode == "L"]
    assert len(grey) == 3
    image = load_image(grey[0])
    assert image.shape[0] == 3
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_unreadable_input_types():
    with pytest.raises(TypeError, match="Cannot read an image from int"):
        load_image(5)
    with pytest.raises(FileNotFoundError, match="Image file not found"):
        read_image_size("/nonexistent/x.jpg")
