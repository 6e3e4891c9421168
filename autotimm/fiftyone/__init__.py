"""FiftyOne integration: browse ground truth and predictions together, find errors, fix labels,
retrain.

    import autotimm.fiftyone as atfo
    dataset = atfo.to_dataset(datamodule, "val")          # ground_truth field
    atfo.add_predictions(dataset, model)                  # predictions field
    ev = atfo.evaluate(dataset)                           # eval / eval_tp / eval_fp / eval_fn
    session = atfo.launch(atfo.false_positives(dataset))  # the App, on 127.0.0.1
    atfo.close(session)
    dm = atfo.to_datamodule(dataset.match_tags("bad", bool=False), "runs/fixed")

FiftyOne is an optional extra (``pip install 'autotimm[fiftyone]'``). ``import autotimm`` never
imports it; importing this package only checks that it is installed, and FiftyOne itself (and its
database) load on the first call.
"""

from __future__ import annotations

from autotimm._lazy import lazy_getattr

from autotimm.fiftyone._deps import INSTALL_HINT, fiftyone_available, missing_error

if not fiftyone_available():
    raise missing_error()

_EXPORTS: dict[str, str] = {
    "to_dataset": "autotimm.fiftyone.dataset",
    "add_predictions": "autotimm.fiftyone.predictions",
    "set_predictions": "autotimm.fiftyone.predictions",
    "resolve_class_names": "autotimm.fiftyone.predictions",
    "evaluate": "autotimm.fiftyone.evaluation",
    "Evaluation": "autotimm.fiftyone.evaluation",
    "false_positives": "autotimm.fiftyone.views",
    "false_negatives": "autotimm.fiftyone.views",
    "low_iou_matches": "autotimm.fiftyone.views",
    "worst_samples": "autotimm.fiftyone.views",
    "only_class": "autotimm.fiftyone.views",
    "launch": "autotimm.fiftyone.app",
    "close": "autotimm.fiftyone.app",
    "export_coco": "autotimm.fiftyone.export",
    "to_datamodule": "autotimm.fiftyone.export",
    "xyxy_to_relative_xywh": "autotimm.fiftyone.boxes",
    "relative_xywh_to_xyxy": "autotimm.fiftyone.boxes",
    "to_fiftyone_detections": "autotimm.fiftyone.labels",
    "from_fiftyone_detections": "autotimm.fiftyone.labels",
}

__all__ = sorted(_EXPORTS) + ["INSTALL_HINT"]


__getattr__ = lazy_getattr(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return __all__
