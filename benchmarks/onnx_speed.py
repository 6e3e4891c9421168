"""onnxruntime end-to-end (``model.to_onnx(..., include_postprocess=True)`` run by
``autotimm.export.OnnxDetector``) against eager ``model.predict`` in fp32 and on the fast path."""

from __future__ import annotations

import copy
import gc
import tempfile
from pathlib import Path

import torch

from benchmarks.config import BenchConfig
from benchmarks.contenders import build_autotimm, precision_label, synthetic_batch
from benchmarks.report import Table
from benchmarks.timing import interleave


def run_onnx(cfg: BenchConfig) -> tuple[list[Table], dict[str, dict[str, dict[str, float]]]]:
    """Export autotimm FCOS per ONNX backbone and time image tensors -> final boxes three ways."""
    import onnxruntime as ort

    from autotimm.export import OnnxDetector

    images, _ = synthetic_batch(cfg.batch_size, cfg.image_size, cfg.num_classes, seed=cfg.seed)
    items = list(images)  # uint8 Tensor[3, S, S] each: "image tensor in"
    auto = precision_label("auto")
    table = Table(
        f"onnxruntime vs eager, autotimm FCOS end-to-end ({cfg.image_size} px, batch {cfg.batch_size})",
        ["backbone", "runtime", "min ms", "median ms", "x eager fp32", "detections / image"],
    )
    table.notes = [
        "Each row: uint8 image tensors in, letterbox + normalise, network, decode + NMS, boxes in original pixels "
        "out. onnxruntime runs the file from model.to_onnx(include_postprocess=True) (NMS inside the graph) "
        "through autotimm.export.OnnxDetector.predict, with as many intra-op threads as torch."
    ]
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="autotimm-bench-") as tmp:
        for backbone in cfg.onnx_backbones:
            torch.manual_seed(cfg.seed)
            model = build_autotimm("fcos", backbone, cfg.num_classes, cfg.fpn_channels, cfg.head_num_convs).eval()
            fast = copy.deepcopy(model).to(memory_format=torch.channels_last)  # as after a fast-path fit
            print(f"[onnx] {backbone}: exporting", flush=True)
            path = model.to_onnx(str(Path(tmp) / f"fcos_{backbone}.onnx"), include_postprocess=True, image_size=cfg.image_size)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # the same threads as eager
            runner = OnnxDetector(path, session_options=options)
            fns = {
                "eager fp32": lambda: model.predict(items, image_size=cfg.image_size, batch_size=len(items), precision="fp32"),
                f"eager {auto}": lambda: fast.predict(items, image_size=cfg.image_size, batch_size=len(items), precision="auto"),
                "onnxruntime end-to-end": lambda: runner.predict(items, batch_size=len(items)),
            }
            counts = {name: sum(len(d["boxes"]) for d in fn()) / len(items) for name, fn in fns.items()}
            print(f"[onnx] {backbone}: timing {cfg.repeats} rounds", flush=True)
            stats = interleave(fns, cfg.repeats, cfg.warmup)
            results[backbone] = {}
            for name, s in stats.items():
                results[backbone][name] = {"min": s.min, "median": s.median}
                table.add(backbone, name, 1e3 * s.min, 1e3 * s.median, stats["eager fp32"].median / s.median, counts[name])
            del model, fast, runner, fns
            gc.collect()
    return [table], results
