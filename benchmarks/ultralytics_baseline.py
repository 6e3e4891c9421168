"""Ultralytics YOLOv8 from scratch beside the presets: the same photos, split, size, batch and scorer.

The accuracy-vs-time table (:mod:`benchmarks.time_to_accuracy`) compares the presets with the nano /
small detectors of the most used kit. This module produces that kit's rows in the same two JSON
files' format, so ``time_to_accuracy table`` reads them beside autotimm's:

* ``accuracy``: ``yolov8n.yaml`` / ``yolov8s.yaml`` built from their yaml (no weights,
  ``pretrained=False``) and trained with Ultralytics' default recipe (its optimizer choice, warm-up,
  mosaic with close-mosaic, EMA) on the bundled raccoon photos (the real 160 / 40 split, written in
  Ultralytics' YOLO layout), 256 px, batch 8, seed 0, no loader workers, no validation during
  training. The EMA weights Ultralytics saves after every epoch are scored afterwards: Ultralytics'
  own ``predict`` (its validation settings: conf 0.001, IoU 0.7, 300 detections) on the 40 val
  photos, then pycocotools' COCOeval (:func:`autotimm.metrics.coco_map`) against the COCO json's boxes.
  Steps count batches, as autotimm's do (Ultralytics accumulates 8 batches per optimizer step at
  batch 8; the wall clock is spent per batch).
* ``timing``: seconds per training batch (loader included, Ultralytics' default workers, which are
  none on a CPU), the median over the batches of two epochs after the first few; Ultralytics' own
  torch thread count (``os.cpu_count() - 1`` on a CPU) unless ``--threads`` is given.
* ``inference``: each preset beside its Ultralytics counterpart in one process, at equal torch
  threads: forward GFLOPs at 256 px (:func:`benchmarks.flops.count_flops`), the bare forward pass,
  and ``predict`` (batch 1, the val photos decoded beforehand), Ultralytics also on a square canvas.

Ultralytics is a benchmark-only dependency (AGPL-3.0; autotimm never imports it). Install it in a
venv of its own that sees our ``.venv`` (so torch stays the same), then run from the repository root::

    python -m venv /tmp/ulvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/ulvenv/lib/python3.11/site-packages/autotimm.pth
    /tmp/ulvenv/bin/pip install -c constraints.txt ultralytics
    export PYTHONPATH=$PWD YOLO_OFFLINE=1
    /tmp/ulvenv/bin/python -m benchmarks.ultralytics_baseline timing --out ul_timing.json      # idle machine
    /tmp/ulvenv/bin/python -m benchmarks.ultralytics_baseline inference --out ul_inference.json  # idle machine
    /tmp/ulvenv/bin/python -m benchmarks.ultralytics_baseline accuracy --timing ul_timing.json --budget-minutes 5 --out ul_accuracy.json
    python -m benchmarks.time_to_accuracy table --accuracy tta_accuracy.json ul_accuracy.json --timing tta_timing.json ul_timing.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from benchmarks.time_to_accuracy import BATCH_SIZE, IMAGE_SIZE, SEED, STEPS_PER_EPOCH, epochs_for_budget

MODELS = ("yolov8n", "yolov8s")
# Ultralytics' validation settings (``model.val()`` defaults)
VAL_CONF, VAL_IOU, VAL_MAX_DET = 0.001, 0.7, 300


def _split(name: str) -> Any:
    """The bundled raccoon ``name`` split ("train" / "val") as autotimm's data module reads it: records
    with x1y1x2y2 boxes in original pixels and labels 0..K-1, in the json's image order."""
    from autotimm.data import example
    from autotimm.data.readers import read_annotations

    raccoon = example("raccoon")
    return read_annotations("coco", raccoon.train if name == "train" else raccoon.val, raccoon.images_dir)


def write_yolo_dataset(root: Path) -> Path:
    """The bundled raccoon split in Ultralytics' YOLO layout under ``root``; returns its data yaml.

    ``root/images/{train,val}/`` link to the bundled photos, ``root/labels/{train,val}/<stem>.txt``
    hold one ``class cx cy w h`` line per box (normalised by the image size), with the classes and
    boxes autotimm reads from the COCO json.
    """
    names: list[str] = []
    for split in ("train", "val"):
        annotations = _split(split)
        names = annotations.class_names
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for record in annotations.records:
            link = root / "images" / split / record.image_path.name
            if not link.exists():
                link.symlink_to(record.image_path)
            w, h = record.width, record.height
            lines = [
                f"{label} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
                for label, (x1, y1, x2, y2) in zip(record.labels.tolist(), record.boxes.tolist())
            ]
            (root / "labels" / split / f"{record.image_path.stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    data = root / "data.yaml"  # JSON is YAML
    data.write_text(json.dumps({"path": str(root), "train": "images/train", "val": "images/val",
                                "names": dict(enumerate(names))}, indent=1))
    return data


def val_set() -> tuple[list[Path], list[dict[str, torch.Tensor]]]:
    """The 40 val photos and their targets (original pixels, x1y1x2y2, labels 0..K-1), json order:
    the ground truth autotimm's own validation scores against."""
    records = _split("val").records
    targets = [{"boxes": torch.from_numpy(r.boxes), "labels": torch.from_numpy(r.labels),
                "iscrowd": torch.from_numpy(r.iscrowd).long()} for r in records]
    return [r.image_path for r in records], targets


def score(weights: Path, files: list[Path], targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """COCO mAP / mAP50 of an Ultralytics checkpoint on ``files``, through its own ``predict``."""
    from ultralytics import YOLO

    from autotimm.metrics import coco_map

    model = YOLO(str(weights))
    preds = []
    for f in files:
        r = model.predict(str(f), imgsz=IMAGE_SIZE, conf=VAL_CONF, iou=VAL_IOU, max_det=VAL_MAX_DET,
                          device="cpu", verbose=False)[0]
        preds.append({"boxes": r.boxes.xyxy.float().cpu(), "scores": r.boxes.conf.float().cpu(),
                      "labels": r.boxes.cls.long().cpu()})
    stats = coco_map(preds, targets)
    return {"map": stats["map"], "map_50": stats["map_50"]}


def train_and_score(name: str, epochs: int, work: Path) -> dict[str, Any]:
    """Train ``name`` from its yaml for ``epochs``; mAP of the EMA weights after every epoch."""
    from ultralytics import YOLO

    data = write_yolo_dataset(work / "data")
    kept = work / "epochs" / name
    kept.mkdir(parents=True, exist_ok=True)
    batches: list[int] = []

    def keep(trainer: Any) -> None:  # "on_model_save": last.pt now holds this epoch's EMA weights
        batches.append(len(trainer.train_loader))
        shutil.copy(trainer.last, kept / f"epoch{trainer.epoch + 1:03d}.pt")

    model = YOLO(f"{name}.yaml")
    model.add_callback("on_model_save", keep)
    start = time.perf_counter()
    model.train(data=str(data), epochs=epochs, imgsz=IMAGE_SIZE, batch=BATCH_SIZE, workers=0, device="cpu",
                pretrained=False, seed=SEED, deterministic=True, val=False, plots=False, amp=False,
                project=str(work / "runs"), name=name, exist_ok=True, verbose=False)
    seconds = time.perf_counter() - start
    files, targets = val_set()
    curve = []
    for ckpt in sorted(kept.glob("epoch*.pt")):
        epoch = int(re.fullmatch(r"epoch(\d+)\.pt", ckpt.name).group(1))
        row = {"epoch": epoch, "step": sum(batches[:epoch])} | score(ckpt, files, targets)
        curve.append(row)
        print(f"[accuracy] {name} epoch {epoch} step {row['step']}: mAP {row['map']:.4f} mAP50 {row['map_50']:.4f}", flush=True)
    return {"epochs": epochs, "steps_per_epoch": batches[0] if batches else 0, "curve": curve,
            "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
            "recipe": "Ultralytics defaults from the yaml; workers=0, val=False, seed 0"}


def time_training(name: str, work: Path, threads: int | None, epochs: int = 2, skip: int = 3) -> dict[str, Any]:
    """Seconds per training batch: the median within ``epochs`` epochs, after ``skip`` batches of each.

    ``threads``: torch threads for the training; None keeps Ultralytics' own choice (on the CPU it sets
    ``os.cpu_count() - 1``, so 1 on a 2-core machine, where autotimm uses 2).
    """
    from ultralytics import YOLO

    data = write_yolo_dataset(work / "data")
    stamps: list[tuple[int, float]] = []
    used: list[int] = []
    model = YOLO(f"{name}.yaml")
    if threads is not None:  # after Ultralytics' select_device has set its own count
        model.add_callback("on_pretrain_routine_end", lambda trainer: torch.set_num_threads(threads))
    model.add_callback("on_train_start", lambda trainer: used.append(torch.get_num_threads()))
    model.add_callback("on_train_batch_end", lambda trainer: stamps.append((trainer.epoch, time.perf_counter())))
    model.train(data=str(data), epochs=epochs, imgsz=IMAGE_SIZE, batch=BATCH_SIZE, device="cpu", pretrained=False,
                seed=SEED, val=False, plots=False, amp=False, project=str(work / "runs"), name=f"time_{name}",
                exist_ok=True, verbose=False)
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for epoch, t in stamps:
        by_epoch[epoch].append(t)
    steps = [b - a for ts in by_epoch.values() for a, b in zip(ts[skip:], ts[skip + 1:])]
    return {"s_per_step": statistics.median(steps), "steps_timed": len(steps), "torch_threads": used[0]}


# autotimm preset -> the Ultralytics model it is compared with at inference
PAIRS = {"nano": "yolov8n", "small": "yolov8s"}


def time_inference(pairs: dict[str, str], rounds: int, threads: int) -> dict[str, Any]:
    """Inference side by side in this process: each preset and its Ultralytics counterpart.

    Per model: forward GFLOPs and parameters at 256 x 256 (one class, :func:`benchmarks.flops.count_flops`),
    the bare forward pass on a [1, 3, 256, 256] batch, and the whole ``predict`` (pre- and
    post-processing, batch 1) on 8 val photos decoded beforehand (longest side 256). Models are
    untrained (from their constructors / yaml); ``rounds`` interleaved rounds, the median kept. Every
    call runs with ``threads`` torch threads (Ultralytics' predictor would set ``os.cpu_count() - 1``).
    """
    import numpy as np
    from PIL import Image
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from autotimm import FeatureBackboneConfig, ObjectDetector
    from autotimm.presets import DETECTOR_PRESETS
    from benchmarks.flops import count_flops

    files, _ = val_set()
    rgb = []
    for f in files[:8]:
        im = Image.open(f).convert("RGB")
        im.thumbnail((IMAGE_SIZE, IMAGE_SIZE))
        rgb.append(np.asarray(im))
    bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in rgb]  # Ultralytics takes arrays as BGR
    chw = [torch.from_numpy(im).permute(2, 0, 1).contiguous() for im in rgb]  # autotimm takes uint8 [3, H, W]
    x = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)

    runs: dict[str, dict[str, Any]] = {}
    for preset, ul in pairs.items():
        chosen = DETECTOR_PRESETS[preset]
        model = ObjectDetector(FeatureBackboneConfig(chosen.backbone, pretrained=False), num_classes=1,
                               compile_model=False, **chosen.recipe().model_kwargs).eval()
        yolo = YOLO(f"{ul}.yaml")
        yolo.model = DetectionModel(f"{ul}.yaml", nc=1, verbose=False)  # one class, as trained on raccoon
        # at Ultralytics' default confidence threshold (0.25): an untrained FCOS scores ~0.07 everywhere,
        # above autotimm's 0.05, and would time NMS over every point
        runs[preset] = {"net": model, "predict": lambda m=model: m.predict(chw, image_size=IMAGE_SIZE, batch_size=1, score_thresh=0.25,
                                                                        progress=False)}
        runs[ul] = {"net": yolo.model.float().eval(),
                    "predict": lambda y=yolo: [y.predict(im, imgsz=IMAGE_SIZE, device="cpu", verbose=False) for im in bgr],
                    # on the same square canvas as autotimm (Ultralytics' default pads only to a multiple of 32)
                    "predict_square": lambda y=yolo: [y.predict(im, imgsz=IMAGE_SIZE, rect=False, device="cpu", verbose=False)
                                                      for im in bgr]}
    out: dict[str, Any] = {}
    for name, r in runs.items():
        with torch.inference_mode():
            flops = count_flops(lambda: r["net"](x))
        out[name] = {"gflops": round(flops / 1e9, 2), "params_m": round(sum(p.numel() for p in r["net"].parameters()) / 1e6, 2),
                     "forward_ms": [], "predict_ms": []}
        r["forward"] = lambda net=r["net"]: [net(x) for _ in range(8)]
        with torch.inference_mode():
            r["forward"](), r["predict"]()  # warm-up (Ultralytics' predictor sets up here)
    for k in range(rounds):
        for name, r in runs.items():
            torch.set_num_threads(threads)
            with torch.inference_mode():
                out[name]["forward_ms"].append(_seconds(r["forward"]) * 1000 / 8)
                out[name]["predict_ms"].append(_seconds(r["predict"]) * 1000 / len(rgb))
                if "predict_square" in r:
                    out[name].setdefault("square_ms", []).append(_seconds(r["predict_square"]) * 1000 / len(rgb))
        print(f"[inference] round {k + 1}/{rounds}: " + ", ".join(f"{n} {out[n]['forward_ms'][-1]:.1f} ms" for n in runs), flush=True)
    for name in runs:
        out[name] |= {"forward_ms_per_image": statistics.median(out[name].pop("forward_ms")),
                      "infer_ms_per_image": statistics.median(out[name].pop("predict_ms"))}
        if "square_ms" in out[name]:
            out[name]["infer_square_ms_per_image"] = statistics.median(out[name].pop("square_ms"))
    return out


def _seconds(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy", help="train from the yaml, score every epoch's EMA weights (deterministic)")
    acc.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    acc.add_argument("--epochs", type=int, default=30)
    acc.add_argument("--timing", type=Path, default=None, help="train for the epochs that fit --budget-minutes at its s/step")
    acc.add_argument("--budget-minutes", type=float, default=5.0)
    acc.add_argument("--out", type=Path, required=True)
    tim = sub.add_parser("timing", help="s per training batch (run on an idle machine)")
    tim.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    tim.add_argument("--threads", type=int, default=None, help="torch threads (default: Ultralytics' cpu_count - 1)")
    tim.add_argument("--out", type=Path, required=True)
    inf = sub.add_parser("inference", help="presets and their Ultralytics counterparts side by side (idle machine)")
    inf.add_argument("--pairs", nargs="+", default=[f"{p}={u}" for p, u in PAIRS.items()], metavar="PRESET=MODEL")
    inf.add_argument("--rounds", type=int, default=5)
    inf.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads for every model")
    inf.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    machine = {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    if args.command == "inference":
        pairs = dict(item.partition("=")[::2] for item in args.pairs)
        bad = {p: u for p, u in pairs.items() if p not in PAIRS or u not in MODELS}
        if bad:
            raise SystemExit(f"--pairs {bad}: expected PRESET=MODEL with PRESET in {list(PAIRS)}, MODEL in {list(MODELS)}.")
        result = time_inference(pairs, args.rounds, args.threads) | {"_machine": machine}
        args.out.write_text(json.dumps(result, indent=1))
        return
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ul_bench_") as tmp:
        for name in args.models:
            if args.command == "timing":
                out[name] = time_training(name, Path(tmp), args.threads)
                out["_machine"] = machine
                print(f"[timing] {name}: {out[name]['s_per_step']:.3f} s/step", flush=True)
            else:
                epochs = args.epochs
                if args.timing is not None:
                    timing = json.loads(args.timing.read_text())
                    if name not in timing:
                        raise SystemExit(f"--timing {args.timing} has no s/step for {name!r}; run the timing command with it first.")
                    epochs = epochs_for_budget(args.budget_minutes, timing[name]["s_per_step"], STEPS_PER_EPOCH)
                print(f"[accuracy] {name}: {epochs} epochs", flush=True)
                out[name] = train_and_score(name, epochs, Path(tmp))
                out |= {"image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE, "seed": SEED}
            args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
