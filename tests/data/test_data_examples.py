"""The example datasets live in the package, so a wheel finds them as an editable install does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import autotimm
from autotimm.data.examples import BUNDLED_DIR, data_root, example


def test_examples_are_package_data_with_their_licence(monkeypatch):
    monkeypatch.delenv("AUTOTIMM_DATA_DIR", raising=False)
    package = Path(autotimm.__file__).resolve().parent
    assert data_root() == BUNDLED_DIR and BUNDLED_DIR.is_relative_to(package)
    shapes, raccoon = example("shapes"), example("raccoon")
    assert shapes.train.is_file() and shapes.val.is_file() and (shapes.root / "val/000000.jpg").is_file()
    assert raccoon.images_dir.is_dir() and len(list(raccoon.images_dir.glob("*.jpg"))) == 200
    assert "MIT" in (raccoon.root / "LICENSE").read_text()


def test_data_dir_override_is_used_and_a_wrong_one_is_named(tmp_path, monkeypatch):
    shutil.copytree(BUNDLED_DIR / "shapes", tmp_path / "copy" / "shapes")
    monkeypatch.setenv("AUTOTIMM_DATA_DIR", str(tmp_path / "copy"))
    assert example("shapes").train == tmp_path / "copy" / "shapes" / "train.json"
    with pytest.raises(ValueError, match=r"AUTOTIMM_DATA_DIR=.*has no 'raccoon' dataset.*unset it"):
        example("raccoon")
    with pytest.raises(ValueError, match=r"Unknown example dataset 'coco'; available: \['shapes', 'raccoon'\]"):
        example("coco")
