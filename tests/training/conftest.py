from __future__ import annotations

from pathlib import Path

import pytest

from autotimm import FeatureBackboneConfig


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> dict[str, Path]:
    """A small COCO shapes dataset (12 train / 6 val images, 96-128 px) written once per session."""
    from autotimm.data.synthetic import ShapesConfig, write_split

    out = tmp_path_factory.mktemp("shapes")
    cfg = ShapesConfig(min_side=96, max_side=128, max_objects=3, empty_prob=0.15)
    return {"train": write_split(out, "train", 12, seed=1, cfg=cfg), "val": write_split(out, "val", 6, seed=1, cfg=cfg)}


@pytest.fixture
def tiny_data(tiny_shapes):
    from autotimm import DetectionDataModule

    return DetectionDataModule(train=tiny_shapes["train"], val=tiny_shapes["val"], image_size=96, batch_size=4,
                               num_workers=0, augment="none", persistent_workers=False)
