"""A training step alone and beside a competing busy process, for the old and the new thread/worker choice.

The old choice is torch's default (one OpenMP thread per usable core) with ``min(8, cores)`` DataLoader
workers; the new one is :func:`autotimm.training.threads.plan_threads` measured at the start of the run
(what ``AutoTrainer`` does); "new+passive" adds ``OMP_WAIT_POLICY=PASSIVE`` (OpenMP threads sleep
instead of spinning while they wait; it must be set before torch loads, so every choice runs in a fresh
child process). The competitor is one ``while True: pass`` Python process per ``--competitors``, started
before the child and ended by its PID afterwards.

Each child times ``--steps`` training steps (after ``--warmup`` untimed ones) of a resnet18 + FPN 128
FCOS detector at 256 px, batch 8, fed by a ``DetectionDataModule`` on the bundled raccoon photos
(default augmentation): a step includes waiting for its batch, so the workers count. Run on an
otherwise idle machine::

    python -m benchmarks.threads                 # 3 choices x (alone, beside 1 competitor)
    python -m benchmarks.threads --steps 4 --choices old new
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

CHOICES = ("old", "new", "new+passive")


def _child(choice: str, steps: int, warmup: int, image_size: int, batch_size: int) -> dict[str, Any]:
    import torch

    from autotimm import FeatureBackboneConfig, ObjectDetector
    from autotimm.data import example
    from autotimm.data.datamodule import default_num_workers
    from autotimm.training.threads import plan_threads, usable_cores

    if choice == "old":
        threads, workers, seen = usable_cores(), default_num_workers(), "torch default"
    else:
        plan = plan_threads("cpu")
        threads, workers, seen = plan.num_threads, plan.num_workers, plan.describe()
    torch.set_num_threads(threads)
    dm = example("raccoon").datamodule(image_size=image_size, batch_size=batch_size, num_workers=workers,
                                       augment="default", persistent_workers=True, image_check="none", shuffle_seed=0)
    dm.setup("fit")
    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=dm.num_classes,
                           fpn_channels=128, head_num_convs=2, compile_model=False, seed=0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times: list[float] = []
    done = 0
    while done < warmup + steps:
        t0 = time.perf_counter()
        for images, targets in dm.train_dataloader():
            losses = model.compute_loss(model.batch_images(images), targets)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            t1 = time.perf_counter()
            if done >= warmup:
                times.append(t1 - t0)
            done += 1
            t0 = t1
            if done == warmup + steps:
                break
    return {"choice": choice, "threads": threads, "workers": workers, "plan": seen,
            "median_s": statistics.median(times), "min_s": min(times)}


def _run(choice: str, competitors: int, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if choice == "new+passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)]
    try:
        time.sleep(1.0 if busy else 0.0)  # let the competitors show up in the CPU times the plan samples
        cmd = [sys.executable, "-m", "benchmarks.threads", "--child", choice, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    finally:
        for proc in busy:  # end exactly the processes started here, by PID
            os.kill(proc.pid, 15)
            proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    result["competitors"] = competitors
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--choices", nargs="+", default=list(CHOICES), choices=CHOICES)
    parser.add_argument("--competitors", type=int, default=1, help="busy processes beside the step (default 1)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", choices=CHOICES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.competitors < 0:
        parser.error(f"need --steps >= 1, --warmup >= 0, --competitors >= 0; got {args.steps}, {args.warmup}, {args.competitors}")
    if args.child:
        print(json.dumps(_child(args.child, args.steps, args.warmup, args.image_size, args.batch_size)))
        return 0
    import platform

    print(f"CPU: {platform.processor() or platform.machine()}, usable cores: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    rows = []
    for choice in args.choices:
        for competitors in (0, args.competitors):
            r = _run(choice, competitors, args)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print("\n| choice | threads / workers (alone; beside) | s/step alone | s/step beside | slowdown |")
    print("|---|---|---:|---:|---:|")
    for choice in args.choices:
        alone, beside = [r for r in rows if r["choice"] == choice]
        print(f"| {choice} | {alone['threads']}/{alone['workers']}; {beside['threads']}/{beside['workers']} | "
              f"{alone['median_s']:.3f} | {beside['median_s']:.3f} | {beside['median_s'] / alone['median_s']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
