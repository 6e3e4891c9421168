"""``autotimm predict``: a checkpoint and a folder, glob, image or video -> drawn images (or a drawn video)
and a COCO-style ``predictions.json``; no annotation file needed.

    autotimm predict --checkpoint best.ckpt --source images/ --save-dir runs/predict
    autotimm predict --checkpoint best.ckpt --source clip.mp4 --save-dir runs/predict --draw-thresh 0.4

``predictions.json`` is a COCO dataset file: ``images`` (id, file_name, width, height; ``frame_index`` for
video frames), ``categories`` (id, name) and ``annotations`` (id, image_id, category_id, bbox [x, y, w, h]
pixels, area, iscrowd 0, score), so ``pycocotools.COCO`` and FiftyOne read it as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from autotimm.sources import VideoWriter, resolve, video_fps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autotimm predict",
        description="Detect objects with a trained checkpoint; write drawn images (or video) and predictions.json.",
        epilog="Without --source/--checkpoint/--save-dir, 'autotimm predict' is LightningCLI's predict subcommand "
               "(autotimm predict --config config.yaml --ckpt_path best.ckpt).",
    )
    parser.add_argument("--checkpoint", required=True, help="Lightning .ckpt written while training an ObjectDetector.")
    parser.add_argument("--source", required=True, help="an image, a folder of images, a glob ('data/*.jpg') or a video file.")
    parser.add_argument("--save-dir", required=True, help="folder for the drawn images / video and predictions.json (created).")
    parser.add_argument("--image-size", type=int, default=None, help="letterbox size; default: the training size.")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8).")
    parser.add_argument("--score-thresh", type=float, default=None, help="keep detections above this score; default: the model's.")
    parser.add_argument("--draw-thresh", type=float, default=0.25, help="draw detections scoring at least this (default 0.25).")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"), help="inference precision (default auto).")
    parser.add_argument("--no-draw", action="store_true", help="write predictions.json only.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0 on success."""
    args = build_parser().parse_args(argv)
    from autotimm.export_cli import load_detector

    source = resolve(args.source)  # a bad source fails before the checkpoint is loaded
    model = load_detector(args.checkpoint)
    out = Path(args.save_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(model.class_names) if model.class_names else [str(k) for k in range(model.num_classes)]
    mapping = dict(model.label_to_category_id or {})
    results = model.predict(args.source, image_size=args.image_size, batch_size=args.batch_size,
                            score_thresh=args.score_thresh, precision=args.precision, stream=True, progress=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    used: set[str] = set()
    video_path = out / f"{Path(args.source).stem}_pred.mp4" if source.video else None
    writer = VideoWriter(video_path, video_fps(args.source)) if video_path and not args.no_draw else None
    try:
        for image_id, r in enumerate(results, start=1):
            height, width = r.image_size
            entry: dict[str, Any] = {"id": image_id, "file_name": r.image_path or f"image_{image_id}", "width": width, "height": height}
            if r.frame_index is not None:
                entry["frame_index"] = r.frame_index
            images.append(entry)
            for record in r.to_coco(image_id, mapping):
                w, h = record["bbox"][2:]
                annotations.append({"id": len(annotations) + 1, **record, "area": w * h, "iscrowd": 0})
            if args.no_draw:
                continue
            if writer is not None:
                writer.write(r.draw(args.draw_thresh))
            else:
                r.save(out / _unique_name(r.image_path, image_id, used), score_thresh=args.draw_thresh)
    finally:
        if writer is not None:
            writer.__exit__(None, None, None)
    categories = [{"id": int(mapping.get(k, k)), "name": name} for k, name in enumerate(names)]
    (out / "predictions.json").write_text(json.dumps({"images": images, "categories": categories, "annotations": annotations}))
    drawn = "" if args.no_draw else (f", drawn video {video_path}" if video_path else f", {len(images)} drawn images")
    print(f"autotimm predict: {len(images)} {'frames' if source.video else 'images'}, {len(annotations)} detections "
          f"-> {out / 'predictions.json'}{drawn}")
    return 0


def _unique_name(image_path: str | None, image_id: int, used: set[str]) -> str:
    """The source file's name (PNG for in-memory images); a numbered name when two sources share one."""
    name = Path(image_path).name if image_path else f"image_{image_id}.png"
    if name in used:
        path = Path(name)
        name = f"{path.stem}_{image_id}{path.suffix}"
    used.add(name)
    return name
