"""The partner buffer: recent decoded images from which mosaic and mixup draw, one decode per sample."""

from __future__ import annotations

import pytest
import torch

import autotimm.data.dataset as dataset_module
from autotimm.data.buffer import RecentImages
from autotimm.data.dataset import MIN_HELD, DetectionDataset
from autotimm.data.records import DetectionRecord
from autotimm.data.transforms import AugmentConfig


def test_recent_images_keep_the_newest_up_to_capacity():
    recent = RecentImages(3)
    for index in (5, 6, 7):
        recent.add(index, f"image {index}")
    recent.add(5, "image 5 again")  # re-adding makes it the newest
    recent.add(8, "image 8")  # drops the oldest: 6
    assert len(recent) == 3 and 6 not in recent
    assert [recent.get(i) for i in (5, 7, 8)] == ["image 5 again", "image 7", "image 8"]
    assert recent.get(6) is None


def test_recent_images_draw_only_what_they_hold():
    recent = RecentImages(4)
    with pytest.raises(ValueError, match="needs at least one image held"):
        recent.draw(1)
    for index in (10, 20, 30, 40, 50):
        recent.add(index, index)
    torch.manual_seed(0)
    drawn = recent.draw(200)
    assert set(drawn) == {20, 30, 40, 50}  # 10 was dropped; every held one comes up in 200 draws
    torch.manual_seed(0)
    assert recent.draw(200) == drawn  # torch's generator decides: reproducible


@pytest.mark.parametrize("capacity", [0, -1, 2.5, True])
def test_recent_images_reject_a_bad_capacity(capacity):
    with pytest.raises(ValueError, match=f"capacity must be an int >= 1; got {capacity!r}"):
        RecentImages(capacity)


def photo_records(tmp_path, count):
    from PIL import Image

    g = torch.Generator().manual_seed(3)
    records = []
    for k in range(count):
        w, h = (int(v) for v in torch.randint(80, 200, (2,), generator=g))
        pixels = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g)
        path = tmp_path / f"{k}.jpg"
        Image.fromarray(pixels.numpy()).save(path)
        records.append(DetectionRecord(path, w, h, boxes=[[w * 0.2, h * 0.2, w * 0.6, h * 0.7]], labels=[0], image_id=k))
    return records


STRONG = AugmentConfig(scale_range=(0.5, 1.5), translate=True, hflip_prob=0.5, mosaic_prob=1.0, mixup_prob=1.0)


@pytest.mark.parametrize("partner_buffer", [64, 0])
def test_a_warm_buffer_decodes_one_image_per_sample(tmp_path, monkeypatch, partner_buffer):
    records = photo_records(tmp_path, 24)
    ds = DetectionDataset(records, ["x"], image_size=64, augment=STRONG, partner_buffer=partner_buffer)
    decoded = []
    real = dataset_module.read_pil_reduced
    monkeypatch.setattr(dataset_module, "read_pil_reduced", lambda path, hw: (decoded.append(path), real(path, hw))[1])
    torch.manual_seed(0)
    for i in range(MIN_HELD):  # warm-up: partners come from the whole dataset until 16 are held
        ds[i]
    decoded.clear()
    for i in range(MIN_HELD, 24):
        image, target = ds[i]
        assert image.shape == (3, 64, 64) and tuple(target["orig_size"].tolist()) == (128, 128)
    samples = 24 - MIN_HELD
    if partner_buffer:
        # at most its own image per sample (unless a warm-up partner brought it in already); the 3
        # mosaic partners and the mixup partner come from the buffer
        assert len(decoded) <= samples and set(decoded) <= {r.image_path for r in records[MIN_HELD:]}
    else:
        assert len(decoded) == 5 * samples  # 4 mosaic images and the mixup partner, all decoded


def test_partners_come_from_the_buffer_once_it_holds_enough(tmp_path):
    records = photo_records(tmp_path, 40)
    ds = DetectionDataset(records, ["x"], image_size=64, augment=STRONG, partner_buffer=20)
    torch.manual_seed(0)
    for i in range(MIN_HELD - 1):
        ds[30 + i % 10]  # only records 30..39 are ever decoded as the sample itself
    held = set(ds._buffer()._entries)
    assert len(ds._buffer()) == 20  # bounded, though more images were decoded as partners
    for _ in range(20):
        assert set(ds._partners(3)) <= held


def test_a_new_process_starts_with_an_empty_buffer(tmp_path):
    ds = DetectionDataset(photo_records(tmp_path, 4), ["x"], image_size=64, augment=STRONG)
    ds[0]
    assert len(ds._buffer()) >= 1  # the sample's own image, at least
    ds._recent_pid = -1  # as a forked or spawned DataLoader worker sees it
    assert len(ds._buffer()) == 0


def test_no_buffer_without_partners_or_with_the_ram_cache(tmp_path):
    records = photo_records(tmp_path, 3)
    assert DetectionDataset(records, ["x"], 64, augment="default")._buffer() is None  # no mosaic, no mixup
    assert DetectionDataset(records, ["x"], 64, augment=STRONG, cache="ram")._buffer() is None  # all held anyway
    assert DetectionDataset(records, ["x"], 64, augment=STRONG, partner_buffer=0)._buffer() is None


@pytest.mark.parametrize("bad", [-1, 1.5, "128", True])
def test_bad_partner_buffer(tmp_path, bad):
    with pytest.raises(ValueError, match=f"partner_buffer must be an int >= 0 \\(0: no buffer\\); got {bad!r}"):
        DetectionDataset(photo_records(tmp_path, 1), ["x"], 64, augment=STRONG, partner_buffer=bad)
