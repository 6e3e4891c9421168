"""Speed and efficiency: training step and end-to-end inference of every contender, interleaved in
one process, then FLOPs and achieved GFLOP/s next to the bare backbone and a dense 3x3 conv."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import torch

from benchmarks.config import BenchConfig
from benchmarks.contenders import Contender, ContenderSpec, synthetic_batch
from benchmarks.flops import BareBackbone, DenseConv, count_flops
from benchmarks.report import Table
from benchmarks.timing import Stats, interleave

REFERENCES = ("torchvision:fcos:fp32", "torchvision:fcos:bf16")  # the ratios' denominators


@dataclass
class BackboneSpeed:
    """Measurements for one backbone.

    Attributes:
        train / infer: contender key -> seconds of its training steps / end-to-end inferences.
        references: "backbone fp32", "conv3x3 bf16+CL", ... -> seconds (inference rounds).
        flops: contender key or reference name -> (forward FLOPs, training-step FLOPs or 0).
        names: contender key -> table name.
    """

    train: dict[str, Stats] = field(default_factory=dict)
    infer: dict[str, Stats] = field(default_factory=dict)
    references: dict[str, Stats] = field(default_factory=dict)
    flops: dict[str, tuple[int, int]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def ratio(self, kind: str, key: str, reference: str) -> float | None:
        """How many times faster ``key`` is than ``reference`` (median over median), None if absent."""
        stats = self.train if kind == "train" else self.infer
        if key not in stats or reference not in stats:
            return None
        return stats[reference].median / stats[key].median


def measure_backbone(cfg: BenchConfig, backbone: str) -> BackboneSpeed:
    """Build every speed contender on ``backbone`` and time them, interleaved."""
    batch = synthetic_batch(cfg.batch_size, cfg.image_size, cfg.num_classes, seed=cfg.seed)
    specs = [ContenderSpec.parse(key) for key in cfg.speed_contenders]
    contenders = {}
    for spec in specs:
        torch.manual_seed(cfg.seed)
        contenders[spec.key] = Contender(spec, backbone, batch, cfg.num_classes, cfg.fpn_channels, cfg.head_num_convs)
    result = BackboneSpeed(names={k: c.name for k, c in contenders.items()})
    print(f"[speed] {backbone}: training steps ({cfg.warmup} warm-up + {cfg.repeats} rounds of {len(contenders)})", flush=True)
    result.train = interleave({k: c.train_step for k, c in contenders.items()}, cfg.repeats, cfg.warmup)

    images = batch[0].float() / 255.0
    images = (images - 0.45) / 0.225  # roughly ImageNet-normalised; values do not change the timing
    refs = {}
    for bf16 in (False, True):
        label = "bf16+CL" if bf16 else "fp32"
        refs[f"timm {backbone} backbone {label}"] = BareBackbone(backbone, images, bf16)
        refs[f"dense conv3x3 {label}"] = DenseConv(cfg.fpn_channels, cfg.batch_size, cfg.image_size // 8, bf16)
    print(f"[speed] {backbone}: end-to-end inference + references", flush=True)
    timed = interleave({**{k: c.infer for k, c in contenders.items()}, **refs}, cfg.repeats, cfg.warmup)
    result.infer = {k: timed[k] for k in contenders}
    result.references = {k: timed[k] for k in refs}

    print(f"[speed] {backbone}: counting FLOPs", flush=True)
    counted: dict[tuple[str, str], tuple[int, int]] = {}  # precision does not change the FLOPs: count once per model
    for key, contender in contenders.items():
        model = (contender.spec.library, contender.spec.arch)
        if model not in counted:
            counted[model] = (count_flops(contender.infer), count_flops(contender.train_step))
        result.flops[key] = counted[model]
    for name, ref in refs.items():
        result.flops[name] = (count_flops(ref), 0)
    del contenders, refs
    gc.collect()
    return result


def speed_tables(cfg: BenchConfig, results: dict[str, BackboneSpeed]) -> list[Table]:
    """The speed table and the efficiency table for every measured backbone."""
    speed = Table(
        f"Speed: training step and end-to-end inference ({cfg.image_size} px, batch {cfg.batch_size}, "
        f"{cfg.num_classes} classes, FPN {cfg.fpn_channels}, {cfg.head_num_convs} head convs)",
        ["backbone", "contender", "train min ms", "train median ms", "train x tv FCOS fp32", "train x tv FCOS bf16+CL",
         "infer min ms", "infer median ms", "infer x tv FCOS fp32", "infer x tv FCOS bf16+CL"],
    )  # fmt: skip
    speed.notes = [
        f"min and median of {cfg.repeats} interleaved rounds after {cfg.warmup} warm-up round(s); 'x tv ...' = "
        "torchvision's median / this median (above 1: faster than torchvision). Training step = forward, loss, "
        "backward, SGD step. Inference = uint8 image tensors in, final boxes (NMS, original pixels) out; all "
        "contenders use score_thresh 0.05, NMS 0.5, top-1000 per level, 100 detections.",
        "Untrained FCOS-style models score every point ~0.07 (> 0.05), so their inference includes a full "
        "NMS over 1000 candidates per level; untrained RetinaNet/YOLOX scores (~0.01 / ~1e-4) pass no threshold.",
    ]
    eff = Table(
        "Efficiency: FLOPs and achieved GFLOP/s",
        ["backbone", "what", "forward GFLOP", "forward median ms", "forward GFLOP/s", "x conv ceiling",
         "train-step GFLOP", "train GFLOP/s"],
    )  # fmt: skip
    eff.notes = [
        "FLOPs from torch.utils.flop_counter.FlopCounterMode (convolutions and matmuls; a multiply-add is 2). "
        "Detector forward = the end-to-end inference above (pre- and post-processing add time but no counted "
        "FLOPs); train step = forward + backward. 'x conv ceiling' = GFLOP/s over a dense 3x3 "
        f"{cfg.fpn_channels}->{cfg.fpn_channels} conv on the stride-8 map in the same precision, in its fastest "
        "round (a ~20 ms op is the most exposed to a noisy moment, so its median row can show below 1)."
    ]
    for backbone, res in results.items():
        for key, name in res.names.items():
            speed.add(
                backbone, name, 1e3 * res.train[key].min, 1e3 * res.train[key].median,
                res.ratio("train", key, REFERENCES[0]), res.ratio("train", key, REFERENCES[1]),
                1e3 * res.infer[key].min, 1e3 * res.infer[key].median,
                res.ratio("infer", key, REFERENCES[0]), res.ratio("infer", key, REFERENCES[1]),
            )  # fmt: skip
        ceiling = {
            label: res.flops[f"dense conv3x3 {label}"][0] / res.references[f"dense conv3x3 {label}"].min
            for label in ("fp32", "bf16+CL")
        }
        for name, stats in res.references.items():
            label = "bf16+CL" if name.endswith("bf16+CL") else "fp32"
            rate = res.flops[name][0] / stats.median
            eff.add(backbone, name, res.flops[name][0] / 1e9, 1e3 * stats.median, rate / 1e9, rate / ceiling[label], None, None)
        for key, name in res.names.items():
            label = ContenderSpec.parse(key).label
            fwd, train = res.flops[key]
            rate = fwd / res.infer[key].median
            eff.add(backbone, name, fwd / 1e9, 1e3 * res.infer[key].median, rate / 1e9, rate / ceiling[label],
                    train / 1e9, train / res.train[key].median / 1e9)  # fmt: skip
    return [speed, eff]


def run_speed(cfg: BenchConfig) -> tuple[list[Table], dict[str, BackboneSpeed]]:
    """Measure every backbone of ``cfg``; returns the tables and the raw results."""
    results = {backbone: measure_backbone(cfg, backbone) for backbone in cfg.backbones}
    return speed_tables(cfg, results), results
