"""The way back: a FiftyOne view (after tagging, filtering or fixing labels) -> COCO json ->
``DetectionDataModule`` for retraining, with the images used in place.

Our own writer, not FiftyOne's COCO exporter, so boxes go back through the same converter that
brought them in (:func:`autotimm.fiftyone.boxes.relative_xywh_to_xyxy`) and come back bit-identical;
``file_name`` is the absolute image path, so nothing is copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from autotimm.fiftyone._deps import require_fiftyone, root_dataset
from autotimm.fiftyone.labels import check_detections_field, from_fiftyone_detections, stored_classes


def _classes_and_ids(samples: Any, label_field: str, classes: Sequence[str] | None) -> tuple[list[str], list[int]]:
    """Class list (given > stored > sorted labels) and the COCO category id of each class."""
    dataset = root_dataset(samples)
    stored = stored_classes(samples, label_field)
    if classes is not None:
        names = list(classes)
    elif stored:
        names = stored
    else:
        names = sorted(samples.distinct(f"{label_field}.detections.label"))
    if len(set(names)) != len(names):
        raise ValueError(f"classes contain duplicates: {names}.")
    ids = (dataset.info.get("autotimm_category_ids") or {}).get(label_field)
    if stored and ids and len(ids) == len(stored) and names[: len(stored)] == stored:
        extra = max(ids) + 1  # classes added after the stored ones get new ids after the old ones
        return names, list(ids) + list(range(extra, extra + len(names) - len(stored)))
    return names, list(range(1, len(names) + 1))


def export_coco(
    samples: Any,
    path: str | os.PathLike,
    label_field: str = "ground_truth",
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write the samples and their ``label_field`` boxes as a COCO detection json.

    Args:
        samples: a FiftyOne dataset or view; filtered labels stay filtered, samples without boxes
            are written as images without annotations.
        path: the json file to write.
        label_field: the Detections field to export.
        classes: class list in label order; default: the dataset's list for ``label_field``
            (from :func:`to_dataset`), else the sorted labels found. New classes go at the end.
        overwrite: replace an existing file (otherwise an existing file raises).
        progress: progress bar while computing missing metadata.

    Returns:
        the path written. Category ids are the source dataset's (kept by ``to_dataset``) or 1..K;
        ``bbox`` is ``[x, y, w, h]`` in ORIGINAL-frame pixels; crowd / difficult flags are kept.
    """
    require_fiftyone()
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"'{path}' already exists; pass overwrite=True to replace it or choose another path.")
    check_detections_field(samples, label_field, "label_field")
    names, category_ids = _classes_and_ids(samples, label_field, classes)
    if samples.exists("metadata", False).count():
        samples.compute_metadata(progress=progress)
    paths, widths, heights, labels = samples.values(["filepath", "metadata.width", "metadata.height", label_field])
    image_ids = samples.values("image_id") if samples.has_sample_field("image_id") else []
    if not (all(isinstance(i, int) for i in image_ids) and len(set(image_ids)) == len(paths)):
        image_ids = list(range(1, len(paths) + 1))  # keep the source's ids only when they are unique

    images, annotations = [], []
    for image_id, file, width, height, dets in zip(image_ids, paths, widths, heights, labels, strict=True):
        images.append({"id": int(image_id), "file_name": file, "width": int(width), "height": int(height)})
        det = from_fiftyone_detections(dets, names, width, height, file)
        for box, label, crowd, difficult in zip(
            *(det[k].tolist() for k in ("boxes", "labels", "iscrowd", "difficult")), strict=True
        ):
            w, h = box[2] - box[0], box[3] - box[1]  # float64 differences of float32 values: exact
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id), "category_id": category_ids[label],
                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": int(crowd), "difficult": int(difficult),
            })
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cid, "name": name} for cid, name in zip(category_ids, names, strict=True)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco), encoding="utf-8")
    return path


def to_datamodule(
    train: Any,
    out_dir: str | os.PathLike,
    val: Any = None,
    label_field: str = "ground_truth",
    classes: Sequence[str] | None = None,
    overwrite: bool = False,
    **datamodule_kwargs: Any,
) -> Any:
    """FiftyOne views -> COCO json files in ``out_dir`` -> a ``DetectionDataModule``.

    Args:
        train: view (or dataset) of the training images.
        out_dir: folder for ``train.json`` (and ``val.json``); images are used where they are.
        val: optional view of the validation images.
        label_field: the Detections field with the (fixed) ground truth.
        classes: class list; default: the train collection's (see :func:`export_coco`). Both splits
            use the same list, so labels mean the same in both.
        overwrite: replace existing json files.
        **datamodule_kwargs: passed to ``DetectionDataModule`` (image_size, batch_size, ...).

    Returns:
        ``DetectionDataModule(train=out_dir/train.json, val=out_dir/val.json, format="coco", ...)``.

    Example:
        >>> clean = dataset.match_tags("bad_label", bool=False)  # doctest: +SKIP
        >>> dm = to_datamodule(clean, "runs/fixed_data", image_size=320)  # doctest: +SKIP
    """
    from autotimm.data.datamodule import DetectionDataModule

    out = Path(out_dir)
    names, _ = _classes_and_ids(train, label_field, classes)
    splits = {"train": train} if val is None else {"train": train, "val": val}
    for split in splits:
        if (out / f"{split}.json").exists() and not overwrite:
            raise ValueError(f"'{out / f'{split}.json'}' already exists; pass overwrite=True or another out_dir.")
    files = {split: export_coco(view, out / f"{split}.json", label_field, names, overwrite)
             for split, view in splits.items()}
    return DetectionDataModule(**files, format="coco", **datamodule_kwargs)
