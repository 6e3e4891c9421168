"""Turn a metric's ``compute()`` output into flat ``{stage}/{name}...`` scalars for ``self.log``.

Rules (``prefix`` is ``"{stage}/{config name}"``, e.g. ``"val/mAP"``):

* A scalar tensor logs as ``prefix``.
* A dict logs its FIRST key (the headline; ``"map"`` for MeanAveragePrecision, ``"iou"`` for
  IntersectionOverUnion) as ``prefix``. Every other scalar entry logs as ``prefix_<rest>``, where
  ``<rest>`` is the key with the headline and one ``_`` stripped from its front when it starts
  that way, else the whole key. For MeanAveragePrecision:

  ==================  ======================
  torchmetrics key    logged name
  ==================  ======================
  map                 val/mAP
  map_50, map_75      val/mAP_50, val/mAP_75
  map_small/medium/   val/mAP_small, ...
  large
  mar_1/10/100        val/mAP_mar_1, val/mAP_mar_10, val/mAP_mar_100
  mar_small/...       val/mAP_mar_small, ...
  ==================  ======================

* Per-class entries (keys ending in ``_per_class`` with the class ids in ``"classes"``, or keys
  like ``"iou/cl_3"``) are logged only when the metric was built with ``class_metrics=True``, as
  ``prefix[_<rest>]_class_<class name>``: ``val/mAP_class_person``,
  ``val/mAP_mar_100_class_person``.
  Without class names the class index is used (``val/mAP_class_3``).
* Everything else that is not a one-element tensor (extended summaries, ``"classes"``) is skipped.

Undefined values keep torchmetrics' (and COCOeval's) convention of ``-1``: e.g. ``val/mAP_small`` is
-1 when the evaluated images hold no small ground-truth box.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

_CLASS_KEY = re.compile(r"^(?P<base>.+)/cl_(?P<index>\d+)$")
_UNSAFE = re.compile(r"[^0-9A-Za-z_.\-]+")


def sanitize_class_name(name: str) -> str:
    """Class name as it appears in a logged key: runs of characters other than letters, digits,
    ``_ . -`` become one ``_`` (``"traffic light"`` -> ``"traffic_light"``)."""
    return _UNSAFE.sub("_", str(name)).strip("_") or "_"


def class_label(index: int, class_names: Sequence[str] | None) -> str:
    """Name used for class ``index`` in per-class keys: the sanitized class name, else the index."""
    if class_names is None:
        return str(index)
    if 0 <= index < len(class_names):
        return sanitize_class_name(class_names[index])
    warnings.warn(
        f"Metric reported class index {index}, outside class_names (length {len(class_names)}); "
        f"logging it as class_{index}. Labels must be contiguous 0..K-1.",
        stacklevel=3,
    )
    return str(index)


def _suffix(key: str, headline: str) -> str:
    if key == headline:
        return ""
    if key.startswith(headline + "_"):
        return key[len(headline) + 1 :]
    return key


def _join(prefix: str, *parts: str) -> str:
    return "_".join([prefix, *(p for p in parts if p)])


def _is_scalar(value: Any) -> bool:
    return isinstance(value, Tensor) and value.numel() == 1


def flatten_metric_output(
    prefix: str,
    output: Tensor | Mapping[str, Any],
    class_names: Sequence[str] | None = None,
    class_metrics: bool = False,
) -> tuple[dict[str, Tensor], str | None]:
    """Flatten one metric's ``compute()`` output into loggable scalars (rules in the module doc).

    Args:
        prefix: ``"{stage}/{metric name}"``, e.g. ``"val/mAP"``.
        output: The metric's ``compute()`` result: a tensor or a dict of tensors.
        class_names: Optional class names indexed by label (contiguous 0..K-1).
        class_metrics: Whether per-class entries were requested
            (``params={"class_metrics": True}``).

    Returns:
        ``(values, headline)``: ``values`` maps logged names to 0-d tensors (same device and dtype
        as the metric returned), in the metric's key order; ``headline`` is the logged name of the
        headline value, or None when nothing scalar was found.
    """
    if isinstance(output, Tensor):
        if not _is_scalar(output):
            warnings.warn(
                f"{prefix}: the metric returned a tensor of shape {tuple(output.shape)}; only "
                "one-element values are logged, so it is skipped.",
                stacklevel=3,
            )
            return {}, None
        return {prefix: output.reshape(())}, prefix
    if not isinstance(output, Mapping) or not output:
        raise ValueError(
            f"{prefix}: expected the metric's compute() to return a Tensor or a non-empty dict, "
            f"got {type(output).__name__}."
        )

    headline = next(iter(output))
    values: dict[str, Tensor] = {}
    classes = output.get("classes")
    for key, value in output.items():
        if key == "classes":
            continue
        if key.endswith("_per_class"):
            if not (class_metrics and isinstance(value, Tensor) and isinstance(classes, Tensor)):
                continue
            flat, ids = value.reshape(-1), classes.reshape(-1)
            if flat.numel() != ids.numel():  # the -1 placeholder of an empty evaluation
                continue
            rest = _suffix(key[: -len("_per_class")], headline)
            for class_id, class_value in zip(ids.tolist(), flat.unbind(0), strict=True):
                label = class_label(int(class_id), class_names)
                values[_join(prefix, rest, f"class_{label}")] = class_value
            continue
        match = _CLASS_KEY.match(key)
        if match is not None:
            if class_metrics and _is_scalar(value):
                label = class_label(int(match["index"]), class_names)
                rest = _suffix(match["base"], headline)
                values[_join(prefix, rest, f"class_{label}")] = value.reshape(())
            continue
        if _is_scalar(value):
            values[_join(prefix, _suffix(key, headline))] = value.reshape(())
    headline_name = prefix if prefix in values else None
    return values, headline_name
