"""``ObjectDetector.evaluate``: run a model over an evaluation set exactly as validation does (same
letterbox, same ``detect`` settings, boxes mapped back to the original frame) and build the report."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch

from autotimm.evaluation.report import EvaluationReport, build_report
from autotimm.utils.precision import resolve_precision

FORMAT_BY_SUFFIX = {".json": "coco", ".csv": "csv", ".yaml": "yolo", ".yml": "yolo", ".txt": "voc"}


def evaluate(
    model: Any,
    data: Any,
    *,
    images_dir: str | os.PathLike | None = None,
    format: Literal["coco", "voc", "yolo", "csv"] | None = None,
    split: Literal["val", "test"] = "val",
    gt_field: str = "ground_truth",
    iou_thresh: float = 0.5,
    score_thresh: float | None = None,
    batch_size: int = 8,
    precision: str = "auto",
    progress: bool | None = None,
    tile: int | None = None,
    overlap: float = 0.2,
) -> EvaluationReport:
    """See :meth:`autotimm.ObjectDetector.evaluate` (this is its body)."""
    coco_ious = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    if not any(abs(iou_thresh - v) < 1e-6 for v in coco_ious):  # checked before the model runs
        raise ValueError(f"evaluate(iou_thresh={iou_thresh!r}): expected one of COCO's IoU thresholds {coco_ious}.")
    if score_thresh is not None and not 0.0 <= score_thresh <= 1.0:
        raise ValueError(f"evaluate(score_thresh={score_thresh!r}): expected a float in [0, 1], or None for the best-F1 threshold.")
    if split not in ("val", "test"):
        raise ValueError(f"evaluate(split={split!r}): expected 'val' or 'test'.")
    tiling = None
    if tile is not None:
        from autotimm.tiling import TileConfig

        tiling = TileConfig(tile, overlap)  # checks both values before anything runs
    if _is_fiftyone(data):
        with tempfile.TemporaryDirectory(prefix="autotimm-eval-") as tmp:
            from autotimm.fiftyone.export import to_datamodule

            dm = to_datamodule(data, tmp, val=data, label_field=gt_field, classes=model.class_names,
                               image_size=model.resolved_image_size(), batch_size=batch_size, num_workers=0,
                               tile=tile, tile_overlap=overlap)
            return evaluate(model, dm, iou_thresh=iou_thresh, score_thresh=score_thresh, precision=precision, progress=progress)
    dm = _datamodule(model, data, images_dir, format, split, batch_size, tiling)
    names = list(dm.class_names)
    if model.class_names and list(model.class_names) != names:
        raise ValueError(
            f"The model's classes {list(model.class_names)} differ from the evaluation data's {names}; labels would "
            "mean different things. Evaluate on data with the model's classes (in the same order)."
        )
    if dm.num_classes != model.num_classes:
        raise ValueError(f"The model has {model.num_classes} classes but the evaluation data has {dm.num_classes} ({names}).")
    stage = "validate" if split == "val" else "test"
    dm.setup(stage)
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    preds, targets = collect(model, loader, precision=precision, progress=progress, tiling=getattr(dm, "tiling", None))
    return build_report(preds, targets, names, iou_thresh=iou_thresh, score_thresh=score_thresh)


def collect(model: Any, loader: Any, precision: str = "auto", progress: bool | None = None,
            tiling: Any = None) -> tuple[list[dict], list[dict]]:
    """Detections and ground truth of every image of a detection loader, in the ORIGINAL frame (what
    ``validation_step`` hands the mAP metric). Whole-image batches (lists, from a tiled data module)
    are predicted with tiles (``tiling``: a TileConfig; default the model's)."""
    from tqdm.auto import tqdm

    from autotimm.data.letterbox import to_original_frame

    device = model.device
    use_bf16 = resolve_precision(precision, device.type) == "bf16"
    was_training = model.training
    model.eval()
    preds: list[dict] = []
    targets: list[dict] = []
    show = len(loader) > 2 if progress is None else bool(progress)
    try:
        with torch.inference_mode():
            for images, batch_targets in tqdm(loader, desc="evaluate", unit="batch", disable=not show):
                if isinstance(images, list):  # whole images: tiled predict, boxes already in the ORIGINAL frame
                    dets = [{k: v.cpu() for k, v in d.items()} for d in model.detect_whole_images(images, tiling)]
                    p, t = to_original_frame(dets, batch_targets)
                    preds += p
                    targets += t
                    continue
                inputs = model.normalize(images.to(device))
                if use_bf16:
                    inputs = inputs.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    outputs = model.raw_outputs(inputs)
                dets = model.detect(outputs, tuple(inputs.shape[-2:]))
                dets = [{k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in d.items()} for d in dets]
                p, t = to_original_frame(dets, batch_targets)
                preds += p
                targets += t
    finally:
        model.train(was_training)
    return preds, targets


def _is_fiftyone(data: Any) -> bool:
    return type(data).__module__.startswith("fiftyone.")


def _datamodule(model: Any, data: Any, images_dir: Any, format: str | None, split: str, batch_size: int,
                tiling: Any = None) -> Any:
    from autotimm.data.datamodule import DetectionDataModule

    if isinstance(data, DetectionDataModule):
        if tiling is not None and data.tiling != tiling:
            raise ValueError(
                f"evaluate(tile={tiling.tile}, overlap={tiling.overlap}): the data module given tiles with "
                f"tile={data.tile}, tile_overlap={data.tile_overlap}; build it with those tile settings or drop tile=."
            )
        if split not in data.sources:
            raise ValueError(f"evaluate(split={split!r}): the data module has no {split} split (it has {list(data.sources)}).")
        return data
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise FileNotFoundError(f"evaluate({str(data)!r}): no such annotation file or folder.")
        fmt = format or FORMAT_BY_SUFFIX.get(path.suffix.lower(), "voc" if path.is_dir() else None)
        if fmt is None:
            raise ValueError(f"evaluate({str(data)!r}): cannot tell the annotation format from '{path.suffix}'; pass format='coco' | 'voc' | 'yolo' | 'csv'.")
        return DetectionDataModule(
            **{split: path}, format=fmt, images_dir=images_dir, image_size=model.resolved_image_size(),
            batch_size=batch_size, num_workers=0, class_names=model.class_names if fmt in ("voc", "csv") else None,
            tile=tiling.tile if tiling else None, tile_overlap=tiling.overlap if tiling else 0.2,
        )
    raise TypeError(
        f"evaluate() cannot read {type(data).__name__}; pass a DetectionDataModule, an annotation file (COCO json, "
        "YOLO data.yaml, CSV, VOC folder) with images_dir=..., or a FiftyOne dataset/view."
    )
