"""``python -m autotimm.export`` / ``autotimm export``: checkpoint -> ONNX file, with a parity check.

It sits beside the ``autotimm`` command rather than inside :mod:`autotimm.export`: it loads an
``ObjectDetector``, whose ``to_onnx`` uses :mod:`autotimm.export`, so keeping it out of that package
keeps the import graph free of cycles.

Example:
    python -m autotimm.export --checkpoint runs/best.ckpt --output detector.onnx --image-size 320 --e2e --dynamic
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from autotimm.export.metadata import read_metadata
from autotimm.export.onnx import DEFAULT_OPSET
from autotimm.export.parity import check_parity


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autotimm.export",
        description="Export an ObjectDetector checkpoint to ONNX and check it against PyTorch.",
    )
    parser.add_argument("--checkpoint", required=True, help="Lightning .ckpt written while training an ObjectDetector.")
    parser.add_argument("--output", required=True, help="path of the .onnx file to write.")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square input size, a multiple of 32 (the backbone's stride); default: the training size (else 640).")
    parser.add_argument("--e2e", action="store_true", help="put decode + NMS in the graph (outputs boxes/scores/labels/num_detections).")
    parser.add_argument("--dynamic", action="store_true", help="dynamic height and width: one file for any multiple of 32.")
    parser.add_argument("--half", action="store_true", help="float16 network (for GPU execution providers); inputs and outputs stay float32.")
    parser.add_argument("--check-sizes", type=int, nargs="*", default=None,
                        help="sizes for the parity check of a --dynamic file; default: the export size, 320, 416 and 640.")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, 11 to 20 (default {DEFAULT_OPSET}).")
    parser.add_argument("--score-thresh", type=float, default=None, help="score threshold; default: the model's.")
    parser.add_argument("--nms-thresh", type=float, default=None, help="NMS IoU threshold; default: the model's.")
    parser.add_argument("--max-detections", type=int, default=None, help="detections per image; default: the model's.")
    parser.add_argument("--images", nargs="*", default=None, help="images for the parity check; default: two synthetic ones.")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check.")
    return parser


def load_detector(checkpoint: str | Path) -> Any:
    """An :class:`~autotimm.detector.ObjectDetector` from a checkpoint, on CPU, in eval mode.

    The backbone is rebuilt with ``pretrained=False``: its weights come from the checkpoint, so no
    model hub (or local weights file) is needed.
    """
    from autotimm.detector import ObjectDetector
    from autotimm.models.backbone import FeatureBackboneConfig

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: '{path}'.")
    state = torch.load(str(path), map_location="cpu", weights_only=True)  # our config classes are allow-listed
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    if not hparams or "backbone" not in hparams:
        raise ValueError(
            f"'{path}' has no ObjectDetector hyperparameters (keys: {sorted(state) if isinstance(state, dict) else type(state).__name__}); "
            "pass a checkpoint saved by Lightning while training an ObjectDetector."
        )
    backbone = hparams["backbone"]
    if isinstance(backbone, str):
        backbone = FeatureBackboneConfig(backbone, pretrained=False)
    elif isinstance(backbone, dict):
        backbone = FeatureBackboneConfig(**{**backbone, "pretrained": False, "weights_file": None})
    else:
        backbone = dataclasses.replace(backbone, pretrained=False, weights_file=None)
    model = ObjectDetector.load_from_checkpoint(str(path), map_location="cpu", backbone=backbone, compile_model=False, deterministic=False)
    return model.eval()


def parity_images(model: Any, image_size: int, paths: Sequence[str] | None) -> torch.Tensor:
    """Normalised batch for the parity check: the given images, or two fixed synthetic ones."""
    if paths:
        return model.preprocess(list(paths), image_size)
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (2, 3, image_size, image_size), dtype=torch.uint8, generator=g)
    return model.normalize(noise)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0 on success, 1 when the parity check fails."""
    args = build_parser().parse_args(argv)
    model = load_detector(args.checkpoint)
    size = model.resolved_image_size(args.image_size)
    post = dict(score_thresh=args.score_thresh, nms_thresh=args.nms_thresh, max_detections=args.max_detections)
    path = model.to_onnx(args.output, opset_version=args.opset, image_size=size, include_postprocess=args.e2e,
                         dynamic=args.dynamic, half=args.half, **post)
    meta = read_metadata(path)
    mb = Path(path).stat().st_size / 2**20
    kind = "end-to-end (decode + NMS inside)" if args.e2e else "raw per-level outputs"
    shape = f"[B, 3, H, W] (H, W multiples of {meta.size_multiple}; default {size})" if args.dynamic else f"[B, 3, {size}, {size}]"
    print(f"wrote {path} ({mb:.1f} MiB, {kind}, {meta.precision}, input {shape}, opset {args.opset}, {meta.exporter} exporter)")
    if args.no_check:
        return 0
    sizes = [size]
    if args.dynamic:
        sizes = args.check_sizes or sorted({size, 320, 416, 640})
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = None
        if args.e2e and not args.dynamic:  # the raw maps too, from a raw file at the same size
            raw_path = model.to_onnx(str(Path(tmp) / "raw.onnx"), opset_version=args.opset, image_size=size, half=args.half, **post)
        for check_size in sizes:
            images = parity_images(model, check_size, args.images)
            report = check_parity(model, path, images, raw_onnx_path=raw_path if check_size == size else None)
            print(f"parity check on {images.shape[0]} images at {check_size}x{check_size} ({meta.precision}):")
            print(report)
            ok = ok and report.ok(raw_tol=5e-2 if args.half else 1e-3)
            if report.num_detections == (0, 0):
                print("note: no detections on these images, so only the raw outputs were compared; pass --images with real photos.")
    if not ok:
        print("PARITY CHECK FAILED: the ONNX file does not reproduce the PyTorch model.", file=sys.stderr)
        return 1
    return 0
