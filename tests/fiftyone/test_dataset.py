"""to_dataset: ground truth from every kind of source, class lists kept, names never reused silently."""

from __future__ import annotations

from pathlib import Path

import pytest

import autotimm.fiftyone as atfo
from autotimm.data import example
from autotimm.data.records import Annotations, DetectionRecord
from fo_handmade import CATEGORY_IDS, CLASSES, GT, SIZES


def _by_name(dataset):
    return {Path(s.filepath).name: s for s in dataset}


def test_coco_json_gives_ground_truth_metadata_and_classes(fo, handmade_json, dataset_name):
    dataset = atfo.to_dataset(handmade_json, name=dataset_name)
    assert dataset.name == dataset_name
    assert dataset.persistent is False
    assert len(dataset) == 3
    assert dataset.classes["ground_truth"] == CLASSES
    assert dataset.info["autotimm_category_ids"] == {"ground_truth": CATEGORY_IDS}
    samples = _by_name(dataset)
    for name, (w, h) in SIZES.items():
        sample = samples[name]
        assert sample.tags == ["val"]
        assert (sample.metadata.width, sample.metadata.height) == (w, h)
        assert sample.metadata.size_bytes == (Path(handmade_json).parent / name).stat().st_size
        dets = sample.ground_truth.detections
        assert [d.label for d in dets] == [CLASSES[label] for _, label, _ in GT[name]]
        assert [d.iscrowd for d in dets] == [crowd for _, _, crowd in GT[name]]
    # a.png is 100 x 80: [10, 10, 50, 50] -> [0.1, 0.125, 0.4, 0.5]
    first = samples["a.png"].ground_truth.detections[0]
    assert first.bounding_box == pytest.approx([0.1, 0.125, 0.4, 0.5], abs=1e-12)
    assert first.confidence is None


def test_reusing_a_name_raises_unless_overwrite(fo, handmade_json, dataset_name):
    atfo.to_dataset(handmade_json, name=dataset_name, max_samples=1)
    with pytest.raises(ValueError, match=rf"named '{dataset_name}' already exists \(1 samples.*overwrite=True"):
        atfo.to_dataset(handmade_json, name=dataset_name)
    assert fo.load_dataset(dataset_name).count() == 1  # untouched
    second = atfo.to_dataset(handmade_json, name=dataset_name, overwrite=True)
    assert len(second) == 3
    assert fo.load_dataset(dataset_name).count() == 3


def test_data_module_split_and_example(fo, dataset_name):
    shapes = example("shapes")
    dm = shapes.datamodule(image_size=64, batch_size=2, num_workers=0)
    records = dm.annotations("train").records[:3]
    dataset = atfo.to_dataset(dm, "train", name=dataset_name, max_samples=3)
    assert dataset.distinct("tags") == ["train"]
    assert dataset.values("ground_truth.detections.label") == [
        [shapes.class_names[k] for k in r.labels] for r in records
    ]
    assert dataset.values("image_id") == [r.image_id for r in records]
    from_example = atfo.to_dataset(shapes, "val", max_samples=2)
    try:
        assert len(from_example) == 2
        assert from_example.classes["ground_truth"] == list(shapes.class_names)
    finally:
        from_example.delete()


def test_csv_source_with_class_order(fo, handmade_json, dataset_name):
    csv = handmade_json.parent / "boxes.csv"
    csv.write_text("a.png,10,10,50,50,dog\nb.png,5,5,25,45,cat\nc.png,,,,,\n")
    dataset = atfo.to_dataset(csv, name=dataset_name, class_names=["dog", "cat"])
    assert dataset.classes["ground_truth"] == ["dog", "cat"]
    assert _by_name(dataset)["b.png"].ground_truth.detections[0].label == "cat"
    assert _by_name(dataset)["c.png"].ground_truth.detections == []


@pytest.mark.parametrize("policy, crowd, kept", [("ignore", [1, 0], 2), ("keep", [0, 0], 2), ("drop", [0], 1)])
def test_voc_difficult_policy(fo, handmade_json, dataset_name, policy, crowd, kept):
    record = DetectionRecord(
        handmade_json.parent / "a.png", 100, 80, boxes=[[0, 0, 10, 10], [20, 20, 40, 40]],
        labels=[0, 1], difficult=[True, False],
    )
    dataset = atfo.to_dataset(Annotations([record], ["cat", "dog"], [1, 2]), name=dataset_name, difficult=policy)
    dets = dataset.first().ground_truth.detections
    assert len(dets) == kept
    assert [d.iscrowd for d in dets] == crowd
    assert [d.difficult for d in dets] == ([1, 0] if kept == 2 else [0])


def test_bad_sources_are_named(fo, tmp_path):
    with pytest.raises(ValueError, match="source of type int is not supported"):
        atfo.to_dataset(3)
    with pytest.raises(ValueError, match="no such annotation file"):
        atfo.to_dataset(tmp_path / "missing.json")
    odd = tmp_path / "labels.xyz"
    odd.write_text("")
    with pytest.raises(ValueError, match=r"format of '.*labels.xyz'.*pass format="):
        atfo.to_dataset(odd)
    with pytest.raises(ValueError, match="max_samples must be a positive int"):
        atfo.to_dataset(odd, max_samples=0)
    with pytest.raises(ValueError, match="difficult must be"):
        atfo.to_dataset(odd, difficult="maybe")


def test_size_mismatch_between_annotations_and_file_warns(fo, handmade_json, dataset_name):
    record = DetectionRecord(handmade_json.parent / "a.png", 200, 80, boxes=[[0, 0, 10, 10]], labels=[0])
    with pytest.warns(UserWarning, match=r"'a.png' \(200x80 in the annotations, 100x80 on disk\)"):
        atfo.to_dataset(Annotations([record], ["cat"], [1]), name=dataset_name)
