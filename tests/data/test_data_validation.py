"""Up-front image check: truncated or undecodable files are skipped with ONE warning, or raise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from autotimm.data.datamodule import DetectionDataModule
from autotimm.data.records import DetectionRecord
from autotimm.data.validation import check_image, validate_records


def noisy_jpeg(path, width=96, height=64):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, quality=95)
    return path


@pytest.fixture
def bad_images(tmp_path):
    good = noisy_jpeg(tmp_path / "good.jpg")
    truncated = noisy_jpeg(tmp_path / "truncated.jpg")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all")
    return good, truncated, garbage


def test_check_image_reasons(bad_images):
    good, truncated, garbage = bad_images
    assert check_image(good, (96, 64)) is None
    assert "truncated" in check_image(truncated, (96, 64))
    assert check_image(garbage, (96, 64)).startswith("cannot decode")
    assert check_image(good, (64, 96)) == "is 96x64 px (after EXIF orientation) but the annotations say 64x96"
    # the header alone does not reveal truncation
    assert check_image(truncated, (96, 64), mode="header") is None


def test_unusable_images_skipped_with_one_warning(bad_images):
    records = [DetectionRecord(p, 96, 64, image_id=i) for i, p in enumerate(bad_images)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kept = validate_records(records, source="ann.json")
    assert [r.image_path.name for r in kept] == ["good.jpg"]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith("ann.json: 2 of 3 image(s) are unusable")
    assert "truncated.jpg" in message and "garbage.jpg" in message and "skipped" in message


def test_strict_raises(bad_images):
    records = [DetectionRecord(p, 96, 64) for p in bad_images]
    with pytest.raises(ValueError, match=r"2 of 3 image\(s\) are unusable: .*truncated\.jpg.*garbage\.jpg.*strict=False"):
        validate_records(records, strict=True)


def test_datamodule_skips_bad_images_at_setup(coco_factory, tmp_path):
    images = [{"id": i, "file_name": f"img/{n}.jpg", "width": 96, "height": 64} for i, n in enumerate(["good", "truncated"])]
    boxes = [{"id": i + 1, "image_id": i, "category_id": 1, "bbox": [1, 1, 20, 20]} for i in range(2)]  # train needs boxes
    ann = coco_factory(images=images, annotations=boxes, categories=[{"id": 1, "name": "x"}], write_images=False)
    (tmp_path / "img").mkdir()
    noisy_jpeg(tmp_path / "img/good.jpg")
    data = noisy_jpeg(tmp_path / "img/truncated.jpg").read_bytes()
    (tmp_path / "img/truncated.jpg").write_bytes(data[:400])
    dm = DetectionDataModule(train=ann, val=ann, image_size=64, batch_size=1, num_workers=0)
    with pytest.warns(UserWarning, match=r"1 of 2 image\(s\) are unusable: '.*truncated\.jpg'"):
        dm.setup("fit")
    assert len(dm.train_dataset) == 1 and len(dm.val_dataset) == 1
    strict = DetectionDataModule(train=ann, image_size=64, num_workers=0, strict=True)
    with pytest.raises(ValueError, match=r"truncated\.jpg"):
        strict.setup("fit")
