"""COCO reader: label mapping, crowd boxes, empty images, path resolution, bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from autotimm.data.readers import read_annotations, read_coco


def test_categories_sorted_by_id_and_mapped_back(coco_factory):
    records, names, category_ids = read_coco(coco_factory())
    assert names == ["cat", "dog"]  # sorted by id: 3 -> label 0, 7 -> label 1
    assert category_ids == [3, 7]
    a = records[0]
    assert a.labels.tolist() == [1, 0]
    assert [category_ids[k] for k in a.labels] == [7, 3]


def test_boxes_are_xyxy_and_crowd_is_kept(coco_factory):
    records, _, _ = read_coco(coco_factory())
    a, b, _ = records
    # bbox [4, 5, 10, 20] -> [4, 5, 14, 25]; [30, 2, 8, 8] -> [30, 2, 38, 10]
    np.testing.assert_allclose(a.boxes, [[4, 5, 14, 25], [30, 2, 38, 10]])
    assert a.iscrowd.tolist() == [False, True]
    assert a.boxes.dtype == np.float32 and a.labels.dtype == np.int64
    assert (a.image_id, b.image_id) == (10, 11)
    np.testing.assert_allclose(b.boxes, [[0, 0, 64, 48]])


def test_images_without_annotations_are_kept(coco_factory):
    records, _, _ = read_coco(coco_factory())
    assert [r.image_path.name for r in records] == ["a.jpg", "b.jpg", "c.jpg"]
    assert records[2].num_boxes == 0
    assert records[2].boxes.shape == (0, 4)


def test_file_names_resolve_against_images_dir(coco_factory, tmp_path, image_writer):
    images = [{"id": 1, "file_name": "x.jpg", "width": 64, "height": 48}]
    ann = coco_factory(images=images, annotations=[], write_images=False)
    image_writer(tmp_path / "elsewhere" / "x.jpg")
    with pytest.raises(ValueError, match=r"1 image file\(s\) not found: 'x.jpg' \(image id 1\)"):
        read_coco(ann)  # beside the json: not there
    records, _, _ = read_coco(ann, images_dir=tmp_path / "elsewhere")
    assert records[0].image_path == tmp_path / "elsewhere" / "x.jpg"


def test_missing_width_height_read_from_file(coco_factory, tmp_path, image_writer):
    image_writer(tmp_path / "img/w.png", 50, 30)
    ann = coco_factory(images=[{"id": 1, "file_name": "img/w.png"}], annotations=[], write_images=False)
    record = read_coco(ann).records[0]
    assert (record.width, record.height) == (50, 30)


def test_unknown_category_id_names_file_and_annotation(coco_factory):
    anns = [{"id": 5, "image_id": 10, "category_id": 99, "bbox": [1, 1, 5, 5]}]
    path = coco_factory(annotations=anns)
    with pytest.raises(ValueError, match=r"ann\.json: annotation id 5 has category_id 99.*ids \[3, 7\]"):
        read_coco(path)


def test_unknown_image_id_is_an_error(coco_factory):
    anns = [{"id": 8, "image_id": 404, "category_id": 3, "bbox": [1, 1, 5, 5]}]
    with pytest.raises(ValueError, match=r"annotation id 8 refers to image_id 404"):
        read_coco(coco_factory(annotations=anns))


def test_empty_split_is_an_error(coco_factory):
    with pytest.raises(ValueError, match=r"empty\.json.*holds no images"):
        read_coco(coco_factory(images=[], annotations=[], name="empty.json"))


def test_missing_annotation_file_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="COCO annotation file not found: '.*nope.json'"):
        read_coco(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: not valid json"):
        read_coco(bad)
    no_cats = tmp_path / "nocats.json"
    no_cats.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="'categories' list is missing or empty"):
        read_coco(no_cats)


def test_out_of_image_boxes_clipped_with_one_warning(coco_factory):
    anns = [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [-5, -5, 20, 20]},
        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [50, 40, 30, 30]},
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_coco(coco_factory(annotations=anns)).records
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "clipped 2 box(es)" in messages[0] and "annotation id 1" in messages[0]
    np.testing.assert_allclose(records[0].boxes, [[0, 0, 15, 15], [50, 40, 64, 48]])


def test_degenerate_boxes_dropped_with_counted_warning(coco_factory):
    anns = [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [5, 5, 0, 10]},  # zero width
        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [5, 5, 10, -3]},  # negative height
        {"id": 3, "image_id": 10, "category_id": 3, "bbox": [70, 5, 10, 10]},  # wholly outside
        {"id": 4, "image_id": 10, "category_id": 3, "bbox": [5, 5, 10, 10]},  # fine
    ]
    with pytest.warns(UserWarning, match=r"dropped 3 degenerate box\(es\).*annotation id 1.*annotation id 2.*annotation id 3"):
        records = read_coco(coco_factory(annotations=anns)).records
    np.testing.assert_allclose(records[0].boxes, [[5, 5, 15, 15]])


def test_read_annotations_checks_expected_classes(coco_factory):
    path = coco_factory()
    assert read_annotations("coco", path, class_names=["cat", "dog"]).class_names == ["cat", "dog"]
    with pytest.raises(ValueError, match=r"classes \['cat', 'dog'\] differ from the expected \['dog', 'cat'\]"):
        read_annotations("coco", path, class_names=["dog", "cat"])
    with pytest.raises(ValueError, match=r"Unknown annotation format 'kitti'; valid formats: \['coco', 'voc', 'yolo', 'csv'\]"):
        read_annotations("kitti", path)


def test_duplicate_image_ids(coco_factory):
    images = [{"id": 1, "file_name": "img/a.jpg"}, {"id": 1, "file_name": "img/b.jpg"}]
    with pytest.raises(ValueError, match=r"image ids must be unique; repeated: \[1\]"):
        read_coco(coco_factory(images=images, annotations=[]))
