"""Bundled example datasets: ``example("shapes")``, ``example("raccoon")``.

The data ship inside the package (``autotimm/data/bundled/``, package data of the wheel), so a
wheel install, an editable install and a source checkout find them the same way; set
``AUTOTIMM_DATA_DIR`` to use a copy elsewhere (a folder holding ``shapes/`` and ``raccoon/``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotimm.data.readers import AnnotationFormat

EXAMPLES = ("shapes", "raccoon")


BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


def data_root() -> Path:
    """The folder holding the example datasets: ``AUTOTIMM_DATA_DIR`` if set, else the package's own."""
    override = os.environ.get("AUTOTIMM_DATA_DIR")
    return Path(override) if override else BUNDLED_DIR


@dataclass(frozen=True)
class ExampleDataset:
    """Paths and facts of one bundled dataset.

    Attributes:
        name: "shapes" or "raccoon".
        format: annotation format of ``train`` / ``val``.
        train, val: annotation files.
        images_dir: image folder, or None when ``file_name`` resolves against the json's folder.
        class_names: K names in label order.
        root: the dataset folder.
    """

    name: str
    format: AnnotationFormat
    train: Path
    val: Path
    images_dir: Path | None
    class_names: tuple[str, ...]
    root: Path

    def datamodule(self, **kwargs: Any) -> Any:
        """A ``DetectionDataModule`` on this dataset; keyword arguments are passed through."""
        from autotimm.data.datamodule import DetectionDataModule

        kwargs.setdefault("images_dir", self.images_dir)
        return DetectionDataModule(train=self.train, val=self.val, format=self.format, **kwargs)


def example(name: str = "shapes") -> ExampleDataset:
    """One bundled dataset, ready for a notebook.

    Args:
        name: "shapes" (synthetic, 3 classes, 200/50 images, learns in minutes on a CPU) or
            "raccoon" (real photos, 1 class, 160/40 images).

    Example:
        >>> dm = example("shapes").datamodule(image_size=320, batch_size=8)  # doctest: +SKIP
    """
    root = data_root()
    if name == "shapes":
        ds = ExampleDataset(
            name, "coco", root / "shapes/train.json", root / "shapes/val.json", None,
            ("circle", "square", "triangle"), root / "shapes",
        )
    elif name == "raccoon":
        ds = ExampleDataset(
            name, "coco", root / "raccoon/coco/train.json", root / "raccoon/coco/val.json",
            root / "raccoon/images", ("raccoon",), root / "raccoon",
        )
    else:
        raise ValueError(f"Unknown example dataset {name!r}; available: {list(EXAMPLES)}.")
    if not ds.train.is_file():
        where = (
            f"AUTOTIMM_DATA_DIR={str(root)!r} has no '{name}' dataset; unset it to use the copy inside "
            f"the package ('{BUNDLED_DIR}'), or point it at a folder holding '{name}/'."
            if root != BUNDLED_DIR
            else f"The package ships it in '{BUNDLED_DIR}', which is incomplete: reinstall autotimm."
        )
        raise ValueError(f"The example '{name}' dataset is not at '{ds.root}' (no '{ds.train}'). {where}")
    return ds
