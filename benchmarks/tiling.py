"""Large images, small objects: a model trained on tiles, predicted plain (letterboxed) vs tiled.

    python -m benchmarks.tiling accuracy [--work DIR] [--steps 300]   # train on tiles (cached), mAP table
    python -m benchmarks.tiling speed [--work DIR] [--repeats 3]      # megapixels/s, plain vs tiled (vs SAHI)
    python -m benchmarks.tiling sahi [--work DIR]                     # the same weights through SAHI's slicing

Data: the synthetic large-scene set (:func:`autotimm.data.synthetic.write_large_scenes`: 2,000-2,400 px
images with 200-400 shapes of 8-60 px, COCO json), generated at run time in ``--work``; nothing large
is committed. The model (resnet18 FCOS, from scratch, seeded) trains on 320 px tiles of the training
scenes (``DetectionDataModule(tile=320)``) and is kept in ``--work/tiles.ckpt`` so the later parts reuse it.

mAP: pycocotools' COCOeval on the whole validation images in original pixels, with maxDets
1/10/1000 (a scene holds hundreds of objects; COCO's usual 100 would cap recall), AP over IoU
0.50:0.95 and AP50 from its precision array.

SAHI (benchmark-only; needs ``sahi`` in a separate venv, see RESULTS.md): the same weights wrapped in
a ``sahi.models.base.DetectionModel`` whose batched inference calls the model's own forward on
padded slices, sliced by ``get_sliced_prediction`` with the same slice size, overlap, batch size,
score threshold and class-aware NMS at the model's IoU threshold; no standard (full-image) pass.

The accuracy part is deterministic and may run anywhere; the speed part must run on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

TILE = 320
DEFAULT_WORK = Path("/tmp/autotimm-bench-tiling")


# ---------------------------------------------------------------------- data and model
SCENES = {"train": 3, "val": 2}  # images per split; --train-scenes / --val-scenes change them


def make_scenes(work: Path, seed: int = 0) -> tuple[Path, Path]:
    """The large-scene set in ``work/scenes`` (written once)."""
    from autotimm.data.synthetic import write_large_scenes

    out = work / "scenes"
    paths = out / "train.json", out / "val.json"
    if not all(p.is_file() for p in paths):
        write_large_scenes(out, "train", SCENES["train"], seed=seed)
        write_large_scenes(out, "val", SCENES["val"], seed=seed)
    return paths


def trained_model(work: Path, steps: int = 300, seed: int = 0) -> Any:
    """resnet18 FCOS trained ``steps`` steps on TILE px tiles of the training scenes (cached in ``work``)."""
    import lightning as L

    from autotimm import DetectionDataModule, FeatureBackboneConfig, ObjectDetector

    ckpt = work / "tiles.ckpt"
    if ckpt.is_file():
        return ObjectDetector.load_from_checkpoint(ckpt, map_location="cpu", compile_model=False).eval()
    train, val = make_scenes(work)
    dm = DetectionDataModule(train=train, val=val, image_size=TILE, tile=TILE, tile_overlap=0.2, batch_size=8,
                             num_workers=2, augment="default", shuffle_seed=seed, tile_dir=work / "tiles")
    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, lr=1e-3,
                           compile_model=False, seed=seed, scheduler=None, max_detections_per_image=300,
                           fpn_channels=128, head_num_convs=2)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        limit_val_batches=0, enable_model_summary=False, deterministic=False)
    L.seed_everything(seed, workers=True, verbose=False)
    trainer.fit(model, dm)
    trainer.save_checkpoint(ckpt)
    return model.eval()


def ground_truth(work: Path) -> tuple[list[str], list[dict[str, torch.Tensor]]]:
    """Validation image paths and their boxes/labels (original pixels)."""
    from autotimm.data.readers import read_annotations

    _, val = make_scenes(work)
    records = read_annotations("coco", val, None, None, split="val").records
    return [str(r.image_path) for r in records], [
        {"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.labels)} for r in records
    ]


# ---------------------------------------------------------------------- mAP with many detections
def coco_ap(preds: list[dict[str, Any]], targets: list[dict[str, Any]], max_dets: int = 1000) -> dict[str, float]:
    """AP (IoU .50:.95) and AP50 from pycocotools' COCOeval with maxDets [1, 10, ``max_dets``]."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, gts, dts = [], [], []
    for image_id, (p, t) in enumerate(zip(preds, targets), start=1):
        images.append({"id": image_id})
        for (x1, y1, x2, y2), label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            gts.append({"id": len(gts) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 0,
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        for (x1, y1, x2, y2), label, score in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
            dts.append({"image_id": image_id, "category_id": int(label), "score": float(score),
                        "bbox": [x1, y1, x2 - x1, y2 - y1]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": gts, "categories": [{"id": k} for k in range(3)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        if not dts:
            return {"AP": 0.0, "AP50": 0.0, "detections": 0}
        evaluator = COCOeval(coco, coco.loadRes(dts), iouType="bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # [T, R, K], area "all", maxDets max_dets
    ap = float(precision[precision > -1].mean()) if (precision > -1).any() else 0.0
    p50 = precision[0]
    ap50 = float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0
    return {"AP": ap, "AP50": ap50, "detections": len(dts)}


# ---------------------------------------------------------------------- the ways to predict
def predict_plain(model: Any, paths: list[str]) -> list[dict[str, torch.Tensor]]:
    return [dict(r) for r in model.predict(paths, image_size=TILE, precision="fp32", max_detections=1000)]


def predict_tiled(model: Any, paths: list[str], batch_size: int = 8) -> list[dict[str, torch.Tensor]]:
    return [dict(r) for r in model.predict(paths, tile=TILE, overlap=0.2, batch_size=batch_size, precision="fp32",
                                           progress=False)]


def sahi_model(model: Any, batch_size: int = 8) -> Any:
    """The model as a SAHI ``DetectionModel``: slices padded to TILE and run as one batch."""
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction

    from autotimm.inference import _detect_canvases

    class AutotimmSahiModel(DetectionModel):
        def load_model(self) -> None:
            self.model = model

        def set_model(self, m: Any, **kwargs: Any) -> None:
            self.model = m

        @property
        def num_categories(self) -> int:
            return model.num_classes

        @property
        def has_mask(self) -> bool:
            return False

        @property
        def category_names(self) -> list[str]:
            return list(model.class_names or range(model.num_classes))

        def perform_inference(self, image: np.ndarray) -> None:
            self.perform_batch_inference([image])

        def perform_batch_inference(self, images: list[np.ndarray]) -> None:
            canvas = torch.full((len(images), 3, TILE, TILE), 114, dtype=torch.uint8)
            for i, im in enumerate(images):
                canvas[i, :, : im.shape[0], : im.shape[1]] = torch.from_numpy(im).permute(2, 0, 1)
            dets = _detect_canvases(model, canvas, score_thresh=self.confidence_threshold, nms_thresh=None,
                                    max_detections=None, use_bf16=False)
            limits = [torch.tensor([im.shape[1], im.shape[0]] * 2, dtype=torch.float32) for im in images]
            self._original_predictions = [{**d, "boxes": torch.minimum(d["boxes"], lim)} for d, lim in zip(dets, limits)]

        def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=None, full_shape_list=None):  # noqa: ANN001
            shifts = shift_amount_list or [[0, 0]] * len(self._original_predictions)
            shapes = full_shape_list or [None] * len(self._original_predictions)
            if shifts and isinstance(shifts[0], (int, float)):
                shifts = [shifts]
            if shapes and shapes[0] is not None and isinstance(shapes[0], (int, float)):
                shapes = [shapes]
            out = []
            for det, shift, shape in zip(self._original_predictions, shifts, shapes):
                out.append([
                    ObjectPrediction(bbox=box, category_id=int(label), category_name=str(int(label)), score=float(score),
                                     shift_amount=list(shift), full_shape=shape)
                    for box, label, score in zip(det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist())
                    if box[2] > box[0] and box[3] > box[1]
                ])
            self._object_prediction_list_per_image = out

    return AutotimmSahiModel(model=model, confidence_threshold=model.score_thresh, device="cpu", load_at_init=True)


def predict_sahi(model: Any, paths: list[str], batch_size: int = 8) -> list[dict[str, torch.Tensor]]:
    from PIL import Image
    from sahi.predict import get_sliced_prediction

    wrapped = sahi_model(model, batch_size)
    out = []
    for path in paths:
        result = get_sliced_prediction(
            np.asarray(Image.open(path).convert("RGB")), wrapped, slice_height=TILE, slice_width=TILE,
            overlap_height_ratio=0.2, overlap_width_ratio=0.2, perform_standard_pred=False, postprocess_type="NMS",
            postprocess_match_metric="IOU", postprocess_match_threshold=model.nms_thresh,
            postprocess_class_agnostic=False, verbose=0, batch_size=batch_size,
        )
        preds = result.object_prediction_list
        out.append({
            "boxes": torch.tensor([p.bbox.to_xyxy() for p in preds], dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor([p.score.value for p in preds], dtype=torch.float32),
            "labels": torch.tensor([p.category.id for p in preds], dtype=torch.int64),
        })
    return out


# ---------------------------------------------------------------------- parts
def accuracy(work: Path, steps: int) -> dict[str, Any]:
    """mAP of plain vs tiled predict (and SAHI when importable) on the validation scenes."""
    torch.manual_seed(0)
    model = trained_model(work, steps)
    paths, targets = ground_truth(work)
    rows = {"plain (letterbox to 320)": coco_ap(predict_plain(model, paths), targets),
            "tiled (320 px tiles, overlap 0.2)": coco_ap(predict_tiled(model, paths), targets)}
    with contextlib.suppress(ImportError):
        rows["SAHI slicing, same weights"] = coco_ap(predict_sahi(model, paths), targets)
    plain, tiled = rows["plain (letterbox to 320)"]["AP"], rows["tiled (320 px tiles, overlap 0.2)"]["AP"]
    result = {"rows": rows, "ratio_tiled_over_plain": tiled / plain if plain > 0 else float("inf"),
              "val_objects": sum(len(t["boxes"]) for t in targets), "steps": steps}
    (work / "accuracy.json").write_text(json.dumps(result, indent=1))
    return result


def speed(work: Path, repeats: int, batch_size: int = 8) -> dict[str, float]:
    """Megapixels/s of plain and tiled predict (and SAHI when importable), best of ``repeats`` runs."""
    model = trained_model(work)
    paths, _ = ground_truth(work)
    from autotimm.data.image_io import read_image_size

    megapixels = sum(w * h for w, h in map(read_image_size, paths)) / 1e6
    ways = {"plain": predict_plain, "tiled": lambda m, p: predict_tiled(m, p, batch_size)}
    with contextlib.suppress(ImportError):
        import sahi  # noqa: F401

        ways["sahi"] = lambda m, p: predict_sahi(m, p, batch_size)
    rates = {}
    for name, fn in ways.items():
        fn(model, paths[:1])  # warm-up
        best = min(_timed(fn, model, paths) for _ in range(repeats))
        rates[name] = megapixels / best
    return rates


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["accuracy", "speed", "sahi"])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-scenes", type=int, default=SCENES["train"])
    parser.add_argument("--val-scenes", type=int, default=SCENES["val"])
    args = parser.parse_args(argv)
    SCENES.update(train=args.train_scenes, val=args.val_scenes)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "accuracy":
        result = accuracy(args.work, args.steps)
        for name, row in result["rows"].items():
            print(f"{name:<36} AP {row['AP']:.4f}  AP50 {row['AP50']:.4f}  detections {row['detections']}")
        print(f"tiled / plain AP: {result['ratio_tiled_over_plain']:.1f}x  ({result['val_objects']} objects, {args.steps} steps)")
    elif args.part == "speed":
        for name, rate in speed(args.work, args.repeats).items():
            print(f"{name:<8} {rate:.3f} megapixels/s")
    else:
        model = trained_model(args.work)
        paths, targets = ground_truth(args.work)
        print("SAHI", coco_ap(predict_sahi(model, paths), targets))


if __name__ == "__main__":
    main()
