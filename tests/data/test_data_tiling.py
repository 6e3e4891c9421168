"""Training tiles: boxes clipped to each tile, dropped below min_visible, empty tiles at a ratio,
tile pixels equal to the image's, whole-image validation batches, bad arguments named."""

import numpy as np
import pytest
import torch
from PIL import Image

from autotimm import DetectionDataModule
from autotimm.data.records import DetectionRecord
from autotimm.data.synthetic import LargeSceneConfig, write_large_scenes
from autotimm.data.tiling import WholeImageDataset, clip_boxes_to_window, tile_records


def test_clip_boxes_to_window_hand_checked():
    boxes = np.array([[10.0, 10, 30, 30],   # inside
                      [50, 10, 70, 30],     # 5 of 20 px wide inside x < 55: 25 % visible -> dropped
                      [40, 40, 60, 60],     # 15 x 15 of 20 x 20 inside: 56 % -> kept, clipped
                      [60, 0, 80, 10]])     # outside
    crowd = np.zeros(4, bool)
    out, keep = clip_boxes_to_window(boxes, crowd, (0, 0, 55, 55), 0.5)
    assert keep.tolist() == [0, 2]
    assert out.tolist() == [[10, 10, 30, 30], [40, 40, 55, 55]]
    shifted, keep = clip_boxes_to_window(boxes, crowd, (20, 20, 75, 75), 0.5)  # tile frame: minus (20, 20)
    assert keep.tolist() == [1, 2]  # box 1 keeps y 20..30 of 10..30: exactly 50 %
    assert shifted.tolist() == [[30, 0, 50, 10], [20, 20, 40, 40]]
    crowd[1] = True  # an ignore region stays when any of it is in the tile
    assert clip_boxes_to_window(boxes, crowd, (0, 0, 55, 55), 0.5)[1].tolist() == [0, 1, 2]


def _record(tmp_path, width=200, height=120):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(pixels).save(path)
    boxes = [[5, 5, 25, 25], [90, 20, 110, 40], [170, 90, 195, 115]]
    return DetectionRecord(path, width, height, boxes, [0, 1, 2], image_id=7), pixels


def test_tile_records_boxes_and_pixels(tmp_path):
    record, pixels = _record(tmp_path)
    tiles = tile_records([record], tile=64, overlap=0.25, min_visible=0.5, empty_ratio=100.0, out_dir=tmp_path / "t")
    # windows: x starts 0, 45, 90, 136 (span 136 in 3 steps); y starts 0, 28, 56: 12 tiles, all kept (empty_ratio large)
    assert len(tiles) == 12 and [t.image_id for t in tiles] == list(range(1, 13))
    for t in tiles:
        x0, y0 = (int(v) for v in t.image_path.stem.split("_")[-2:])
        assert (t.width, t.height) == (64, 64)
        crop = np.asarray(Image.open(t.image_path))
        assert np.array_equal(crop, pixels[y0 : y0 + 64, x0 : x0 + 64])  # lossless, exact window
    by_origin = {tuple(int(v) for v in t.image_path.stem.split("_")[-2:]): t.boxes.tolist() for t in tiles}
    assert by_origin[(0, 0)] == [[5, 5, 25, 25]]        # box 0 whole in the first tile only
    assert by_origin[(45, 0)] == [[45, 20, 64, 40]]     # box 1 (x 90..110): 19 of 20 px in x 45..109
    assert by_origin[(90, 0)] == [[0, 20, 20, 40]]      # box 1 whole
    assert by_origin[(45, 28)] == [[45, 0, 64, 12]]     # box 1: 19/20 x 12/20 = 57 % visible, kept
    assert by_origin[(90, 28)] == [[0, 0, 20, 12]]      # box 1: 60 %
    assert by_origin[(136, 56)] == [[34, 34, 59, 59]]   # box 2 (170..195, 90..115) whole
    assert by_origin[(136, 28)] == []                   # box 2: y 90..92 of 90..115 = 8 %, dropped
    assert sum(len(b) for b in by_origin.values()) == 6


def test_empty_tiles_kept_at_the_ratio(tmp_path):
    record, _ = _record(tmp_path)
    none = tile_records([record], 64, 0.25, 0.5, 0.0, tmp_path / "t")
    assert all(t.num_boxes for t in none) and len(none) == 6  # 6 of the 12 tiles hold a box
    some = tile_records([record], 64, 0.25, 0.5, 0.5, tmp_path / "t")
    assert len(some) == 9 and sum(t.num_boxes == 0 for t in some) == 3  # round(0.5 * 6) empty tiles
    small = DetectionRecord(record.image_path, 200, 120, record.boxes, record.labels)
    assert tile_records([small], 256, 0.2, 0.5, 0.0, tmp_path / "t")[0].image_path == record.image_path  # not tiled


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    cfg = LargeSceneConfig(min_side=300, max_side=360, min_objects=10, max_objects=15, object_px=(8, 30))
    return write_large_scenes(out, "train", 2, cfg=cfg), write_large_scenes(out, "val", 1, cfg=cfg), out


def test_datamodule_tiles_training_and_keeps_validation_whole(scenes, tmp_path):
    train, val, _ = scenes
    dm = DetectionDataModule(train=train, val=val, image_size=128, tile=128, tile_overlap=0.25, num_workers=0,
                             batch_size=2, augment="none", tile_dir=tmp_path / "tiles")
    dm.setup("fit")
    assert all(max(r.width, r.height) <= 128 for r in dm.train_dataset.records)
    assert sum(r.num_boxes for r in dm.train_dataset.records) >= sum(r.num_boxes for r in dm.annotations("train").records)
    images, targets = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 128, 128)
    assert isinstance(dm.val_dataset, WholeImageDataset)
    images, targets = next(iter(dm.val_dataloader()))
    record = dm.annotations("val").records[0]
    assert isinstance(images, list) and images[0].shape == (3, record.height, record.width)
    assert torch.equal(targets[0]["boxes"], torch.from_numpy(record.boxes)) and "letterbox" not in targets[0]
    assert dm.tiling.tile == 128 and "tiles         128 px" in dm.summary()


@pytest.mark.parametrize("kwargs, match", [(dict(tile=20), "tile=20"), (dict(tile=64, tile_overlap=1.5), "overlap=1.5"),
                                           (dict(tile=64, min_visible=0.0), "min_visible=0.0"),
                                           (dict(tile=64, empty_ratio=-1), "empty_ratio=-1")])
def test_bad_tile_arguments(scenes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DetectionDataModule(train=scenes[0], **kwargs)


def test_a_shared_tile_dir_keeps_tile_sizes_apart(tmp_path):
    record, pixels = _record(tmp_path)
    first = tile_records([record], 64, 0.25, 0.5, 100.0, tmp_path / "t")[0]
    second = tile_records([record], 96, 0.25, 0.5, 100.0, tmp_path / "t")[0]  # same origin (0, 0), larger tile
    assert first.image_path != second.image_path
    assert np.asarray(Image.open(second.image_path)).shape == (96, 96, 3)
    assert np.array_equal(np.asarray(Image.open(second.image_path)), pixels[:96, :96])
