"""Reduced JPEG decodes (PIL draft): sizes, extents, EXIF, and boxes that stay exact in the dataset."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from autotimm.data.dataset import DetectionDataset
from autotimm.data.image_io import read_image_size, read_pil, read_pil_reduced
from autotimm.data.records import DetectionRecord
from autotimm.data.transforms import AugmentConfig

RED, BLUE = (220, 20, 20), (20, 20, 220)
RECT = (400, 300, 1200, 900)  # x1, y1, x2, y2 of a red rectangle on a blue 1601 x 1203 photo


def big_jpeg(path, orientation: int | None = None):
    image = Image.new("RGB", (1601, 1203), BLUE)
    image.paste(RED, RECT)
    exif = image.getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif)
    return path


def test_reduced_size_and_exact_extent(tmp_path):
    path = big_jpeg(tmp_path / "big.jpg")
    image, extent = read_pil_reduced(path, (300, 400))  # 1601 // 400 = 4 -> quarter size
    assert image.size == (401, 301)  # ceil(1601 / 4), ceil(1203 / 4)
    assert extent == (1601 / 4, 1203 / 4)
    image, extent = read_pil_reduced(path, (1203, 1601))  # nothing to gain: full decode
    assert image.size == (1601, 1203) and extent == (1601.0, 1203.0)
    image, _ = read_pil_reduced(path, (1000, 1000))  # never smaller than asked
    assert image.size == (1601, 1203)


def test_reduced_decode_follows_exif_orientation(tmp_path):
    path = big_jpeg(tmp_path / "rot.jpg", orientation=6)  # stored 1601 x 1203, shown 1203 x 1601
    assert read_image_size(path) == (1203, 1601)
    image, extent = read_pil_reduced(path, (400, 300))  # (H, W) in the shown frame
    assert image.size == (301, 401) and extent == (1203 / 4, 1601 / 4)
    full = read_pil(path).resize(image.size)
    assert full.getpixel((150, 200)) == pytest.approx(image.getpixel((150, 200)), abs=12)


def test_reduced_decode_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Image file not found: '.*nope.jpg'"):
        read_pil_reduced(tmp_path / "nope.jpg", (10, 10))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="Cannot decode image '.*bad.jpg'"):
        read_pil_reduced(tmp_path / "bad.jpg", (10, 10))


def test_dataset_with_reduced_decode_keeps_letterbox_and_boxes_exact(tmp_path):
    path = big_jpeg(tmp_path / "big.jpg")
    record = DetectionRecord(path, 1601, 1203, boxes=[list(RECT)], labels=[0], image_id=1)
    plain = DetectionDataset([record], ["r"], image_size=320)  # full decode, exact letterbox
    fast = DetectionDataset([record], ["r"], image_size=320, augment=AugmentConfig(min_size=1.0))  # reduced decode
    (image_a, target_a), (image_b, target_b) = plain[0], fast[0]
    assert torch.equal(target_a["letterbox"], target_b["letterbox"])
    assert torch.equal(target_a["boxes"], target_b["boxes"])
    assert torch.equal(target_a["orig_size"], target_b["orig_size"])
    # same pixels up to JPEG's reduced-scale decoding: the red rectangle sits under the box
    assert (image_a.int() - image_b.int()).abs().float().mean() < 2.0
    x1, y1, x2, y2 = target_b["boxes"][0].round().int().tolist()
    inside = image_b[:, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].float().mean((1, 2))
    assert inside[0] > 200 and inside[2] < 40
    ring = torch.cat([image_b[:, y1 - 3, x1:x2], image_b[:, y2 + 2, x1:x2], image_b[:, y1:y2, x1 - 3], image_b[:, y1:y2, x2 + 2]], 1)
    assert (ring[0].float().mean() < 40) and (ring[2].float().mean() > 200)  # blue just outside the box


def test_reduced_decode_names_a_decompression_bomb(tmp_path, monkeypatch):
    path = big_jpeg(tmp_path / "big.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1601 x 1203 is over twice this: PIL refuses it
    with pytest.raises(ValueError, match="larger than PIL's safety limit"):
        read_pil_reduced(path, (10, 10))


def test_reduced_decode_asks_for_the_size_once_it_knows_the_original_frame(tmp_path):
    from PIL import Image

    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 400 x 200, shown 200 x 400 (width x height)
    Image.new("RGB", (400, 200), (10, 120, 200)).save(path, exif=exif)
    seen = []
    image, extent = read_pil_reduced(path, lambda hw: (seen.append(hw), (hw[0] // 4, hw[1] // 4))[1])
    assert seen == [(400, 200)]  # (H, W) of the original frame, after the EXIF turn
    assert (image.height, image.width) == (100, 50) and extent == (50.0, 100.0)
