"""The two torchmetrics internals autotimm relies on, each behind one function.

torchmetrics has no public way to list a metric's per-item list states (``dist_reduce_fx=None``)
or to drop its cached ``compute()`` result after the states were replaced; the multi-process mAP
gather (:mod:`autotimm.metrics.manager`) needs both. ``tests/metrics/test_torchmetrics_internals.py``
fails loudly when a torchmetrics release changes them.
"""

from __future__ import annotations

from typing import Any


def per_item_list_states(metric: Any) -> list[str]:
    """Names of the list states of ``metric`` that keep one entry per item (no reduction).

    Raises:
        RuntimeError: torchmetrics no longer keeps ``Metric._reductions`` as a dict.
    """
    reductions = getattr(metric, "_reductions", None)
    if not isinstance(reductions, dict):
        raise RuntimeError(_changed("Metric._reductions (state name -> dist_reduce_fx)"))
    return [name for name, fx in reductions.items() if fx is None and isinstance(getattr(metric, name), list)]


def forget_computed(metric: Any) -> None:
    """Drop the cached ``compute()`` result, so the next ``compute()`` reads the replaced states.

    Raises:
        RuntimeError: torchmetrics no longer caches in ``Metric._computed``.
    """
    if not hasattr(metric, "_computed"):
        raise RuntimeError(_changed("Metric._computed (the cached compute() result)"))
    metric._computed = None


def _changed(what: str) -> str:
    import torchmetrics

    return (
        f"torchmetrics {torchmetrics.__version__} changed {what}, which autotimm's multi-process mAP gather "
        "uses; install the torchmetrics version autotimm was tested with (see pyproject.toml) or report it."
    )
