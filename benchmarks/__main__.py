"""``python -m benchmarks [--quick | --full] [overrides]`` (``make bench`` runs the quick preset).

Prints every table and replaces the ``## Detectors (<mode> run)`` section of benchmarks/RESULTS.md
(other sections, such as "## Data loader", are kept). Any override of a preset's sizes makes it a
"custom" run, written to its own section.

    python -m benchmarks                      # quick: every section, under 10 minutes on 2 idle cores
    python -m benchmarks --full               # more repeats, both backbones everywhere, fp32 vs fast path mAP
    python -m benchmarks --sections speed --backbones resnet18 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.config import PRESETS, SECTIONS
from benchmarks.report import RESULTS

# flag -> BenchConfig field, for the overrides that turn a preset into a custom run
OVERRIDES: dict[str, type] = {
    "sections": str, "backbones": str, "image_size": int, "batch_size": int, "num_classes": int,
    "fpn_channels": int, "head_num_convs": int, "repeats": int, "warmup": int, "speed_contenders": str,
    "memory_backbones": str, "memory_contenders": str, "memory_steps": int, "accuracy_backbone": str, "accuracy_image_size": int,
    "accuracy_batch_size": int, "accuracy_steps": int, "accuracy_contenders": str, "accuracy_val_images": int,
    "accuracy_seeds": str,
    "eval_images": int, "eval_detections": int, "onnx_backbones": str,
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"sections: {', '.join(SECTIONS)}; contenders: library:arch:precision, e.g. autotimm:fcos:auto, "
        "torchvision:retinanet:bf16. Comma-separate lists.",
    )  # fmt: skip
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="the quick preset (default)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the full preset")
    for name, kind in OVERRIDES.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, metavar=kind.__name__.upper())
    parser.add_argument("--fp32-check", action="store_true", default=None, help="also train autotimm FCOS in fp32 (accuracy)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to update")
    parser.add_argument("--no-write", action="store_true", help="print only, write no RESULTS.md")
    parser.add_argument("--loader", action="store_true", help="also run benchmarks.loader_speed (appends to '## Data loader')")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: expected an int >= 1 (torch threads per process).")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is built with pretrained=False

    from benchmarks.runner import run_all, set_threads

    preset = args.mode or "quick"
    overrides = {name: getattr(args, name) for name in OVERRIDES}
    overrides["accuracy_fp32_check"] = args.fp32_check
    custom = {k: v for k, v in overrides.items() if v is not None}
    cfg = PRESETS[preset]().with_overrides(**custom)
    if custom:
        cfg = cfg.with_overrides(mode="custom")
    set_threads(args.threads)
    command = "python -m benchmarks" + ("" if not argv else " " + shlex.join(argv))
    run_all(cfg, command, None if args.no_write else args.results)
    if args.loader:
        from benchmarks import loader_speed

        loader_speed.main(["--no-write"] if args.no_write else [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
