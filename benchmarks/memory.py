"""Peak memory (RSS) of training steps, one fresh process per contender so peaks do not mix.

    python -m benchmarks.memory autotimm:fcos:auto --backbone resnet18 [--image-size 512 ...]

prints one JSON line: ``{"baseline_mib": RSS after building the model and batch, "peak_mib": the
process's high-water mark (VmHWM) after the steps}``. :func:`run_memory` starts one such process per
contender and tabulates the lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.config import BenchConfig
from benchmarks.contenders import ContenderSpec
from benchmarks.report import Table

REPO = Path(__file__).resolve().parents[1]


def rss_mib(field: str = "VmHWM") -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (current) resident memory of this process in MiB, from
    /proc/self/status; without /proc, the peak from ``getrusage`` (KiB on Linux, bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def probe(spec: ContenderSpec, backbone: str, image_size: int, batch_size: int, num_classes: int,
          fpn_channels: int, head_num_convs: int, steps: int) -> dict[str, float]:  # fmt: skip
    """Build one contender in this process, run ``steps`` training steps, report RSS in MiB.

    Both libraries are imported whichever contender runs, so "after build" differs only by the model."""
    import torch
    import torchvision.models.detection  # noqa: F401

    import autotimm.detector  # noqa: F401
    from benchmarks.contenders import Contender, synthetic_batch

    torch.manual_seed(0)
    batch = synthetic_batch(batch_size, image_size, num_classes)
    contender = Contender(spec, backbone, batch, num_classes, fpn_channels, head_num_convs)
    baseline = rss_mib("VmRSS")
    for _ in range(steps):
        contender.train_step()
    return {"baseline_mib": baseline, "peak_mib": rss_mib("VmHWM")}


def probe_in_subprocess(cfg: BenchConfig, key: str, backbone: str, timeout: float = 1800) -> dict[str, float]:
    """Run :func:`probe` for ``key`` in a fresh Python process and parse its JSON line."""
    cmd = [
        sys.executable, "-m", "benchmarks.memory", key, "--backbone", backbone, "--image-size", str(cfg.image_size),
        "--batch-size", str(cfg.batch_size), "--num-classes", str(cfg.num_classes), "--fpn-channels", str(cfg.fpn_channels),
        "--head-num-convs", str(cfg.head_num_convs), "--steps", str(cfg.memory_steps),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe {' '.join(cmd[2:])} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_memory(cfg: BenchConfig) -> tuple[list[Table], dict[str, dict[str, dict[str, float]]]]:
    """Peak RSS of every speed contender on every memory backbone, one process each."""
    table = Table(
        f"Peak memory of a training step (RSS, {cfg.image_size} px, batch {cfg.batch_size}, {cfg.memory_steps} steps)",
        ["backbone", "contender", "peak RSS MiB", "after build MiB", "step peak - build MiB", "peak x tv FCOS fp32"],
    )
    table.notes = [
        "Each contender runs in its own fresh process (python -m benchmarks.memory ...): 'peak RSS' is VmHWM "
        "after the steps, 'after build' the RSS once the model and batch exist (imports and weights), so the "
        "difference is what training adds (activations, gradients, optimizer state)."
    ]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for backbone in cfg.memory_backbones:
        results[backbone] = {}
        for key in cfg.memory_contenders or cfg.speed_contenders:
            print(f"[memory] {backbone} {key}", flush=True)
            results[backbone][key] = probe_in_subprocess(cfg, key, backbone)
        ref = results[backbone].get("torchvision:fcos:fp32")
        for key, r in results[backbone].items():
            ratio = r["peak_mib"] / ref["peak_mib"] if ref else None
            table.add(backbone, ContenderSpec.parse(key).name, r["peak_mib"], r["baseline_mib"], r["peak_mib"] - r["baseline_mib"], ratio)
    return [table], results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Peak RSS of training steps of one contender (prints a JSON line).")
    parser.add_argument("contender", help="library:arch[:precision], e.g. autotimm:fcos:auto or torchvision:fcos:fp32")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--head-num-convs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    spec = ContenderSpec.parse(args.contender)
    result = probe(spec, args.backbone, args.image_size, args.batch_size, args.num_classes, args.fpn_channels, args.head_num_convs, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
