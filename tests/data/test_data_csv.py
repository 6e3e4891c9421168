"""CSV reader: header, background rows, class order, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from autotimm.data.readers import read_csv


@pytest.fixture
def csv_file(tmp_path, image_writer):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        image_writer(tmp_path / "imgs" / name)
    path = tmp_path / "boxes.csv"
    path.write_text(
        "image_path,x_min,y_min,x_max,y_max,label\n"
        "imgs/a.jpg,1,2,11,12,zebra\n"
        "imgs/b.jpg,0,0,5,5,ant\n"
        "imgs/a.jpg,20,20,30,40,ant\n"
        "imgs/c.jpg,,,,,\n"
    )
    return path


def test_rows_group_by_image_in_order_of_appearance(csv_file):
    records, names, ids = read_csv(csv_file)
    assert names == ["ant", "zebra"] and ids == [1, 2]
    assert [r.image_path.name for r in records] == ["a.jpg", "b.jpg", "c.jpg"]
    np.testing.assert_allclose(records[0].boxes, [[1, 2, 11, 12], [20, 20, 30, 40]])
    assert records[0].labels.tolist() == [1, 0]
    assert records[2].num_boxes == 0  # "c.jpg,,,,," is an image without boxes
    assert (records[0].width, records[0].height) == (64, 48)


def test_header_is_optional_and_images_dir(csv_file, tmp_path):
    body = csv_file.read_text().splitlines()[1:]
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(line.replace("imgs/", "") for line in body) + "\n")
    records, names, _ = read_csv(bare, images_dir=tmp_path / "imgs", class_names=["zebra", "ant"])
    assert names == ["zebra", "ant"]
    assert records[0].labels.tolist() == [0, 1]


def test_unknown_label_names_line(csv_file):
    with pytest.raises(ValueError, match=r"boxes\.csv line 2: label 'zebra' is not in class_names \['ant'\]"):
        read_csv(csv_file, class_names=["ant"])


def test_wrong_columns_and_bad_numbers(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a.jpg,1,2,3\n")
    with pytest.raises(ValueError, match=r"x\.csv line 1: expected 6 columns"):
        read_csv(path)
    path.write_text("a.jpg,1,2,three,4,cat\n")
    with pytest.raises(ValueError, match=r"x\.csv line 1: coordinates must be numbers"):
        read_csv(path)


def test_missing_image_and_empty_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("nope.jpg,1,2,3,4,cat\n")
    with pytest.raises(ValueError, match=r"x\.csv: 1 image file\(s\) not found: 'nope\.jpg'"):
        read_csv(path)
    path.write_text("image_path,x_min,y_min,x_max,y_max,label\n")
    with pytest.raises(ValueError, match=r"x\.csv: the split holds no images"):
        read_csv(path)
