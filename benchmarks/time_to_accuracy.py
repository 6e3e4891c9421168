"""Accuracy against training time: the presets against the reference-default FCOS and YOLOX.

Split in three commands, because wall-clock figures are only worth something on an idle machine
while the accuracy curve is deterministic and can be produced anywhere:

* ``accuracy``: train every config from scratch on the bundled raccoon photos (its real train/val
  split, 256 px, batch 8, one seed, no data-loader workers) with the config's own recipe, and record the
  val mAP and mAP50 (autotimm's MetricManager, equal to pycocotools' COCOeval) after every
  ``--eval-every`` epochs, with the optimizer step count. Saved as JSON.
* ``timing``: seconds per training step (data loading included, the loader's default workers) and
  inference ms per image, every config side by side: ``--rounds`` rounds, each timing ``--steps``
  steps of every config in turn; the median over rounds is kept. Saved as JSON.
* ``table``: mAP at a budget of B minutes = the mAP of the last evaluation at a step count <= B * 60 /
  (s per step), for each budget; plus mAP after equal epochs. Markdown on stdout.

    python -m benchmarks.time_to_accuracy accuracy --out tta_accuracy.json
    python -m benchmarks.time_to_accuracy timing --out tta_timing.json
    python -m benchmarks.time_to_accuracy table --accuracy tta_accuracy.json --timing tta_timing.json

Ultralytics' YOLOv8n/s join the table through :mod:`benchmarks.ultralytics_baseline`, which writes
the same two files' format (pass them after autotimm's to ``--accuracy`` / ``--timing``).

Every config is built with ``pretrained=False`` (from scratch, as the issue measures; model hubs
are not needed).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

IMAGE_SIZE, BATCH_SIZE, SEED = 256, 8, 0
STEPS_PER_EPOCH = 20  # raccoon: 160 training photos / batch 8
CONFIGS = ("nano", "small", "medium", "fcos_reference", "yolox_reference")
# The nano preset's settings on other backbones of similar FLOPs (ablation of its backbone choice;
# not in the default run): config name -> timm backbone.
NANO_BACKBONES = {"nano_cs3darknet_s": "cs3darknet_s", "nano_efficientnet_lite0": "efficientnet_lite0"}
# The nano preset with other model arguments (ablation of its head; not in the default run):
# config name -> the arguments that replace the preset's.
NANO_OVERRIDES = {"nano_dw": {"head_conv": "depthwise"}}
ALL_CONFIGS = CONFIGS + tuple(NANO_BACKBONES) + tuple(NANO_OVERRIDES)


@dataclass
class Built:
    """A config ready to train: its detector, data module and Lightning Trainer keyword arguments."""

    model: Any
    datamodule: Any
    trainer_kwargs: dict[str, Any]


def build(name: str, epochs: int, num_workers: int | None) -> Built:
    """Build config ``name`` for ``epochs`` epochs on the raccoon photos at 256 px, batch 8.

    Configs: the presets ("nano", "small", "medium"; their model and augmentation, at 256 px for
    every config), the nano preset on another backbone (:data:`NANO_BACKBONES`) or with other model
    arguments (:data:`NANO_OVERRIDES`, e.g. "nano_dw": depthwise-separable head convs),
    "fcos_reference" (the reference constructor defaults: resnet18, FPN 256, four head convs, P3-P7,
    AdamW, with the README quick start's lr 1e-3) and "yolox_reference" (resnet18 with
    ``yolox_recipe()``'s settings at 256 px, batch 8).
    """
    from autotimm import FeatureBackboneConfig, ObjectDetector
    from autotimm.data import example
    from autotimm.presets import DETECTOR_PRESETS
    from autotimm.recipes import yolox_recipe

    if name not in ALL_CONFIGS:
        raise ValueError(f"unknown config {name!r}; expected some of {list(ALL_CONFIGS)}.")
    raccoon = example("raccoon")
    data_kwargs: dict[str, Any] = {"augment": "default"}
    trainer_kwargs: dict[str, Any] = {}
    if name in DETECTOR_PRESETS or name in NANO_BACKBONES or name in NANO_OVERRIDES:
        chosen = DETECTOR_PRESETS[name if name in DETECTOR_PRESETS else "nano"]
        recipe = chosen.recipe()
        backbone, model_kwargs = NANO_BACKBONES.get(name, chosen.backbone), recipe.model_kwargs | NANO_OVERRIDES.get(name, {})
        data_kwargs["augment"] = recipe.datamodule_kwargs.get("augment", "default")
    elif name == "fcos_reference":
        backbone, model_kwargs = "resnet18", {"lr": 1e-3}
    else:
        # YOLOX's 5 warm-up epochs and 15 no-aug epochs scaled to a short run (they must fit in it)
        recipe = yolox_recipe(image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, max_epochs=epochs,
                              no_aug_epochs=min(15, max(1, epochs // 5)) if epochs > 1 else 0,
                              warmup_epochs=min(5, epochs // 3))
        backbone, model_kwargs = "resnet18", recipe.model_kwargs
        data_kwargs["augment"] = recipe.datamodule_kwargs["augment"]
        trainer_kwargs = {k: v for k, v in recipe.trainer_kwargs.items() if k != "max_epochs"}
    dm = raccoon.datamodule(image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, num_workers=num_workers, shuffle_seed=SEED, **data_kwargs)
    model = ObjectDetector(FeatureBackboneConfig(backbone, pretrained=False), num_classes=len(raccoon.class_names),
                           compile_model=False, seed=SEED, deterministic=False, **model_kwargs)
    return Built(model, dm, trainer_kwargs)


class EvalLog:
    """Lightning callback: records ``(epoch, step, val/mAP, val/mAP_50)`` after every validation."""

    def __init__(self) -> None:
        from lightning.pytorch.callbacks import Callback

        log = self

        class _Callback(Callback):
            def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
                if trainer.sanity_checking:
                    return
                m = trainer.callback_metrics
                log.rows.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step,
                                 "map": float(m["val/mAP"]), "map_50": float(m["val/mAP_50"])})
                print(f"[accuracy] epoch {log.rows[-1]['epoch']} step {trainer.global_step}: "
                      f"mAP {log.rows[-1]['map']:.4f} mAP50 {log.rows[-1]['map_50']:.4f}", flush=True)

        self.rows: list[dict[str, float]] = []
        self.callback = _Callback()


def run_accuracy(configs: list[str], epochs: dict[str, int], eval_every: int, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Train each config for its number of epochs; the val mAP curve per config (``save``d after each)."""
    import lightning as L

    out: dict[str, Any] = {}
    for name in configs:
        built = build(name, epochs[name], num_workers=0)
        log = EvalLog()
        L.seed_everything(SEED, verbose=False)
        trainer = L.Trainer(
            accelerator="cpu", max_epochs=epochs[name], check_val_every_n_epoch=eval_every, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            gradient_clip_val=35.0, callbacks=[log.callback, *built.trainer_kwargs.get("callbacks", [])],
        )
        print(f"[accuracy] {name}: {epochs[name]} epochs", flush=True)
        start = time.perf_counter()
        trainer.fit(built.model, datamodule=built.datamodule)
        out[name] = {"epochs": epochs[name], "steps_per_epoch": trainer.num_training_batches, "curve": log.rows,
                     "train_seconds": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads()}
        save(out)
    return out


def _median_seconds(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_timing(configs: list[str], steps: int, rounds: int, num_workers: int | None) -> dict[str, Any]:
    """Seconds per training step (loader included) and inference ms per image, interleaved by round."""
    from autotimm.optim import build_optimizer

    state = {}
    for name in configs:
        built = build(name, epochs=10, num_workers=num_workers)
        built.datamodule.setup("fit")
        model = built.model.train()
        opt = build_optimizer(model.hparams.optimizer, model, model.hparams.lr, model.hparams.weight_decay, model.hparams.optimizer_kwargs)
        loader = built.datamodule.train_dataloader()
        val_images = [built.datamodule.val_dataset[i][0] for i in range(8)]  # uint8 [3, S, S] letterboxed
        state[name] = {"model": model, "opt": opt, "loader": loader, "iter": iter(loader), "val": val_images}

    def batches(s: dict[str, Any]) -> Any:
        try:
            return next(s["iter"])
        except StopIteration:
            s["iter"] = iter(s["loader"])
            return next(s["iter"])

    def train_steps(s: dict[str, Any], n: int) -> None:
        model, opt = s["model"].train(), s["opt"]
        for _ in range(n):
            images, targets = batches(s)
            images = model.batch_images(images)  # uint8 -> normalised float, as training_step does
            loss = model.compute_loss(images, targets)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def infer(s: dict[str, Any]) -> None:
        s["model"].eval()
        s["model"].predict(s["val"], image_size=IMAGE_SIZE, batch_size=1, progress=False)  # the training size

    for s in state.values():  # warm-up: the workers start, the allocator fills
        train_steps(s, 2)
        infer(s)
    step_s: dict[str, list[float]] = {n: [] for n in state}
    infer_ms: dict[str, list[float]] = {n: [] for n in state}
    for r in range(rounds):
        for name, s in state.items():
            step_s[name].append(_median_seconds(lambda: train_steps(s, 1), steps))
            infer_ms[name].append(1000 * _median_seconds(lambda: infer(s), 2) / len(s["val"]))
        print(f"[timing] round {r + 1}/{rounds}: " + ", ".join(f"{n} {step_s[n][-1]:.3f} s/step" for n in state), flush=True)
    return {
        name: {"s_per_step": statistics.median(step_s[name]), "infer_ms_per_image": statistics.median(infer_ms[name]),
               "rounds": rounds, "steps_per_round": steps}
        for name in state
    } | {"_machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                      "num_workers": num_workers}}


def epochs_for_budget(minutes: float, s_per_step: float, steps_per_epoch: int) -> int:
    """Whole epochs that cover ``minutes`` of training at ``s_per_step`` (at least 1).

    Example:
        >>> epochs_for_budget(4, 0.5, 20)  # 480 steps
        24
    """
    if not (minutes > 0 and s_per_step > 0 and steps_per_epoch > 0):
        raise ValueError(f"epochs_for_budget({minutes}, {s_per_step}, {steps_per_epoch}): all must be positive.")
    return max(1, math.ceil(minutes * 60 / s_per_step / steps_per_epoch))


def budget_map(curve: list[dict[str, float]], steps: float) -> dict[str, float] | None:
    """The last evaluation at a step count <= ``steps`` (None when none is)."""
    done = [row for row in curve if row["step"] <= steps]
    return done[-1] if done else None


def make_table(accuracy: dict[str, Any], timing: dict[str, Any], budgets: list[float], flops: dict[str, float] | None = None) -> str:
    """Markdown: per config, s/step, inference ms/image, mAP / mAP50 at each budget and at the last common epoch."""
    names = [n for n in accuracy if n in timing]
    common_epoch = min(max(r["epoch"] for r in accuracy[n]["curve"]) for n in names) if names else 0
    head = ["config", "s/step", "infer ms/img"] + [f"mAP / mAP50 at {b:g} min" for b in budgets] + [f"mAP / mAP50 at epoch {common_epoch}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        curve, s = accuracy[name]["curve"], timing[name]["s_per_step"]
        trained = accuracy[name]["epochs"] * accuracy[name]["steps_per_epoch"]
        infer = timing[name].get("infer_ms_per_image")
        cells = [name, f"{s:.3f}", "-" if infer is None else f"{infer:.1f}"]
        for b in budgets:
            steps = b * 60 / s
            row = budget_map(curve, steps)
            text = "-" if row is None else f"{row['map']:.3f} / {row['map_50']:.3f} (step {row['step']})"
            cells.append(text + (" (run ended first)" if steps > trained * 1.05 else ""))
        at_epoch = next((r for r in curve if r["epoch"] == common_epoch), None)
        cells.append("-" if at_epoch is None else f"{at_epoch['map']:.3f} / {at_epoch['map_50']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    acc = sub.add_parser("accuracy", help="train every config, record val mAP by step (deterministic)")
    acc.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=ALL_CONFIGS)
    acc.add_argument("--epochs", type=int, default=30, help="epochs per config (default 30)")
    acc.add_argument("--epochs-for", nargs="*", default=[], metavar="CONFIG=N", help="per-config epochs, e.g. fcos_reference=4")
    acc.add_argument("--timing", type=Path, default=None,
                     help="a timing JSON: train each config for the epochs that fit --budget-minutes at its s/step")
    acc.add_argument("--budget-minutes", type=float, default=4.0, help="with --timing: the largest budget (default 4)")
    acc.add_argument("--eval-every", type=int, default=2, help="validate every N epochs")
    acc.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    acc.add_argument("--out", type=Path, required=True)
    tim = sub.add_parser("timing", help="s/step and inference ms/image, interleaved (run on an idle machine)")
    tim.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=ALL_CONFIGS)
    tim.add_argument("--steps", type=int, default=5, help="timed steps per config per round")
    tim.add_argument("--rounds", type=int, default=3)
    tim.add_argument("--num-workers", type=int, default=None, help="loader workers (default: the data module's)")
    tim.add_argument("--out", type=Path, required=True)
    tab = sub.add_parser("table", help="combine accuracy and timing JSON files into the markdown table")
    tab.add_argument("--accuracy", type=Path, nargs="+", required=True, help="accuracy files (also benchmarks.ultralytics_baseline's)")
    tab.add_argument("--timing", type=Path, nargs="+", required=True, help="timing files, the same configs")
    tab.add_argument("--budgets", type=float, nargs="+", default=[1, 2, 4, 8], help="minutes")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*cannot be downloaded.*")
    if args.command == "accuracy":
        if args.threads:
            torch.set_num_threads(args.threads)
        epochs = {name: args.epochs for name in args.configs}
        if args.timing is not None:
            timing = json.loads(args.timing.read_text())
            missing = [n for n in args.configs if n not in timing]
            if missing:
                raise SystemExit(f"--timing {args.timing} has no s/step for {missing}; run the timing command with them first.")
            epochs = {n: epochs_for_budget(args.budget_minutes, timing[n]["s_per_step"], STEPS_PER_EPOCH) for n in args.configs}
            print(f"[accuracy] epochs for {args.budget_minutes:g} min: {epochs}", flush=True)
        for item in args.epochs_for:
            name, _, n = item.partition("=")
            if name not in epochs or not n.isdigit():
                raise SystemExit(f"--epochs-for {item!r}: expected CONFIG=N with CONFIG among {args.configs}.")
            epochs[name] = int(n)
        def save(result: dict[str, Any]) -> None:
            args.out.write_text(json.dumps({"image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE, "seed": SEED, **result}, indent=1))

        run_accuracy(args.configs, epochs, args.eval_every, save)
    elif args.command == "timing":
        result = run_timing(args.configs, args.steps, args.rounds, args.num_workers)
        args.out.write_text(json.dumps(result, indent=1))
        for name, r in result.items():
            if not name.startswith("_"):
                print(f"{name:16s} {r['s_per_step']:.3f} s/step  {r['infer_ms_per_image']:.1f} ms/image")
    else:
        accuracy: dict[str, Any] = {}
        timing: dict[str, Any] = {}
        for path in args.accuracy:
            accuracy |= {k: v for k, v in json.loads(path.read_text()).items() if isinstance(v, dict) and "curve" in v}
        for path in args.timing:
            timing |= {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
        print(make_table(accuracy, timing, args.budgets))


if __name__ == "__main__":
    main()
