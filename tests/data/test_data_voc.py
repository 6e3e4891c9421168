"""Pascal VOC reader: folders, list files, the 1-based convention, difficult flags, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotimm.data.readers import read_voc


def write_xml(path: Path, filename: str, objects: list[tuple[str, list[float], int]], size=(64, 48), folder="JPEGImages") -> Path:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{diff}</difficult><bndbox>"
        f"<xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, diff in objects
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<annotation><folder>{folder}</folder><filename>{filename}</filename>"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"
    )
    return path


@pytest.fixture
def devkit(tmp_path, image_writer):
    """A VOCdevkit-style tree: Annotations/, JPEGImages/, ImageSets/Main/{train,val}.txt."""
    root = tmp_path / "VOC"
    write_xml(root / "Annotations/0001.xml", "0001.jpg", [("dog", [5, 6, 20, 30], 0), ("cat", [30, 10, 50, 40], 1)])
    write_xml(root / "Annotations/0002.xml", "0002.jpg", [("cat", [1, 1, 64, 48], 0)])
    write_xml(root / "Annotations/0003.xml", "0003.jpg", [])
    for name in ("0001", "0002", "0003"):
        image_writer(root / f"JPEGImages/{name}.jpg")
    (root / "ImageSets/Main").mkdir(parents=True)
    (root / "ImageSets/Main/train.txt").write_text("0001\n0003\n")
    (root / "ImageSets/Main/val.txt").write_text("0002\n")
    return root


def test_folder_of_xml_with_sorted_default_classes(devkit):
    records, names, ids = read_voc(devkit / "Annotations")
    assert names == ["cat", "dog"] and ids == [1, 2]
    assert [r.image_path.name for r in records] == ["0001.jpg", "0002.jpg", "0003.jpg"]
    first = records[0]
    np.testing.assert_allclose(first.boxes, [[5, 6, 20, 30], [30, 10, 50, 40]])  # as written
    assert first.labels.tolist() == [1, 0]
    assert first.difficult.tolist() == [False, True]
    assert not first.iscrowd.any()
    assert records[2].num_boxes == 0  # no objects: kept as a background image
    assert (first.width, first.height) == (64, 48)


def test_list_file_uses_devkit_annotations(devkit):
    records, _, _ = read_voc(devkit / "ImageSets/Main/train.txt")
    assert [r.image_path.name for r in records] == ["0001.jpg", "0003.jpg"]
    assert [r.image_id for r in records] == [0, 1]


def test_one_based_subtracts_one_from_the_min_corner(devkit):
    records, _, _ = read_voc(devkit / "ImageSets/Main/val.txt", one_based=True)
    np.testing.assert_allclose(records[0].boxes, [[0, 0, 64, 48]])  # 1-based [1, 64] -> [0, 64]
    records, _, _ = read_voc(devkit / "ImageSets/Main/val.txt")
    np.testing.assert_allclose(records[0].boxes, [[1, 1, 64, 48]])


def test_given_class_names_fix_the_order_and_reject_others(devkit):
    _, names, _ = read_voc(devkit / "Annotations", class_names=["dog", "cat", "bird"])
    assert names == ["dog", "cat", "bird"]
    with pytest.raises(ValueError, match=r"0001\.xml: object #0 has class 'dog', which is not in class_names \['cat'\]"):
        read_voc(devkit / "Annotations", class_names=["cat"])


def test_missing_image_names_xml_and_file(devkit):
    (devkit / "JPEGImages/0002.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 image file\(s\) not found: '0002\.jpg' \(from 0002\.xml\)"):
        read_voc(devkit / "Annotations")


def test_list_file_entry_without_xml(devkit):
    (devkit / "ImageSets/Main/bad.txt").write_text("0001\n0099\n")
    with pytest.raises(ValueError, match=r"bad\.txt: 1 xml file\(s\) not found: line 2 -> '.*0099\.xml'"):
        read_voc(devkit / "ImageSets/Main/bad.txt")


def test_empty_folder_and_broken_xml(tmp_path, devkit):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        read_voc(tmp_path / "empty")
    (devkit / "Annotations/0004.xml").write_text("<annotation><filename>")
    with pytest.raises(ValueError, match=r"0004\.xml: not valid xml"):
        read_voc(devkit / "Annotations")


def test_bad_coordinate_names_object(devkit):
    write_xml(devkit / "Annotations/0005.xml", "0001.jpg", [("cat", ["a", 1, 2, 3], 0)])
    with pytest.raises(ValueError, match=r"0005\.xml: object #0 \('cat'\) has a bad coordinate"):
        read_voc(devkit / "Annotations")


def test_zero_size_in_xml_falls_back_to_the_file(tmp_path, image_writer):
    write_xml(tmp_path / "a.xml", "a.png", [("cat", [1, 1, 10, 10], 0)], size=(0, 0))
    image_writer(tmp_path / "a.png", 40, 20)
    record = read_voc(tmp_path).records[0]
    assert (record.width, record.height) == (40, 20)
