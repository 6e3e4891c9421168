"""DetectionDataset samples, collate, augmentation outputs and the shared strong-augment flag."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from autotimm.data.dataset import DetectionDataset, collate_detection
from autotimm.data.examples import data_root
from autotimm.data.letterbox import PAD_VALUE, boxes_to_original
from autotimm.data.readers import read_coco
from autotimm.data.records import DetectionRecord
from autotimm.data.transforms import AugmentConfig


@pytest.fixture(scope="module")
def shapes():
    return read_coco(data_root() / "shapes/val.json")


@pytest.fixture
def two_records(tmp_path, image_writer):
    a = image_writer(tmp_path / "a.png", 80, 40, (200, 10, 10))
    b = image_writer(tmp_path / "b.png", 30, 60, (10, 10, 200))
    return [
        DetectionRecord(a, 80, 40, boxes=[[8, 4, 40, 20], [60, 30, 80, 40]], labels=[1, 0],
                        iscrowd=[False, True], difficult=[True, False], image_id=7),
        DetectionRecord(b, 30, 60, image_id=8),  # no boxes
    ]


def test_validation_sample_is_the_exact_letterbox(two_records):
    image, target = DetectionDataset(two_records, ["x", "y"], image_size=64, difficult="keep")[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
    # 80x40 -> scale 0.8 -> 64x32 content at the top-left, pad below
    assert image[:, :32, :].float().mean(dim=(1, 2)).round().tolist() == [200, 10, 10]
    assert (image[:, 32:, :] == PAD_VALUE).all()
    assert torch.allclose(target["boxes"], torch.tensor([[6.4, 3.2, 32.0, 16.0], [48.0, 24.0, 64.0, 32.0]]))
    assert target["boxes"].dtype == torch.float32
    assert target["labels"].tolist() == [1, 0] and target["labels"].dtype == torch.int64
    assert target["iscrowd"].tolist() == [0, 1] and target["iscrowd"].dtype == torch.int64
    assert target["image_id"].dtype == torch.int64 and target["image_id"].shape == () and int(target["image_id"]) == 7
    assert target["orig_size"].tolist() == [40, 80] and target["orig_size"].dtype == torch.int64
    assert torch.allclose(target["letterbox"], torch.tensor([0.8, 0.0, 0.0]))
    back = boxes_to_original(target["boxes"], target["letterbox"], target["orig_size"])
    assert torch.allclose(back, torch.tensor([[8.0, 4.0, 40.0, 20.0], [60.0, 30.0, 80.0, 40.0]]), atol=1e-4)


def test_image_without_boxes(two_records):
    _, target = DetectionDataset(two_records, ["x", "y"], image_size=64)[1]
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["iscrowd"].shape == (0,)


def test_difficult_policies(two_records):
    assert DetectionDataset(two_records, ["x", "y"], 64)[0][1]["iscrowd"].tolist() == [1, 1]  # "ignore"
    dropped = DetectionDataset(two_records, ["x", "y"], 64, difficult="drop")[0][1]
    assert dropped["labels"].tolist() == [0] and dropped["iscrowd"].tolist() == [1]
    with pytest.raises(ValueError, match="difficult must be 'ignore', 'keep' or 'drop'; got 'skip'"):
        DetectionDataset(two_records, ["x", "y"], 64, difficult="skip")


def test_collate_shapes_and_dtypes(two_records):
    ds = DetectionDataset(two_records, ["x", "y"], image_size=64)
    images, targets = collate_detection([ds[0], ds[1]])
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.uint8
    assert [t["boxes"].shape for t in targets] == [(2, 4), (0, 4)]
    assert torch.stack([t["letterbox"] for t in targets]).shape == (2, 3)
    assert torch.stack([t["orig_size"] for t in targets]).tolist() == [[40, 80], [60, 30]]


def test_user_transform_runs_in_the_original_frame(two_records):
    ds = DetectionDataset(two_records, ["x", "y"], image_size=64, augment=v2.RandomHorizontalFlip(p=1.0), difficult="keep")
    _, target = ds[0]
    # flipped in the 80 px wide original: [8, 4, 40, 20] -> [40, 4, 72, 20]; then x0.8
    assert torch.allclose(target["boxes"], torch.tensor([[32.0, 3.2, 57.6, 16.0], [0.0, 24.0, 16.0, 32.0]]))


@pytest.mark.parametrize("augment", ["default", "strong"])
def test_augmented_samples_are_valid(shapes, augment):
    torch.manual_seed(0)
    ds = DetectionDataset(shapes.records[:12], shapes.class_names, image_size=96, augment=augment)
    sizes = set()
    for i in range(len(ds)):
        image, target = ds[i]
        boxes = target["boxes"]
        assert image.shape == (3, 96, 96) and image.dtype == torch.uint8
        assert len(boxes) == len(target["labels"]) == len(target["iscrowd"])
        assert (boxes >= 0).all() and (boxes <= 96).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 2.0).all()  # min_size of the presets
        assert ((target["labels"] >= 0) & (target["labels"] < 3)).all()
        sizes.add(tuple(target["orig_size"].tolist()))
    assert ((192, 192) in sizes) == (augment == "strong")  # mosaic canvases are 2S x 2S


def test_strong_augment_flag_reaches_persistent_workers(shapes):
    ds = DetectionDataset(shapes.records[:4], shapes.class_names, image_size=64, augment=AugmentConfig(mosaic_prob=1.0))
    loader = DataLoader(ds, batch_size=4, num_workers=1, persistent_workers=True, collate_fn=collate_detection)
    sizes = lambda: {tuple(t["orig_size"].tolist()) for _, targets in loader for t in targets}  # noqa: E731
    assert sizes() == {(128, 128)}  # every sample is a mosaic
    ds.set_strong_augment(False)
    assert not ds.strong_augment
    plain = sizes()  # same worker process, next epoch
    assert (128, 128) not in plain and len(plain) >= 2
    ds.set_strong_augment(True)
    assert sizes() == {(128, 128)}


def test_bad_image_size(two_records):
    with pytest.raises(ValueError, match="image_size must be an int >= 32; got 16"):
        DetectionDataset(two_records, ["x"], image_size=16)


def test_user_transform_must_keep_uint8(two_records):
    to_float = v2.ToDtype(torch.float32, scale=True)
    with pytest.raises(ValueError, match=r"augment callable returned a torch.float32 image.*must return uint8"):
        DetectionDataset(two_records, ["x", "y"], 64, augment=to_float)[0]


def red_on_blue_records(tmp_path, count=6):
    from PIL import Image

    g = torch.Generator().manual_seed(1)
    records = []
    for k in range(count):
        w, h = (int(v) for v in torch.randint(60, 300, (2,), generator=g))
        x1, y1 = int(w * 0.2), int(h * 0.25)
        x2, y2 = int(w * 0.7), int(h * 0.8)
        image = Image.new("RGB", (w, h), (20, 20, 220))
        image.paste((220, 20, 20), (x1, y1, x2, y2))
        path = tmp_path / f"{k}.png"
        image.save(path)
        records.append(DetectionRecord(path, w, h, boxes=[[x1, y1, x2, y2]], labels=[0], image_id=k))
    return records


@pytest.mark.parametrize("cache", ["none", "ram"])
@pytest.mark.parametrize("mosaic", [0.0, 1.0])
def test_augmented_boxes_sit_on_their_pixels(tmp_path, mosaic, cache):
    config = AugmentConfig(scale_range=(0.5, 1.5), translate=True, hflip_prob=0.5, mosaic_prob=mosaic)
    ds = DetectionDataset(red_on_blue_records(tmp_path), ["r"], image_size=96, augment=config, cache=cache)
    torch.manual_seed(0)
    checked = 0
    for _ in range(4):
        for i in range(len(ds)):
            image, target = ds[i]
            for x1, y1, x2, y2 in target["boxes"].round().int().tolist():
                if x2 - x1 < 6 or y2 - y1 < 6:
                    continue
                inside = image[:, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].float().mean((1, 2))
                assert inside[0] > 180 and inside[2] < 60, (i, target["boxes"], inside)
                ring = [image[:, y, x] for x, y in ((x1 - 2, (y1 + y2) // 2), (x2 + 1, (y1 + y2) // 2),
                                                    ((x1 + x2) // 2, y1 - 2), ((x1 + x2) // 2, y2 + 1)) if 0 <= x < 96 and 0 <= y < 96]
                assert all(int(p[0]) < 150 for p in ring), (i, target["boxes"], ring)  # not red just outside
                checked += 1
    assert checked >= 10


def test_ram_cache_prints_its_size_and_holds_images_that_fit(tmp_path, capsys):
    records = red_on_blue_records(tmp_path, count=3)
    ds = DetectionDataset(records, ["r"], image_size=64, augment="default", cache="ram")
    expected = sum(3 * h * w for h, w in (
        (max(1, round(r.height * s)), max(1, round(r.width * s)))
        for r in records for s in [min(1.0, 64 / max(r.height, r.width))]
    )) / 2**20
    assert f"caching 3 images in RAM at up to 64 px: ~{expected:.0f} MiB" in capsys.readouterr().out
    for (image, orig_hw, extent), record in zip(ds._cached, records):
        assert max(image.shape[-2:]) <= 64 and image.dtype == torch.uint8
        assert orig_hw == (record.height, record.width)
        assert extent == pytest.approx((image.shape[-1], image.shape[-2]), abs=0.5)  # the whole image, scaled
    plain = DetectionDataset(records, ["r"], image_size=64, cache="ram")  # the exact letterbox never uses it
    assert plain._cached is None and "caching" not in capsys.readouterr().out


def test_bad_cache(two_records):
    with pytest.raises(ValueError, match="cache must be 'none' or 'ram'; got 'disk'"):
        DetectionDataset(two_records, ["x", "y"], 64, cache="disk")


@pytest.mark.parametrize("translate", [False, True])
def test_colour_jitter_on_the_source_equals_it_on_the_canvas(tmp_path, translate):
    from PIL import Image
    from torchvision import tv_tensors

    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(60, 200, (30, 40, 3), dtype=torch.uint8, generator=g)
    pixels = torch.nn.functional.avg_pool2d(pixels.permute(2, 0, 1).float()[None], 3, 1, 1)[0].round().to(torch.uint8)
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp_path / "s.png")  # smooth texture, 40 x 30 < 64 x 64
    record = DetectionRecord(tmp_path / "s.png", 40, 30, boxes=[[4, 4, 20, 20]], labels=[0], image_id=1)
    config = AugmentConfig(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.015, translate=translate,
                           scale_range=(0.9, 1.1) if translate else (1.0, 1.0))
    ds = DetectionDataset([record], ["r"], image_size=64, augment=config)
    for seed in range(4):
        torch.manual_seed(seed)
        colour = ds.jitter.make_params([])
        on_source, coloured = ds._single(0, colour=colour)
        assert coloured
        torch.manual_seed(seed)
        ds.jitter.make_params([])  # the same draws as above, in the same order
        plain, _ = ds._single(0)
        on_canvas = ds.jitter.transform(tv_tensors.Image(plain.image), colour).as_subclass(torch.Tensor)
        assert torch.equal(on_source.boxes, plain.boxes) and torch.equal(on_source.letterbox, plain.letterbox)
        diff = (on_source.image.int() - on_canvas.int()).abs()
        assert diff.float().mean() < 1.0 and diff.max() <= 2, (seed, diff.float().mean(), diff.max())


def two_tone_records(tmp_path, count=6):
    """Mid-tone photos (no colour step clips them): a box of one colour on a ground of another."""
    from PIL import Image

    g = torch.Generator().manual_seed(2)
    records = []
    for k in range(count):
        w, h = (int(v) for v in torch.randint(40, 200, (2,), generator=g))
        x1, y1, x2, y2 = int(w * 0.2), int(h * 0.25), int(w * 0.7), int(h * 0.8)
        image = Image.new("RGB", (w, h), (150, 100, 70))
        image.paste((70, 120, 160), (x1, y1, x2, y2))
        image.save(tmp_path / f"{k}.png")
        records.append(DetectionRecord(tmp_path / f"{k}.png", w, h, boxes=[[x1, y1, x2, y2]], labels=[0], image_id=k))
    return records


@pytest.mark.parametrize("strong", [0.0, 0.5])
def test_colour_on_device_equals_the_workers_colour(tmp_path, strong):
    from autotimm.data.color import JITTER_KEY
    from autotimm.data.dataset import apply_deferred_colour

    config = AugmentConfig(scale_range=(0.5, 1.5), translate=True, hflip_prob=0.5, brightness=0.3, contrast=0.3,
                           saturation=0.4, hue=0.015, mosaic_prob=strong, mixup_prob=strong)
    records = two_tone_records(tmp_path)
    worker = DetectionDataset(records, ["r"], image_size=64, augment=config, partner_buffer=4)
    device = DetectionDataset(records, ["r"], image_size=64, augment=config, partner_buffer=4, colour_on_device=True)
    samples = {}
    for name, ds in (("worker", worker), ("device", device)):
        torch.manual_seed(0)
        samples[name] = collate_detection([ds[i % len(ds)] for i in range(24)])
    (worker_images, worker_targets), (raw_images, device_targets) = samples["worker"], samples["device"]
    assert all(JITTER_KEY in t and t[JITTER_KEY].shape == (4,) for t in device_targets)
    assert not any(JITTER_KEY in t for t in worker_targets)
    images, targets = apply_deferred_colour(raw_images, device_targets)
    assert not any(JITTER_KEY in t for t in targets)
    for w, d in zip(worker_targets, targets):  # the same draws: the same geometry, boxes bit for bit
        assert w.keys() == d.keys() and all(torch.equal(w[k], d[k]) for k in w)
    assert not torch.equal(raw_images, images)  # the colour was left to the device, and applied there
    diff = (images.int() - worker_images.int()).abs()
    assert diff.max() <= 2 and diff.float().mean() < 0.5, (diff.max(), diff.float().mean())


def test_apply_deferred_colour_leaves_plain_batches_alone(two_records):
    from autotimm.data.dataset import apply_deferred_colour

    images, targets = collate_detection([DetectionDataset(two_records, ["x", "y"], 64)[i] for i in range(2)])
    same, kept = apply_deferred_colour(images, targets)
    assert same is images and kept == targets
    marked = [dict(targets[0], colour_jitter=torch.tensor([1.0, 1.0, 1.0, 0.0])), targets[1]]
    with pytest.raises(ValueError, match="1 of 2 targets carry 'colour_jitter'"):
        apply_deferred_colour(images, marked)
