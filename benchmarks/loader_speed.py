"""Can the data loader feed training? Images/s of the train loader vs a resnet18 FCOS training step.

    python -m benchmarks.loader_speed [--image-size 512] [--workers 2] [--batch-size 16] [--no-model]

Measures the train DataLoader of the bundled datasets (raccoon: real JPEGs 178-2000 px; shapes:
small synthetic JPEGs) with each augmentation preset, after one warm-up epoch (persistent workers),
then, when ``autotimm.ObjectDetector`` imports, the images/s of a resnet18 FCOS training step
(forward, loss, backward, optimizer step) on one of those batches. Prints a table and appends it to
benchmarks/RESULTS.md under "## Data loader".
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Data loader"


def loader_rate(dataset: str, augment: str, image_size: int, workers: int, batch_size: int, epochs: int) -> tuple[float, tuple]:
    """Images/s of the train loader over ``epochs`` epochs after a warm-up epoch; and one batch."""
    from autotimm.data import example

    dm = example(dataset).datamodule(image_size=image_size, batch_size=batch_size, num_workers=workers,
                                     augment=augment, image_check="none")
    dm.setup("fit")
    loader = dm.train_dataloader()
    batch = None
    for batch in loader:  # warm-up: worker start, page cache
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in loader:
            count += images.shape[0]
    return count / (time.perf_counter() - start), batch


def model_rate(batch: tuple, num_classes: int, steps: int, bf16: bool) -> float | None:
    """Images/s of resnet18 FCOS training steps on ``batch``; None when the detector is unavailable."""
    try:
        from autotimm import FeatureBackboneConfig, ObjectDetector
    except (ImportError, AttributeError):
        return None
    model = ObjectDetector(FeatureBackboneConfig("resnet18", pretrained=False), num_classes=num_classes, compile_model=False)
    model.train()
    if not hasattr(model, "compute_loss"):
        return None
    images, targets = batch
    images = model.normalize(images) if hasattr(model, "normalize") else images.float() / 255
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.compute_loss(images, targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * images.shape[0] / (time.perf_counter() - start)


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
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loader")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--no-model", action="store_true", help="time the loader only")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    rows, batch = [], None
    for dataset in ("raccoon", "shapes"):
        for augment in ("none", "default", "strong"):
            rate, last = loader_rate(dataset, augment, args.image_size, args.workers, args.batch_size, args.epochs)
            rows.append((f"loader {dataset}, augment={augment}", rate))
            if dataset == "raccoon" and augment == "default":
                batch = last
            print(f"{rows[-1][0]:<44} {rate:8.1f} img/s", flush=True)
    if not args.no_model and batch is not None:
        bf16_ok = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        for bf16 in (False, True) if bf16_ok else (False,):
            rate = model_rate(batch, 1, args.steps, bf16)
            if rate is None:
                print("autotimm.ObjectDetector (with compute_loss) is not available: loader half only.")
                break
            label = "resnet18 FCOS train step" + (", bf16 + channels_last" if bf16 else ", fp32")
            rows.append((label, rate))
            print(f"{label:<44} {rate:8.1f} img/s", flush=True)

    cpu = platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"{date.today().isoformat()}, {os.cpu_count()} CPU cores ({cpu}), load average {load:.1f} at the end, "
              f"torch {torch.__version__}, {args.image_size} px, batch {args.batch_size}, {args.workers} workers")
    lines = [header, "", "| what | images/s |", "|---|---:|"] + [f"| {name} | {rate:.1f} |" for name, rate in rows]
    print("\n" + "\n".join(lines))
    if not args.no_write:
        append_results(lines)
        print(f"\nappended to {RESULTS}")


if __name__ == "__main__":
    main()
