"""Views for error analysis after :func:`autotimm.fiftyone.evaluate`.

Each takes a dataset or view that carries an evaluation (``eval_key``) and returns a FiftyOne view to
browse in the App or iterate in Python. Patch views hold one sample per object, with top-level
``type`` ("tp" / "fp" / "fn"), ``iou`` and ``crowd`` fields.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from autotimm.fiftyone._deps import require_fiftyone
from autotimm.fiftyone.labels import stored_classes


def _eval_fields(samples: Any, eval_key: str) -> tuple[str, str]:
    """(pred_field, gt_field) of the evaluation ``eval_key``."""
    keys = samples.list_evaluations()
    if eval_key not in keys:
        raise ValueError(
            f"eval_key={eval_key!r}: no such evaluation on this dataset; evaluations: {keys or 'none'}. "
            "Run autotimm.fiftyone.evaluate(dataset, eval_key=...) first."
        )
    config = samples.get_evaluation_info(eval_key).config
    return config.pred_field, config.gt_field


def false_positives(samples: Any, eval_key: str = "eval") -> Any:
    """One patch per false-positive prediction, most confident first.

    The most confident false positives are the likeliest to be missing ground truth or a class mix-up.
    """
    F = require_fiftyone().ViewField
    pred_field, _ = _eval_fields(samples, eval_key)
    patches = samples.to_evaluation_patches(eval_key).match(F("type") == "fp")
    return patches.sort_by(F(f"{pred_field}.detections").map(F("confidence")).max(), reverse=True)


def false_negatives(samples: Any, eval_key: str = "eval") -> Any:
    """One patch per missed ground-truth box, largest first (by area relative to the image).

    Missed objects carry no confidence, so they are ordered by size: large misses are the clearest
    failures (small ones are often hard cases). Crowd regions are left out.
    """
    F = require_fiftyone().ViewField
    _, gt_field = _eval_fields(samples, eval_key)
    patches = samples.to_evaluation_patches(eval_key).match((F("type") == "fn") & (F("crowd") != True))  # noqa: E712
    area = F(f"{gt_field}.detections").map(F("bounding_box")[2] * F("bounding_box")[3]).max()
    return patches.sort_by(area, reverse=True)


def low_iou_matches(samples: Any, eval_key: str = "eval", max_iou: float = 0.75) -> Any:
    """True-positive patches whose IoU is below ``max_iou``, worst localisation first.

    These count as correct at the evaluation's IoU threshold but lose AP at the stricter COCO
    thresholds. Crowd matches are left out.
    """
    if not 0.0 < float(max_iou) <= 1.0:
        raise ValueError(f"max_iou must be in (0, 1]; got {max_iou!r}.")
    F = require_fiftyone().ViewField
    _eval_fields(samples, eval_key)
    patches = samples.to_evaluation_patches(eval_key)
    return patches.match((F("type") == "tp") & (F("crowd") != True) & (F("iou") < float(max_iou))).sort_by("iou")  # noqa: E712


def worst_samples(
    samples: Any, eval_key: str = "eval", by: Literal["fp", "fn", "errors"] = "fp", limit: int | None = None
) -> Any:
    """Samples ordered by their false positives ("fp"), false negatives ("fn") or both ("errors").

    Args:
        limit: keep only the first ``limit`` samples.
    """
    if by not in ("fp", "fn", "errors"):
        raise ValueError(f"by must be 'fp', 'fn' or 'errors'; got {by!r}.")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None; got {limit!r}.")
    F = require_fiftyone().ViewField
    _eval_fields(samples, eval_key)
    key = F(f"{eval_key}_fp") + F(f"{eval_key}_fn") if by == "errors" else F(f"{eval_key}_{by}")
    view = samples.sort_by(key, reverse=True)
    return view.limit(limit) if limit else view


def only_class(samples: Any, label: str, fields: Sequence[str] = ("ground_truth", "predictions")) -> Any:
    """Samples holding ``label`` in any of ``fields``, with every other class hidden in them.

    Raises:
        ValueError: when no field has that class; the message lists the classes there are.
    """
    F = require_fiftyone().ViewField
    schema = samples.get_field_schema()
    fields = [f for f in fields if f in schema]
    if not fields:
        raise ValueError(f"None of the fields are on the dataset; its fields: {list(schema)}.")
    known: set[str] = set()
    for f in fields:
        known |= set(stored_classes(samples, f) or []) | set(samples.distinct(f"{f}.detections.label"))
    if label not in known:
        raise ValueError(f"label={label!r} is not a class of {fields}; classes: {sorted(known)}.")
    view = samples
    for f in fields:
        view = view.filter_labels(f, F("label") == label, only_matches=False)
    has_any = F(f"{fields[0]}.detections").length() > 0
    for f in fields[1:]:
        has_any = has_any | (F(f"{f}.detections").length() > 0)
    return view.match(has_any)
