"""Tiled predict: the tiles' composition equals a hand-assembled one, boxes land in original pixels,
tile='auto' decides per image and says so once, Results/evaluate/validation work, memory stays
bounded on a 20,000 x 20,000 image."""

import subprocess
import sys
import textwrap

import lightning as L
import pytest
import torch
from PIL import Image

from autotimm import DetectionDataModule, FeatureBackboneConfig, ObjectDetector
from autotimm.data.synthetic import LargeSceneConfig, write_large_scenes
from autotimm.ops.tiles import merge_detections, tile_windows
from autotimm.tiling import TileConfig, TileReader, tile_batches


def _model(arch="fcos"):
    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, detection_arch=arch,
                           fpn_channels=32, head_num_convs=1, compile_model=False, deterministic=False, seed=0,
                           score_thresh=0.0, max_detections_per_image=30)
    model.image_size = 128
    return model


def _image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("arch", ["fcos", "yolox"])
def test_one_tile_equals_plain_predict(arch):
    model, image = _model(arch), _image(128, 128)
    plain = model.predict(image, precision="fp32")[0]
    tiled = model.predict(image, tile=128, precision="fp32")[0]
    assert plain.num_detections > 0  # an untrained head with a low threshold still fires: the check has boxes
    assert torch.equal(tiled["boxes"], plain["boxes"]) and torch.equal(tiled["labels"], plain["labels"])


def test_tiles_assemble_like_hand_shifted_crops():
    model, image = _model(), _image(128, 256, seed=1)
    tiled = model.predict(image, tile=128, overlap=0.0, precision="fp32")[0]  # windows x 0..128 and 128..256
    parts = [model.predict(image[:, :, x0 : x0 + 128], precision="fp32")[0] for x0 in (0, 128)]
    boxes = torch.cat([parts[0]["boxes"], parts[1]["boxes"] + torch.tensor([128.0, 0, 128, 0])])
    scores = torch.cat([p["scores"] for p in parts])
    labels = torch.cat([p["labels"] for p in parts])
    # no tile sees a box cut at x = 128 whole (no overlap), so nothing is dropped before the merge
    expected = merge_detections(boxes, scores, labels, model.nms_thresh, "nms")
    assert tiled.image_size == (128, 256)
    assert torch.allclose(tiled["boxes"], expected[0]) and torch.equal(tiled["labels"], expected[2])
    assert float(tiled["boxes"][:, 2].max()) > 128  # boxes from the right tile come back in image pixels


def test_padded_edge_tiles_and_results_objects(tmp_path):
    model = _model()
    path = tmp_path / "wide.png"
    Image.fromarray(_image(100, 300, seed=2).permute(1, 2, 0).numpy()).save(path)
    r = model.predict(str(path), tile=128, overlap=0.2, merge="wbf", full_image=True, precision="fp32")[0]
    assert r.image_path == str(path) and r.image_size == (100, 300) and r.image is None
    assert bool((r["boxes"] >= 0).all()) and bool((r["boxes"][:, [0, 2]] <= 300).all()) and bool((r["boxes"][:, [1, 3]] <= 100).all())
    assert r.plot().size == (300, 100)
    assert r.to_coco(image_id=1)[0]["image_id"] == 1 if r.num_detections else True


def test_auto_tiles_large_images_only_and_says_so_once(capsys):
    model, small, big = _model(), _image(200, 200), _image(300, 400, seed=3)
    results = model.predict([small, big, big], tile="auto", precision="fp32")
    out = capsys.readouterr().out
    assert out.count("tile='auto'") == 1 and "300 x 400" in out
    assert torch.equal(results[0]["boxes"], model.predict(small, precision="fp32")[0]["boxes"])  # 200 <= 2 x 128: plain
    assert torch.equal(results[1]["boxes"], model.predict(big, tile=128, precision="fp32")[0]["boxes"])


@pytest.mark.parametrize("kwargs, match", [(dict(tile=16), "tile=16"), (dict(tile="big"), "tile='big'"),
                                           (dict(tile=128, overlap=1.0), "overlap=1.0"),
                                           (dict(tile=128, merge="mean"), "merge='mean'")])
def test_bad_tiling_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model().predict(_image(64, 64), **kwargs)


def test_tile_batches_pad_edge_tiles():
    image = _image(100, 150)
    windows = tile_windows(100, 150, 64, 0.25)
    batches = list(tile_batches(TileReader(image), windows, 64, batch_size=4, pad_value=7))
    assert [b.shape[0] for b, _ in batches] == [4, 2]
    canvas = batches[0][0][0]
    assert torch.equal(canvas, image[:, :64, :64])
    reader = TileReader(_image(40, 150))  # shorter than a tile: padded at the bottom
    (canvas, index), = list(tile_batches(reader, tile_windows(40, 150, 64, 0.0)[:1], 64, 8, pad_value=7))
    assert bool((canvas[0, :, 40:] == 7).all()) and index.tolist() == [0]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    cfg = LargeSceneConfig(min_side=300, max_side=340, min_objects=10, max_objects=15, object_px=(8, 30))
    return write_large_scenes(out, "train", 2, cfg=cfg), write_large_scenes(out, "val", 1, cfg=cfg)


def test_validation_and_evaluate_on_whole_images_through_tiles(scenes, tmp_path):
    train, val = scenes
    dm = DetectionDataModule(train=train, val=val, image_size=128, tile=128, num_workers=0, batch_size=4,
                             augment="none", tile_dir=tmp_path / "tiles")
    model = _model()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, dm)
    assert "val/mAP" in trainer.callback_metrics and model.tiling == TileConfig(128, 0.2)
    report = model.evaluate(val, tile=128, progress=False)
    again = model.evaluate(dm, progress=False)  # the tiled data module: the same tiled path
    assert report.summary == again.summary
    with pytest.raises(ValueError, match="tile=64"):
        model.evaluate(dm, tile=64)


def test_memory_bounded_on_a_20000_px_image(tmp_path):
    """Reading every 640 px tile of a 20,000 x 20,000 raster and normalising it batch by batch grows the
    peak RSS by far less than the RGB uint8 image (1.2 GB), let alone the float one (4.8 GB)."""
    path = tmp_path / "blank.png"
    make = f"from PIL import Image; Image.new('L', (20000, 20000), 90).save({str(path)!r})"
    subprocess.run([sys.executable, "-c", make], check=True, timeout=300)
    script = textwrap.dedent(f"""
        import resource, torch
        from PIL import Image
        Image.MAX_IMAGE_PIXELS = None  # a trusted large raster
        from autotimm.tiling import TileReader, tile_batches
        from autotimm.ops.tiles import tile_windows
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        reader = TileReader({str(path)!r})
        windows = tile_windows(reader.height, reader.width, 640, 0.2)
        total = 0.0
        for canvas, index in tile_batches(reader, windows, 640, batch_size=8):
            total += float((canvas.float() / 255).mean()) * len(index)  # what normalisation allocates
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(len(windows), round(total / len(windows) * 255), peak - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=600).stdout
    tiles, mean, grown = (int(v) for v in out.split())
    assert tiles == 39 * 39 and mean == 90  # every tile read, with the image's pixels
    assert grown < 20000 * 20000 * 3, f"peak RSS grew by {grown / 2**30:.2f} GiB"


def test_tiles_of_a_32_bit_greyscale_file_scale_like_the_whole_image(tmp_path):
    import numpy as np

    from autotimm.data.image_io import load_image

    values = np.zeros((100, 200), np.int32)
    values[:, :100], values[:, 100:] = 200 * 257, 60000  # the left tile alone never exceeds 255 * 257
    path = tmp_path / "grey32.tif"
    Image.fromarray(values, mode="I").save(path)
    reader = TileReader(path)
    whole = load_image(path)  # scaled by 1/257 because the image holds values above 255
    for window in ([0, 0, 100, 100], [100, 0, 200, 100]):
        x0, y0, x1, y1 = window
        assert torch.equal(reader.crop(torch.tensor(window)), whole[:, y0:y1, x0:x1])


def test_tile_reader_reads_exif_and_size_limit_like_image_io(tmp_path, monkeypatch):
    import numpy as np

    from autotimm import tiling
    from autotimm.data import image_io
    from autotimm.data.image_io import load_image

    # one home: the tile reader uses image_io's public EXIF tag and size-limit error, not copies or private names
    assert tiling.EXIF_ORIENTATION is image_io.EXIF_ORIENTATION and image_io.EXIF_ORIENTATION == 0x0112
    assert tiling.too_large_error is image_io.too_large_error

    stored = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)  # stored frame: 60 wide, 40 high
    exif = Image.Exif()
    exif[image_io.EXIF_ORIENTATION] = 6  # shown rotated by 90 degrees: 40 wide, 60 high
    path = tmp_path / "rotated.png"
    Image.fromarray(stored).save(path, exif=exif)
    reader = TileReader(path)
    assert (reader.width, reader.height) == (40, 60)
    whole = load_image(path)
    assert whole.shape == (3, 60, 40)
    assert torch.equal(reader.crop(torch.tensor([0, 0, 40, 60])), whole)
    assert torch.equal(reader.crop(torch.tensor([10, 20, 30, 50])), whole[:, 20:50, 10:30])

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 2400 px > 2 * 1000: PIL refuses it
    with pytest.raises(ValueError, match=r"rotated\.png' is larger than .*PIL\.Image\.MAX_IMAGE_PIXELS = 1000"):
        TileReader(path)
