"""Can the data loader feed training? Augmentation images/s per core, loader images/s, model steps.

    python -m benchmarks.loader_speed [--image-size 640] [--workers 2] [--batch-size 16] [--no-model]
                                      [--compare REF]

Three parts, printed as one table and appended to benchmarks/RESULTS.md under "## Data loader":

1. Per core: ``DetectionDataset[i]`` of the bundled raccoon photos (real JPEGs 178-2000 px) with each
   preset ("none", "default", "strong"; "strong" also without its partner buffer, with its colour
   jitter left to the device (``photometric="device"``: the worker part, then the batched colour
   jitter's own cost on the CPU and the sum of both, so the move is not counted as a saving), and the
   augmented presets with ``cache="ram"``), in one process, no workers, ``torch.set_num_threads(1)``.
   The presets take turns in short rounds, so a machine whose load changes hurts them alike, and
   each is reported with its ratio to "none". CPU flags (AVX2/AVX-512: torch's uint8 resize and
   Pillow's kernels use them) and the load average are printed with it. ``--compare REF`` (a git
   commit or branch) also runs the code of REF, side by side: each side in its own process (the
   package of REF unpacked with ``git archive``), the two taking turns in every round, and prints
   old vs new per preset.
2. The train DataLoader of the bundled datasets (raccoon; shapes: small synthetic JPEGs) with each
   preset and ``--workers`` workers, after one warm-up epoch (persistent workers).
3. When ``autotimm.ObjectDetector`` imports: the images/s of a resnet18 FCOS training step alone
   (forward, loss, backward, optimizer step on one batch held in memory) and of the training loop
   (the "default" raccoon loader feeding the same step, ``--steps`` batches). The loop far below the
   step alone means training is loader-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Data loader"
REPLY = "@loader_speed"  # marks the --serve process's replies
PRESETS = ("none", "default", "strong")
DEVICE_COLOUR = "strong, photometric=device"  # the worker part of "strong" with its colour jitter left to the device
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "amx_tile", "neon", "asimd")


def cpu_summary() -> str:
    """CPU model and the SIMD flags that matter for uint8 image kernels (Linux; else the platform)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        pass
    shown = [f for f in CPU_FLAGS if f in flags]
    return f"{model}; flags: {' '.join(shown) or 'unknown'}"


def per_core_datasets(image_size: int) -> dict[str, Any]:
    """The per-core contenders: a ``DetectionDataset`` of the raccoon photos per preset and variant.

    Variants the importable autotimm lacks (older code: no ``cache``, no ``partner_buffer``) are left
    out, so the same function serves ``--compare`` against older commits.
    """
    from autotimm.data import example
    from autotimm.data.dataset import DetectionDataset
    from autotimm.data.readers import read_coco

    ds_info = example("raccoon")
    ann = read_coco(ds_info.train, ds_info.images_dir)
    make = lambda preset, **kw: DetectionDataset(ann.records, ann.class_names, image_size, preset, **kw)  # noqa: E731
    datasets = {p: make(p) for p in PRESETS}
    variants = [("strong, partner_buffer=0", "strong", {"partner_buffer": 0}), (DEVICE_COLOUR, "strong", {"colour_on_device": True})]
    variants += [(f"{p}, cache=ram", p, {"cache": "ram"}) for p in PRESETS[1:]]  # decoded images kept in RAM
    for name, preset, kwargs in variants:
        try:
            datasets[name] = make(preset, **kwargs)
        except TypeError:  # this autotimm has no such option
            pass
    return datasets


def time_samples(dataset: Any, start: int, count: int) -> float:
    """Seconds to make samples ``start .. start + count - 1`` (modulo the dataset's length)."""
    begin = time.perf_counter()
    for i in range(start, start + count):
        dataset[i % len(dataset)]
    return time.perf_counter() - begin


def per_core_rates(image_size: int, samples: int, rounds: int = 5, seed: int = 0) -> dict[str, float]:
    """Images/s of ``DetectionDataset[i]`` per preset on the raccoon photos, one process, one thread.

    Args:
        image_size: output side S.
        samples: samples per preset, split over ``rounds`` rounds in which the presets take turns.
        rounds: alternations; more rounds spread a changing machine load evenly over the presets.
        seed: ``torch.manual_seed`` before the timed rounds (same draws on every run).

    Returns:
        {name: images/s} for each of ``per_core_datasets``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        datasets = per_core_datasets(image_size)
        for ds in datasets.values():  # warm-up: page cache, lazy imports
            ds[0]
        torch.manual_seed(seed)
        seconds = dict.fromkeys(datasets, 0.0)
        per_round = max(1, samples // rounds)
        for r in range(rounds):
            for name, ds in datasets.items():
                seconds[name] += time_samples(ds, r * per_round, per_round)
        return {name: per_round * rounds / seconds[name] for name in datasets}
    finally:
        torch.set_num_threads(threads)


def batched_colour_rate(image_size: int, batch_size: int, repeats: int = 5, seed: int = 0) -> float:
    """Images/s of the device side of ``photometric="device"`` run on the CPU, one thread.

    A batch of ``DEVICE_COLOUR`` samples (raccoon photos, uint8, with their ``colour_jitter`` draws) goes
    through ``apply_deferred_colour`` ``repeats`` times, as ``on_after_batch_transfer`` would on a GPU;
    the CPU time it takes is what the workers saved, so "worker part + this" is the honest CPU total.
    """
    from autotimm.data.dataset import apply_deferred_colour, collate_detection

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset = per_core_datasets(image_size)[DEVICE_COLOUR]
        torch.manual_seed(seed)
        images, targets = collate_detection([dataset[i % len(dataset)] for i in range(batch_size)])
        apply_deferred_colour(images, targets)  # warm-up
        begin = time.perf_counter()
        for _ in range(repeats):
            apply_deferred_colour(images, targets)
        return repeats * batch_size / (time.perf_counter() - begin)
    finally:
        torch.set_num_threads(threads)


def serve(image_size: int, seed: int = 0) -> None:
    """``--serve``: the per-core datasets of whichever autotimm imports (PYTHONPATH), timed on request.

    Prints the contender names as one JSON line, then answers each stdin line ``start count name``
    with the seconds taken (one line each), until stdin closes; replies start with ``REPLY`` (other
    output, e.g. the RAM cache's note, passes through). One torch thread.
    """
    torch.set_num_threads(1)
    datasets = per_core_datasets(image_size)
    for ds in datasets.values():
        ds[0]
    torch.manual_seed(seed)
    print(REPLY, json.dumps(list(datasets)), flush=True)
    for line in sys.stdin:
        start, count, name = line.rstrip("\n").split(" ", 2)
        print(REPLY, f"{time_samples(datasets[name], int(start), int(count)):.9f}", flush=True)


class Contender:
    """A ``--serve`` process running the package found in ``package_root`` (None: this checkout's)."""

    def __init__(self, package_root: Path | None, image_size: int) -> None:
        env = dict(os.environ)
        root = package_root or Path(__file__).resolve().parent.parent
        env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", "--image-size", str(image_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(root),
        )
        self.root = root
        self.names: list[str] = json.loads(self._reply())

    def _reply(self) -> str:
        """The next reply line's payload; other lines are passed on to stderr."""
        for line in self.process.stdout:
            if line.startswith(REPLY + " "):
                return line[len(REPLY) + 1 :]
            print(line, end="", file=sys.stderr)
        raise RuntimeError(f"The benchmark process for {self.root} ended early (see its error above).")

    def seconds(self, name: str, start: int, count: int) -> float:
        self.process.stdin.write(f"{start} {count} {name}\n")
        self.process.stdin.flush()
        return float(self._reply())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def unpack_package(ref: str, into: Path) -> str:
    """Unpack ``autotimm/`` of git commit ``ref`` into ``into``; returns the commit's short hash."""
    repo = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit, "autotimm"],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as tmp:
        tmp.write(archive)
        tmp.seek(0)
        with tarfile.open(fileobj=tmp) as tar:
            tar.extractall(into, filter="data")
    return commit


def compare_rates(ref: str, image_size: int, samples: int, rounds: int = 5) -> tuple[str, str, dict[str, tuple[float, float]]]:
    """Per-core images/s of the code of ``ref`` and of this checkout, side by side.

    Both run as ``--serve`` processes, taking turns in every round (old, new per contender), so a
    changing machine load hurts them alike.

    Returns:
        (ref's short hash, this checkout's short hash, {name: (ref images/s or nan, new images/s)}).
    """
    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="autotimm-bench-") as tmp:
        commit = unpack_package(ref, Path(tmp))
        old, new = Contender(Path(tmp), image_size), Contender(None, image_size)
        try:
            names = new.names
            seconds = {name: [0.0, 0.0] for name in names}
            per_round = max(1, samples // rounds)
            for r in range(rounds):
                for name in names:
                    for side, contender in enumerate((old, new)):
                        if name in contender.names:
                            seconds[name][side] += contender.seconds(name, r * per_round, per_round)
        finally:
            old.close()
            new.close()
    count = per_round * rounds
    rates = {name: (count / s[0] if s[0] else float("nan"), count / s[1]) for name, s in seconds.items()}
    return commit, head + (" + changes" if dirty else ""), rates


def loader_rate(dataset: str, augment: str, image_size: int, workers: int, batch_size: int, epochs: int) -> tuple[float, Any]:
    """Images/s of the train loader over ``epochs`` epochs after a warm-up epoch; and the loader."""
    from autotimm.data import example

    dm = example(dataset).datamodule(image_size=image_size, batch_size=batch_size, num_workers=workers,
                                     augment=augment, image_check="none")
    dm.setup("fit")
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up: worker start, page cache
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in loader:
            count += images.shape[0]
    return count / (time.perf_counter() - start), loader


def model_rates(loader: Any, num_classes: int, steps: int, bf16: bool) -> tuple[float, float] | None:
    """Images/s of resnet18 FCOS training steps: on one batch held in memory, and fed by ``loader``.

    Args:
        loader: the train DataLoader (batches of uint8 images and target lists).
        num_classes: K of the detector.
        steps: timed steps of each kind (the loader part stops early at the end of an epoch).
        bf16: CPU autocast to bfloat16 with channels-last weights.

    Returns:
        (step alone, whole loop: loader + step) images/s, or None when the detector is unavailable.
    """
    try:
        from autotimm import FeatureBackboneConfig, ObjectDetector
    except (ImportError, AttributeError):
        return None
    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=num_classes, compile_model=False)
    model.train()
    if not hasattr(model, "compute_loss"):
        return None
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    if bf16:
        model = model.to(memory_format=torch.channels_last)

    def step(images: torch.Tensor, targets: list) -> None:
        images = model.normalize(images) if hasattr(model, "normalize") else images.float() / 255
        if bf16:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.compute_loss(images, targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    batches = iter(loader)
    held = next(batches)
    step(*held)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step(*held)
    alone = steps * held[0].shape[0] / (time.perf_counter() - start)
    count, start = 0, time.perf_counter()
    for images, targets in islice(batches, steps):  # the loader is timed with the step
        step(images, targets)
        count += images.shape[0]
    loop = count / (time.perf_counter() - start) if count else float("nan")
    return alone, loop


def append_results(lines: list[str]) -> None:
    """Add ``lines`` at the end of the "## Data loader" section of RESULTS.md (made if missing)."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = "\n".join(lines) + "\n"
    if HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}"
    else:
        start = text.index(HEADING) + len(HEADING)
        end = text.find("\n## ", start)
        end = len(text) if end < 0 else end
        text = text[:end].rstrip("\n") + "\n\n" + block + text[end:]
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=640)
    parser.add_argument("--samples", type=int, default=200, help="per-core samples per preset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loader")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (alone, and fed by the loader)")
    parser.add_argument("--no-loader", action="store_true", help="skip the DataLoader part")
    parser.add_argument("--no-model", action="store_true", help="skip the training-step part")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--compare", metavar="REF", help="also time the code of this git commit/branch, side by side")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # internal: see serve()
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.image_size)
        return

    cpu = cpu_summary()
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    rows: list[tuple[str, float, str]] = []
    compared: list[str] = []
    if args.compare:
        commit, head, pairs = compare_rates(args.compare, args.image_size, args.samples)
        rates = {name: new for name, (_, new) in pairs.items()}
        compared = [f"Per core side by side, {commit} (old) vs {head} (new), {args.samples} samples each in 5 interleaved rounds:",
                    "", f"| per core, raccoon, {args.image_size} px | old {commit} img/s | new img/s | new / old | time vs none, old -> new |",
                    "|---|---:|---:|---:|---:|"]
        old_none = pairs["none"][0]
        for name, (old, new) in pairs.items():
            if old == old:  # not nan: the old code has this contender
                compared.append(f"| augment={name} | {old:.1f} | {new:.1f} | {new / old:.2f}x | "
                                f"{old_none / old:.2f}x -> {rates['none'] / new:.2f}x |")
            else:
                compared.append(f"| augment={name} | - | {new:.1f} | - | - -> {rates['none'] / new:.2f}x |")
        print("\n".join(compared) + "\n", flush=True)
    else:
        rates = per_core_rates(args.image_size, args.samples)
    for preset, rate in rates.items():
        ratio = rates["none"] / rate
        rows.append((f"per core, raccoon, augment={preset}", rate, f"{ratio:.2f}x the time of none"))
        print(f"{rows[-1][0]:<44} {rate:8.1f} img/s  {rows[-1][2]}", flush=True)
    if DEVICE_COLOUR in rates:  # the colour jitter moved to the device still costs: its CPU time, side by side
        colour = batched_colour_rate(args.image_size, args.batch_size)
        total = 1.0 / (1.0 / rates[DEVICE_COLOUR] + 1.0 / colour)
        rows.append((f"batched colour jitter (device side) on the CPU, batch {args.batch_size}", colour,
                     "apply_deferred_colour, 1 thread"))
        rows.append((f"per core, raccoon, {DEVICE_COLOUR}, worker + batched colour on CPU", total,
                     f"{total / rates['strong']:.2f}x the rate of strong (colour on the worker)"))
        for name, rate, note in rows[-2:]:
            print(f"{name:<44} {rate:8.1f} img/s  {note}", flush=True)

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    loader = None
    if not args.no_loader or not args.no_model:
        for dataset in ("raccoon", "shapes") if not args.no_loader else ("raccoon",):
            for augment in PRESETS if not args.no_loader else ("default",):
                rate, last = loader_rate(dataset, augment, args.image_size, args.workers, args.batch_size, args.epochs)
                if dataset == "raccoon" and augment == "default":
                    loader = last
                if not args.no_loader:
                    rows.append((f"loader {dataset}, augment={augment}, {args.workers} workers", rate, ""))
                    print(f"{rows[-1][0]:<44} {rate:8.1f} img/s", flush=True)
    if not args.no_model and loader is not None:
        bf16_ok = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        for bf16 in (False, True) if bf16_ok else (False,):
            result = model_rates(loader, 1, args.steps, bf16)
            if result is None:
                print("autotimm.ObjectDetector (with compute_loss) is not available: loader half only.")
                break
            kind = "bf16 + channels_last" if bf16 else "fp32"
            alone, loop = result
            rows.append((f"resnet18 FCOS train step alone, {kind}", alone, ""))
            rows.append((f"resnet18 FCOS training loop (loader + step, {args.steps} batches), {kind}", loop,
                         f"{loop / alone:.2f} of the step alone" + (" (loader-bound)" if loop < 0.9 * alone else "")))
            for name, rate, note in rows[-2:]:
                print(f"{name:<44} {rate:8.1f} img/s  {note}", flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"{date.today().isoformat()}, {os.cpu_count()} CPU cores ({cpu}), load average {load:.1f} at the end, "
              f"torch {torch.__version__}, {args.image_size} px, batch {args.batch_size}, {args.workers} workers; "
              "per core: one process, no workers, 1 torch thread")
    lines = [header, "", "| what | images/s | note |", "|---|---:|---|"]
    lines += [f"| {name} | {rate:.1f} | {note} |" for name, rate, note in rows]
    if compared:
        lines += [""] + compared
    print("\n" + "\n".join(lines))
    if not args.no_write:
        append_results(lines)
        print(f"\nappended to {RESULTS}")


if __name__ == "__main__":
    main()
