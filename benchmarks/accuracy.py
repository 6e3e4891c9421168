"""Accuracy at equal budget: every contender trains from scratch on the bundled "shapes" data with
the same backbone, image size, batch size, optimizer, schedule, number of steps and the very same
batches, then is scored on the val split by one evaluator (pycocotools, original-frame boxes)."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Iterator

import torch
from torch import Tensor

from benchmarks.config import BenchConfig
from benchmarks.contenders import Contender, ContenderSpec, synthetic_batch
from benchmarks.report import Table

# The accuracy run uses a lighter detector than the speed run (same for every contender), so that
# the quick run can afford enough steps to learn something.
ACCURACY_FPN_CHANNELS = 128
ACCURACY_HEAD_NUM_CONVS = 2
CLIP_NORM = 35.0  # gradient clipping, AutoTrainer's default


def shapes_datamodule(cfg: BenchConfig) -> Any:
    """The bundled shapes data at the accuracy run's size (default augmentation on train)."""
    from autotimm.data import example

    dm = example("shapes").datamodule(
        image_size=cfg.accuracy_image_size, batch_size=cfg.accuracy_batch_size, num_workers=cfg.accuracy_workers,
        augment="default", persistent_workers=False, image_check="none",
    )  # fmt: skip
    dm.setup("fit")
    return dm


def seeded_batches(loader: Any, steps: int, seed: int) -> Iterator[tuple[int, tuple[Tensor, list[dict[str, Tensor]]]]]:
    """``steps`` training batches, identical for every caller: the global RNG is re-seeded before
    each epoch's iterator starts, which fixes the shuffle order and the workers' augmentation seeds."""
    step, epoch = 0, 0
    while step < steps:
        torch.manual_seed(seed + 1000 + epoch)
        for batch in loader:
            if step == steps:
                return
            yield step, batch
            step += 1
        epoch += 1


def lr_lambda(steps: int, warmup: int) -> Any:
    """Linear warm-up from 1 % over ``warmup`` steps, then cosine decay to 0 at ``steps``."""

    def factor(step: int) -> float:
        if step < warmup:
            return 0.01 + 0.99 * step / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return factor


def evaluate(contender: Contender, loader: Any, max_images: int | None) -> dict[str, float]:
    """COCO mAP of ``contender`` on ``loader`` (letterboxed val images), boxes in the original frame."""
    from autotimm.detector import to_original_frame
    from autotimm.metrics import coco_map

    preds, gts, seen = [], [], 0
    for images, targets in loader:
        if max_images is not None:
            images, targets = images[: max_images - seen], targets[: max_images - seen]
        dets = contender.infer(images)  # input frame (the letterboxed canvas)
        p, g = to_original_frame(dets, targets)
        preds += p
        gts += g
        seen += len(images)
        if max_images is not None and seen >= max_images:
            break
    return coco_map(preds, gts)


def train_and_evaluate(cfg: BenchConfig, key: str, dm: Any) -> dict[str, float]:
    """Train one contender for ``cfg.accuracy_steps`` steps and evaluate it on the val split."""
    spec = ContenderSpec.parse(key)
    train_loader, val_loader = dm.train_dataloader(), dm.val_dataloader()
    shape_only = synthetic_batch(1, cfg.accuracy_image_size, dm.num_classes)  # fixes S; training uses the loader's batches
    torch.manual_seed(cfg.seed)  # the same seed for every model's initial weights

    def adamw(params: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=cfg.accuracy_lr, weight_decay=1e-4)

    contender = Contender(spec, cfg.accuracy_backbone, shape_only, dm.num_classes, ACCURACY_FPN_CHANNELS, ACCURACY_HEAD_NUM_CONVS, adamw)
    warmup = max(1, min(100, cfg.accuracy_steps // 5))
    schedule = torch.optim.lr_scheduler.LambdaLR(contender.optimizer, lr_lambda(cfg.accuracy_steps, warmup))
    params = [p for p in contender.model.parameters() if p.requires_grad]
    losses: list[float] = []
    start = time.perf_counter()
    for step, (images, targets) in seeded_batches(train_loader, cfg.accuracy_steps, cfg.seed):
        loss = contender.loss(images, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{spec.name}: non-finite loss {float(loss)} at step {step} of the accuracy run.")
        contender.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
        contender.optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 25 == 0:
            print(f"[accuracy] {spec.name}: step {step}/{cfg.accuracy_steps} loss {losses[-1]:.3f}", flush=True)
    seconds = time.perf_counter() - start
    metrics = evaluate(contender, val_loader, cfg.accuracy_val_images)
    tail = losses[-max(1, len(losses) // 10) :]
    return {**metrics, "train_seconds": seconds, "final_loss": sum(tail) / len(tail)}


def run_accuracy(cfg: BenchConfig) -> tuple[list[Table], dict[str, dict[str, float]]]:
    """Train and score every accuracy contender (plus autotimm FCOS fp32 when ``accuracy_fp32_check``)."""
    keys = list(cfg.accuracy_contenders)
    if cfg.accuracy_fp32_check and "autotimm:fcos:fp32" not in keys:
        keys.append("autotimm:fcos:fp32")
    dm = shapes_datamodule(cfg)
    results = {}
    for key in keys:
        runs = []
        for seed in cfg.accuracy_seeds:
            runs.append(train_and_evaluate(replace(cfg, seed=seed), key, dm))
            print(f"[accuracy] {ContenderSpec.parse(key).name} (seed {seed}): mAP {runs[-1]['map']:.4f}, mAP50 {runs[-1]['map_50']:.4f}", flush=True)
        results[key] = {name: sum(r[name] for r in runs) / len(runs) for name in runs[0]}  # means over seeds
        results[key]["map_per_seed"] = [r["map"] for r in runs]
    seeds = ", ".join(map(str, cfg.accuracy_seeds))
    several = len(cfg.accuracy_seeds) > 1
    lead = f"Means over seeds {seeds}; for each seed the" if several else "The"
    n_val = len(dm.val_dataset) if cfg.accuracy_val_images is None else min(cfg.accuracy_val_images, len(dm.val_dataset))
    table = Table(
        f"Accuracy at equal budget (shapes, from scratch, {cfg.accuracy_backbone}, {cfg.accuracy_image_size} px, "
        f"batch {cfg.accuracy_batch_size}, {cfg.accuracy_steps} steps)",
        ["contender", "val mAP@[.5:.95]", "val mAP50", "final train loss", "train s/step"]
        + ([f"mAP per seed ({seeds})"] if several else []),
    )
    for key, r in results.items():
        per_seed = [" / ".join(f"{m:.3f}" for m in r["map_per_seed"])] if several else []
        table.add(ContenderSpec.parse(key).name, r["map"], r["map_50"], r["final_loss"], r["train_seconds"] / cfg.accuracy_steps, *per_seed)
    table.notes = [
        f"{lead} same initial seed and the same {cfg.accuracy_steps} augmented batches for every contender, AdamW lr {cfg.accuracy_lr:g} "
        f"(wd 1e-4, {max(1, min(100, cfg.accuracy_steps // 5))} warm-up steps, cosine to 0), gradient norm clipped at "
        f"{CLIP_NORM:g}; FPN {ACCURACY_FPN_CHANNELS} channels and {ACCURACY_HEAD_NUM_CONVS} head convs for all. "
        f"Scored on {n_val} val images by pycocotools (autotimm.metrics.coco_map) on original-frame boxes, "
        "score_thresh 0.05, NMS 0.5, 100 detections. 'final train loss' is each model's own loss (not comparable across models)."
    ]
    if not any(ContenderSpec.parse(k).variant == "zeroinit" for k in results):
        table.notes.append(
            "From scratch, autotimm builds timm ResNets with zero_init_last=False (timm's classification default "
            "zeroes each residual block's last BatchNorm, torchvision's ResNet does not); add "
            "'autotimm:fcos:auto:zeroinit' to --accuracy-contenders (the full run does) to see that choice's effect."
        )
    if "autotimm:fcos:fp32" in results and "autotimm:fcos:auto" in results:
        diff = 100 * abs(results["autotimm:fcos:auto"]["map"] - results["autotimm:fcos:fp32"]["map"])
        table.notes.append(f"Fast path vs fp32 (autotimm FCOS): |mAP difference| = {diff:.2f} points (target: within 1 point).")
    return [table], results
