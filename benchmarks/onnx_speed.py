"""onnxruntime end-to-end (one ``model.to_onnx(..., include_postprocess=True, dynamic=True)`` file run by
the torch-free ``autotimm.export.OnnxDetector``) against eager ``model.predict`` in fp32 and on the
fast path (bf16 + channels_last where the CPU runs bf16 natively, else fp32), at 320 and 640 px.

Standalone (a few minutes on 2 cores; prints the table, writes nothing)::

    python -m benchmarks.onnx_speed --sizes 320 640 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import gc
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.config import BenchConfig
from benchmarks.contenders import build_autotimm, precision_label, synthetic_batch
from benchmarks.report import Table, machine_description
from benchmarks.timing import interleave

ONNX_SIZES: tuple[int, ...] = (320, 640)


def run_onnx(cfg: BenchConfig, sizes: Sequence[int] | None = None) -> tuple[list[Table], dict[str, dict[str, dict[str, float]]]]:
    """Export autotimm FCOS once per backbone (dynamic H/W) and time image tensors -> final boxes three
    ways at each size.

    Args:
        cfg: backbones, batch size, classes, repeats.
        sizes: input sizes; default 320 and 640 (``cfg.image_size`` alone when it is smaller, as in the
            smoke test's tiny configuration).
    """
    import onnxruntime as ort

    from autotimm.export import OnnxDetector

    if sizes is None:
        sizes = ONNX_SIZES if cfg.image_size >= min(ONNX_SIZES) else (cfg.image_size,)
    auto = precision_label("auto")
    table = Table(
        f"onnxruntime vs eager, autotimm FCOS end-to-end ({', '.join(f'{s} px' for s in sizes)}, batch {cfg.batch_size})",
        ["backbone", "size", "runtime", "min ms", "median ms", "x eager fp32", "detections / image"],
    )
    table.notes = [
        "Each row: uint8 image tensors in, letterbox + normalise, network, decode + NMS, boxes in original pixels "
        "out. onnxruntime runs ONE file from model.to_onnx(include_postprocess=True, dynamic=True) (NMS inside the "
        "graph, any multiple of 32) through autotimm.export.OnnxDetector.predict (numpy + PIL, no torch), with as "
        "many intra-op threads as torch."
    ]
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="autotimm-bench-") as tmp:
        for backbone in cfg.onnx_backbones:
            torch.manual_seed(cfg.seed)
            model = build_autotimm("fcos", backbone, cfg.num_classes, cfg.fpn_channels, cfg.head_num_convs).eval()
            fast = copy.deepcopy(model).to(memory_format=torch.channels_last)  # as after a fast-path fit
            print(f"[onnx] {backbone}: exporting (dynamic H/W)", flush=True)
            path = model.to_onnx(str(Path(tmp) / f"fcos_{backbone}.onnx"), include_postprocess=True, dynamic=True, image_size=sizes[0])
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # the same threads as eager
            runner = OnnxDetector(path, session_options=options)
            for size in sizes:
                images, _ = synthetic_batch(cfg.batch_size, size, cfg.num_classes, seed=cfg.seed)
                items = list(images)  # uint8 Tensor[3, S, S] each: "image tensor in"
                fns = {
                    "eager fp32": lambda: model.predict(items, image_size=size, batch_size=len(items), precision="fp32"),
                    f"eager {auto}": lambda: fast.predict(items, image_size=size, batch_size=len(items), precision="auto"),
                    "onnxruntime end-to-end": lambda: runner.predict(items, image_size=size, batch_size=len(items)),
                }
                counts = {name: sum(len(d["boxes"]) for d in fn()) / len(items) for name, fn in fns.items()}
                print(f"[onnx] {backbone} {size} px: timing {cfg.repeats} rounds", flush=True)
                stats = interleave(fns, cfg.repeats, cfg.warmup)
                key = backbone if len(sizes) == 1 else f"{backbone}@{size}"
                results[key] = {}
                for name, s in stats.items():
                    results[key][name] = {"min": s.min, "median": s.median}
                    table.add(backbone, size, name, 1e3 * s.min, 1e3 * s.median, stats["eager fp32"].median / s.median, counts[name])
            del model, fast, runner
            gc.collect()
    return [table], results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.onnx_speed``: the table above, printed with the machine it ran on."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(ONNX_SIZES), help="input sizes (multiples of 32).")
    parser.add_argument("--repeats", type=int, default=5, help="timed interleaved rounds.")
    parser.add_argument("--batch-size", type=int, default=None, help="images per call (default: the bench default).")
    parser.add_argument("--backbones", nargs="+", default=None, help="timm backbones (default: resnet18).")
    args = parser.parse_args(argv)
    overrides = {"repeats": args.repeats}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.backbones:
        overrides["onnx_backbones"] = tuple(args.backbones)
    cfg = BenchConfig().with_overrides(**overrides)
    tables, _ = run_onnx(cfg, args.sizes)
    print(machine_description())
    for table in tables:
        print(table.markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
