"""Deterministic synthetic "shapes" detection dataset (COCO json + JPEG), small enough to ship.

Three classes with distinct colours: red-ish circles, green-ish squares and blue-ish triangles, 0-4
per image, 12-45 % of the short image side, on smooth textured backgrounds with mild noise. Shapes
may overlap a little (at most 25 % of the smaller box; later shapes are drawn on top). Every image is drawn from its
own seeded generator, so any image can be regenerated alone and the output is identical on every
run.

Regenerate the bundled copy::

    python -m autotimm.data.synthetic --out autotimm/data/bundled/shapes --train 200 --val 50
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("circle", "square", "triangle")
BASE_COLOURS = np.array([(215, 45, 40), (35, 165, 60), (40, 75, 215)], dtype=np.float64)
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
SUPERSAMPLE = 4  # shapes are drawn this many times larger, then downsampled, for clean edges


@dataclass(frozen=True)
class ShapesConfig:
    """Settings of the generator.

    Attributes:
        min_side, max_side: image width and height are drawn from this range (pixels).
        max_objects: at most this many shapes per image.
        empty_prob: probability of an image with no shapes.
        size_range: shape size as a fraction of the short image side.
        max_overlap: largest intersection / smaller-box area allowed between two boxes.
        noise_std: std of the per-pixel Gaussian noise (0..255 scale).
        jpeg_quality: JPEG quality of the written files.
    """

    min_side: int = 256
    max_side: int = 320
    max_objects: int = 4
    empty_prob: float = 0.04
    size_range: tuple[float, float] = (0.12, 0.45)
    max_overlap: float = 0.25
    noise_std: float = 4.0
    jpeg_quality: int = 85


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth, desaturated texture [H, W, 3] float: a coarse random colour grid, bicubic-upsampled."""
    base = rng.uniform(70, 190)
    cells = rng.integers(3, 9)
    grid = base + rng.normal(0, 25, (cells, cells, 1)) + rng.normal(0, 8, (cells, cells, 3))
    grid_img = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8))
    smooth = np.asarray(grid_img.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float64)
    fine = np.asarray(
        Image.fromarray(np.clip(128 + rng.normal(0, 40, (height // 8 + 1, width // 8 + 1)), 0, 255).astype(np.uint8))
        .resize((width, height), Image.Resampling.BILINEAR),
        dtype=np.float64,
    )
    return smooth + (fine[..., None] - 128) * 0.25  # [H, W, 3]


def _overlap(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over the SMALLER box's area, of one box [4] with boxes [M, 4] (x1y1x2y2).

    Bounding it (rather than IoU) keeps a small shape from vanishing under a big one.
    """
    lt = np.maximum(box[:2], others[:, :2])  # [M, 2]
    rb = np.minimum(box[2:], others[:, 2:])  # [M, 2]
    inter = np.clip(rb - lt, 0, None).prod(1)  # [M]
    area = (box[2:] - box[:2]).prod()
    areas = (others[:, 2:] - others[:, :2]).prod(1)  # [M]
    return inter / np.minimum(area, areas)


def _place_boxes(rng: np.random.Generator, width: int, height: int, cfg: ShapesConfig) -> np.ndarray:
    """Up to ``max_objects`` integer boxes [N, 4], pairwise overlap <= ``max_overlap``."""
    if rng.random() < cfg.empty_prob:
        return np.zeros((0, 4))
    wanted = int(rng.integers(1, cfg.max_objects + 1))
    short = min(width, height)
    boxes: list[np.ndarray] = []
    for _ in range(wanted * 20):  # rejection sampling; a crowded image simply gets fewer shapes
        if len(boxes) == wanted:
            break
        side = rng.uniform(*cfg.size_range) * short
        aspect = rng.uniform(0.8, 1.25)
        w, h = round(side * np.sqrt(aspect)), round(side / np.sqrt(aspect))
        x1, y1 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        box = np.array([x1, y1, x1 + w, y1 + h], dtype=np.float64)
        if not boxes or _overlap(box, np.stack(boxes)).max() <= cfg.max_overlap:
            boxes.append(box)
    return np.stack(boxes)


def _draw(draw: ImageDraw.ImageDraw, rng: np.random.Generator, label: int, box: np.ndarray) -> None:
    """Draw one shape filling ``box`` exactly (coordinates already supersampled)."""
    colour = tuple(int(c) for c in np.clip(BASE_COLOURS[label] + rng.normal(0, 12, 3), 0, 255))
    x1, y1, x2, y2 = box
    inner = [x1, y1, x2 - 1, y2 - 1]  # PIL includes the end pixel
    if CLASS_NAMES[label] == "circle":
        draw.ellipse(inner, fill=colour)
    elif CLASS_NAMES[label] == "square":
        draw.rectangle(inner, fill=colour)
    else:
        apex = x1 + rng.uniform(0.3, 0.7) * (x2 - x1)
        if rng.random() < 0.5:  # pointing up
            points = [(x1, y2 - 1), (x2 - 1, y2 - 1), (apex, y1)]
        else:  # pointing down
            points = [(x1, y1), (x2 - 1, y1), (apex, y2 - 1)]
        draw.polygon(points, fill=colour)


def generate_image(
    seed: int, split: str, index: int, cfg: ShapesConfig = ShapesConfig()
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Draw image ``index`` of ``split``.

    Returns:
        (RGB PIL image, boxes float array [N, 4] x1y1x2y2 in its pixels, labels int array [N]).
    """
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    width, height = (int(v) for v in rng.integers(cfg.min_side, cfg.max_side + 1, 2))
    boxes = _place_boxes(rng, width, height, cfg)
    labels = rng.integers(0, len(CLASS_NAMES), len(boxes))
    background = _background(rng, width, height)
    big = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8)).resize(
        (width * SUPERSAMPLE, height * SUPERSAMPLE), Image.Resampling.NEAREST
    )
    draw = ImageDraw.Draw(big)
    for box, label in zip(boxes, labels):
        _draw(draw, rng, int(label), box * SUPERSAMPLE)
    small = np.asarray(big.resize((width, height), Image.Resampling.BOX), dtype=np.float64)
    noisy = small + rng.normal(0, cfg.noise_std, small.shape)
    image = Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))
    return image, boxes, labels


def write_split(
    out: str | Path, split: str, count: int, seed: int = 0, cfg: ShapesConfig = ShapesConfig()
) -> Path:
    """Write ``count`` images to ``out/<split>/`` and their COCO json to ``out/<split>.json``.

    Category ids are 1..3 in ``CLASS_NAMES`` order; ``file_name`` is relative to ``out``.

    Returns:
        The json path.
    """
    return _write_coco(out, split, count, lambda i: generate_image(seed, split, i, cfg), cfg.jpeg_quality,
                       f"autotimm synthetic shapes, seed {seed}")


def _write_coco(out: str | Path, split: str, count: int, generate, jpeg_quality: int, description: str) -> Path:  # noqa: ANN001
    """Write ``generate(index) -> (image, boxes, labels)`` for ``count`` indices as JPEGs + one COCO json."""
    out = Path(out)
    (out / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image, boxes, labels = generate(index)
        file_name = f"{split}/{index:06d}.jpg"
        image.save(out / file_name, quality=jpeg_quality)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": image.width, "height": image.height})
        for box, label in zip(boxes, labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            })
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)]
    ann_file = out / f"{split}.json"
    ann_file.write_text(json.dumps(
        {"info": {"description": description}, "images": images, "annotations": annotations,
         "categories": categories}, indent=1,
    ))
    return ann_file


# ---------------------------------------------------------------------- large scenes, small objects
@dataclass(frozen=True)
class LargeSceneConfig:
    """Settings of the large-scene generator: survey-like rasters with many small shapes.

    Attributes:
        min_side, max_side: image width and height are drawn from this range (pixels).
        min_objects, max_objects: shapes per image (fewer when the scene is too crowded to place them).
        object_px: shape side range in pixels (independent of the image size: the objects are small).
        max_overlap: largest intersection / smaller-box area allowed between two boxes.
        noise_std, jpeg_quality: as :class:`ShapesConfig`.
    """

    min_side: int = 2000
    max_side: int = 2400
    min_objects: int = 200
    max_objects: int = 400
    object_px: tuple[int, int] = (8, 60)
    max_overlap: float = 0.1
    noise_std: float = 4.0
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if not 0 < self.object_px[0] <= self.object_px[1] < self.min_side:
            raise ValueError(f"LargeSceneConfig.object_px={self.object_px!r}: expected 0 < low <= high < min_side.")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(f"LargeSceneConfig: need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}.")


def _place_small_boxes(rng: np.random.Generator, width: int, height: int, wanted: int, cfg: LargeSceneConfig) -> np.ndarray:
    """Up to ``wanted`` integer boxes [N, 4] of ``cfg.object_px`` px, pairwise overlap <= ``cfg.max_overlap``."""
    boxes = np.zeros((0, 4))
    for _ in range(8):  # rounds of vectorised proposals; each accepts greedily against the kept ones
        if len(boxes) >= wanted:
            break
        n = (wanted - len(boxes)) * 2
        side = rng.uniform(*cfg.object_px, n)
        aspect = rng.uniform(0.8, 1.25, n)
        w, h = np.round(side * np.sqrt(aspect)), np.round(side / np.sqrt(aspect))
        x1, y1 = np.floor(rng.uniform(0, 1, n) * (width - w + 1)), np.floor(rng.uniform(0, 1, n) * (height - h + 1))
        for box in np.stack([x1, y1, x1 + w, y1 + h], 1):  # [n, 4]
            if len(boxes) >= wanted:
                break
            if not len(boxes) or _overlap(box, boxes).max() <= cfg.max_overlap:
                boxes = np.concatenate([boxes, box[None]])
    return boxes


def generate_large_scene(
    seed: int, split: str, index: int, cfg: LargeSceneConfig = LargeSceneConfig()
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Draw large scene ``index`` of ``split``: a 2,000+ px textured background with hundreds of small
    circles, squares and triangles (the classes of the shapes set).

    Returns:
        (RGB PIL image, boxes float array [N, 4] x1y1x2y2 in its pixels, labels int array [N]).
    """
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index, 17])
    width, height = (int(v) for v in rng.integers(cfg.min_side, cfg.max_side + 1, 2))
    boxes = _place_small_boxes(rng, width, height, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)), cfg)
    labels = rng.integers(0, len(CLASS_NAMES), len(boxes))
    factor = 2  # supersampling; 4 as for the small set would need a 10,000 px canvas
    big = Image.fromarray(np.clip(_background(rng, width, height), 0, 255).astype(np.uint8)).resize(
        (width * factor, height * factor), Image.Resampling.NEAREST
    )
    draw = ImageDraw.Draw(big)
    for box, label in zip(boxes, labels):
        _draw(draw, rng, int(label), box * factor)
    small = np.asarray(big.resize((width, height), Image.Resampling.BOX), dtype=np.float32)
    noisy = small + rng.normal(0, cfg.noise_std, small.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8)), boxes, labels


def write_large_scenes(
    out: str | Path, split: str, count: int, seed: int = 0, cfg: LargeSceneConfig = LargeSceneConfig()
) -> Path:
    """Write ``count`` large scenes to ``out/<split>/`` and their COCO json to ``out/<split>.json``
    (generated at run time for tests and benchmarks; nothing large is shipped).

    Returns:
        The json path.

    Example:
        >>> write_large_scenes("/tmp/scenes", "val", 2)  # doctest: +SKIP
    """
    return _write_coco(out, split, count, lambda i: generate_large_scene(seed, split, i, cfg), cfg.jpeg_quality,
                       f"autotimm synthetic large scenes, seed {seed}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic shapes dataset (COCO json + JPEG).")
    parser.add_argument("--out", required=True, help="output folder, e.g. autotimm/data/bundled/shapes")
    parser.add_argument("--train", type=int, default=200, help="number of training images")
    parser.add_argument("--val", type=int, default=50, help="number of validation images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for split, count in (("train", args.train), ("val", args.val)):
        if count > 0:
            print(write_split(args.out, split, count, args.seed))


if __name__ == "__main__":
    main()
