"""Detections from an ``ObjectDetector`` (or an ONNX runner) into a FiftyOne field.

Any object with ``predict(paths, batch_size=..., ...) -> list[dict]`` (boxes x1y1x2y2 in ORIGINAL
pixels, scores, labels) and a ``class_names`` attribute works, e.g. ``autotimm.export.OnnxDetector``.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

from autotimm.fiftyone._deps import require_fiftyone, root_dataset
from autotimm.fiftyone.labels import check_detections_field, stored_classes, to_fiftyone_detections

_FLUSH_EVERY = 256  # samples whose detections are written to the database at once


def resolve_class_names(
    model: Any, samples: Any, gt_field: str = "ground_truth", class_names: Sequence[str] | None = None
) -> list[str]:
    """Class names for a model's labels: ``class_names`` > ``model.class_names`` > the dataset's
    class list for ``gt_field``.

    Raises:
        ValueError: when none is found, or when the count differs from ``model.num_classes``.
    """
    if class_names is not None:
        names, origin = list(class_names), "class_names="
    elif getattr(model, "class_names", None):
        names, origin = list(model.class_names), "model.class_names"
    elif stored_classes(samples, gt_field):
        names, origin = stored_classes(samples, gt_field), f"the dataset's classes for {gt_field!r}"
    else:
        raise ValueError(
            "No class names for the model's labels: model.class_names is empty (it is set when the "
            "model is fit on a DetectionDataModule and saved in its checkpoints) and the dataset "
            f"keeps no class list for {gt_field!r} (to_dataset() stores one). Pass "
            "class_names=[...] in label order."
        )
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int) and num_classes != len(names):
        raise ValueError(
            f"{origin} has {len(names)} names {names[:10]} but the model predicts {num_classes} "
            "classes; pass the class names the model was trained with."
        )
    return names


def set_predictions(
    samples: Any,
    detections: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    field: str = "predictions",
    progress: bool | None = None,
    overwrite: bool = False,
) -> None:
    """Store ready-made detections (one dict per sample, in the collection's order).

    Args:
        samples: a FiftyOne dataset or view.
        detections: one dict per sample: ``boxes`` [N, 4] x1y1x2y2 in ORIGINAL-frame pixels,
            ``labels`` int [N], ``scores`` [N].
        class_names: K names; label ``k`` is ``class_names[k]``.
        field: the field to write; created when missing.
        overwrite: replace an existing ``field`` (its labels, tags and edits) and delete the
            evaluations that used it; False (default) refuses with an error.
    """
    _refuse_existing(samples, field, overwrite)
    ids, paths, widths, heights = _sample_table(samples, progress)
    if len(detections) != len(ids):
        raise ValueError(
            f"Got {len(detections)} detection dicts for {len(ids)} samples; pass one per sample, "
            "in the order of the collection."
        )
    values = {
        sid: to_fiftyone_detections(det, class_names, w, h, path)
        for sid, det, path, w, h in zip(ids, detections, paths, widths, heights, strict=True)
    }
    dataset = _prepare_field(samples, field, class_names, overwrite)
    dataset.set_values(field, values, key_field="id")


def add_predictions(
    samples: Any,
    model: Any,
    field: str = "predictions",
    batch_size: int = 8,
    image_size: int | None = None,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    max_detections: int | None = None,
    class_names: Sequence[str] | None = None,
    gt_field: str = "ground_truth",
    progress: bool | None = None,
    overwrite: bool = False,
    tile: int | str | None = None,
    overlap: float | None = None,
) -> None:
    """Run ``model.predict`` on the samples' image files and store the detections in ``field``.

    Args:
        samples: a FiftyOne dataset or view (only its samples are predicted).
        model: an ``ObjectDetector``, an ``OnnxDetector`` or any object with ``predict`` and
            ``class_names`` (see module docstring).
        field: prediction field; must differ from ``gt_field``. An existing field is refused unless
            ``overwrite=True`` (which replaces its labels, tags and edits and deletes the evaluations
            that used it).
        batch_size: images per forward pass.
        image_size, score_thresh, nms_thresh, max_detections: passed to ``model.predict`` when
            given (None keeps the model's own settings).
        class_names: overrides ``model.class_names`` and the dataset's class list.
        gt_field: ground-truth field whose class list is the fallback for the class names.
        progress: show a progress bar (None: FiftyOne's default setting).
        overwrite: see ``field``.
        tile, overlap: tiled prediction of large images (``ObjectDetector.predict(tile=..., overlap=...)``;
            ``tile="auto"`` tiles only the images much larger than the training size).

    Boxes are in ORIGINAL-frame pixels from ``predict`` and stored relative to each image's size;
    scores become ``confidence``.

    Example:
        >>> add_predictions(dataset, model, batch_size=16)  # doctest: +SKIP
        >>> dataset.count("predictions.detections")  # doctest: +SKIP
    """
    fo = require_fiftyone()
    if not callable(getattr(model, "predict", None)):
        raise ValueError(
            f"model of type {type(model).__name__} has no predict() method; pass an ObjectDetector, "
            "an autotimm.export.OnnxDetector or an object with predict(images, batch_size=...)."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if field == gt_field:
        raise ValueError(f"field={field!r} is the ground-truth field; write predictions to another field.")
    names = resolve_class_names(model, samples, gt_field, class_names)
    options = {
        k: v for k, v in dict(image_size=image_size, score_thresh=score_thresh, nms_thresh=nms_thresh,
                              max_detections=max_detections, tile=tile, overlap=overlap).items() if v is not None
    }
    _check_options(model, options)
    _refuse_existing(samples, field, overwrite)
    dataset = _prepare_field(samples, field, names, overwrite)
    ids, paths, widths, heights = _sample_table(samples, progress)
    values: dict[str, Any] = {}
    with fo.core.utils.ProgressBar(total=len(ids), progress=progress) as bar:
        for start in range(0, len(ids), batch_size):
            chunk = slice(start, start + batch_size)
            dets = model.predict(list(paths[chunk]), batch_size=batch_size, **options)
            if len(dets) != len(paths[chunk]):
                raise ValueError(
                    f"{type(model).__name__}.predict() returned {len(dets)} results for "
                    f"{len(paths[chunk])} images; it must return one dict per image."
                )
            for sid, det, path, w, h in zip(ids[chunk], dets, paths[chunk], widths[chunk], heights[chunk], strict=True):
                values[sid] = to_fiftyone_detections(det, names, w, h, path)
            bar.update(count=len(dets))
            if len(values) >= _FLUSH_EVERY or start + batch_size >= len(ids):
                dataset.set_values(field, values, key_field="id")  # bounded memory on big datasets
                values = {}


def _check_options(model: Any, options: dict[str, Any]) -> None:
    """Fail before predicting when ``model.predict`` cannot take an option the caller set."""
    params = inspect.signature(model.predict).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    rejected = [name for name in options if name not in params]
    if rejected:
        raise ValueError(
            f"{type(model).__name__}.predict() takes no {rejected} (accepted: {list(params)}); an "
            "ONNX file, for one, has its input size fixed at export. Leave those options as None."
        )


def _sample_table(samples: Any, progress: bool | None) -> tuple[list, list, list, list]:
    """ids, file paths, widths and heights of the samples (metadata computed where missing)."""
    if samples.exists("metadata", False).count():
        samples.compute_metadata(progress=progress)
    return samples.values(["id", "filepath", "metadata.width", "metadata.height"])


def evaluations_of_field(dataset: Any, field: str) -> list[str]:
    """Keys of the dataset's evaluations whose predictions (or ground truth) are ``field``."""
    keys = []
    for key in dataset.list_evaluations():
        config = dataset.get_evaluation_info(key).config
        if field in (getattr(config, "pred_field", None), getattr(config, "gt_field", None)):
            keys.append(key)
    return keys


def _refuse_existing(samples: Any, field: str, overwrite: bool) -> None:
    """Fail before predicting when ``field`` exists and ``overwrite`` is False (nothing is lost silently)."""
    dataset = root_dataset(samples)
    if not dataset.has_sample_field(field):
        return
    check_detections_field(dataset, field, "field")
    if overwrite:
        return
    labelled = dataset.exists(field).count()
    evals = evaluations_of_field(dataset, field)
    raise ValueError(
        f"field={field!r} already exists in dataset '{dataset.name}' ({labelled} samples have labels there); "
        "writing would replace those labels with their tags and edits"
        + (f" and leave the evaluations {evals} stale" if evals else "")
        + f". Pass overwrite=True to replace it (and delete the evaluations that used it), or write to a new "
        f"field, e.g. field='{field}_2'."
    )


def _prepare_field(samples: Any, field: str, class_names: Sequence[str], overwrite: bool = False) -> Any:
    """Create the Detections field (or check the existing one and delete the evaluations that used it:
    the caller refused it unless ``overwrite``) and record its class list; returns the root dataset."""
    fo = require_fiftyone()
    dataset = root_dataset(samples)
    if dataset.has_sample_field(field):
        check_detections_field(dataset, field, "field")
        for key in evaluations_of_field(dataset, field):
            dataset.delete_evaluation(key)  # its eval_* fields describe labels that are about to change
    else:
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    dataset.classes = {**dataset.classes, field: list(class_names)}
    dataset.save()
    return dataset
