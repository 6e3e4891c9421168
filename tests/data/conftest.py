"""Small on-disk datasets for the data-layer tests: a few tiny images and annotation files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image


def write_image(path: Path, width: int = 64, height: int = 48, colour: tuple[int, int, int] = (10, 200, 30)) -> Path:
    """A solid-colour RGB image file (JPEG or PNG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path)
    return path


@pytest.fixture
def image_writer() -> Callable[..., Path]:
    return write_image


@pytest.fixture
def coco_factory(tmp_path: Path) -> Callable[..., Path]:
    """Write a COCO json (and its images) under tmp_path; returns the json path.

    Default content: 3 images of 64x48 (a.jpg, b.jpg, c.jpg), categories with non-contiguous ids
    7 ("dog") and 3 ("cat"), and 3 annotations; c.jpg has none.
    """

    def make(
        images: list[dict[str, Any]] | None = None,
        annotations: list[dict[str, Any]] | None = None,
        categories: list[dict[str, Any]] | None = None,
        name: str = "ann.json",
        write_images: bool = True,
    ) -> Path:
        if images is None:
            images = [
                {"id": 10, "file_name": "img/a.jpg", "width": 64, "height": 48},
                {"id": 11, "file_name": "img/b.jpg", "width": 64, "height": 48},
                {"id": 12, "file_name": "img/c.jpg", "width": 64, "height": 48},
            ]
        if annotations is None:
            annotations = [
                {"id": 1, "image_id": 10, "category_id": 7, "bbox": [4, 5, 10, 20], "iscrowd": 0},
                {"id": 2, "image_id": 10, "category_id": 3, "bbox": [30, 2, 8, 8], "iscrowd": 1},
                {"id": 3, "image_id": 11, "category_id": 3, "bbox": [0, 0, 64, 48], "iscrowd": 0},
            ]
        if categories is None:
            categories = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
        if write_images:
            for im in images:
                write_image(tmp_path / im["file_name"], im.get("width", 64), im.get("height", 48))
        path = tmp_path / name
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
        return path

    return make

