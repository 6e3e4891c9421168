"""`make demo`: train the "nano" preset (FCOS on ``mobilenetv4_conv_small``, see :mod:`autotimm.presets`) on
the embedded shapes data, evaluate, and write ``runs/demo/`` (best checkpoint, metrics CSV, loss/mAP
plot, val images with predictions, the evaluation report of the best checkpoint in ``report/``).

    python -m autotimm.demo [--preset nano] [--epochs 12] [--image-size 192] [--backbone NAME] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
import warnings
from pathlib import Path

import torch


def _plot_history(metrics_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses, epochs, maps = [], [], [], []
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            if row.get("train/loss_step"):
                steps.append(int(row["step"]))
                losses.append(float(row["train/loss_step"]))
            if row.get("val/mAP"):
                epochs.append(int(row["epoch"]))
                maps.append(float(row["val/mAP"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(steps, losses, lw=0.8)
    ax1.set(title="training loss", xlabel="step", yscale="log")
    ax2.plot(epochs, maps, marker="o")
    ax2.set(title="val mAP@[.5:.95]", xlabel="epoch", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", default="nano", choices=["nano", "small", "medium"],
                        help="detector preset (autotimm.presets); default nano")
    parser.add_argument("--backbone", default=None, help="another timm backbone with the preset's other settings")
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from autotimm import AutoTrainer, FeatureBackboneConfig, ObjectDetector
    from autotimm.data import example
    from autotimm.presets import preset

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shapes = example("shapes")
    data = shapes.datamodule(image_size=args.image_size, batch_size=args.batch_size, num_workers=2)
    chosen = preset(args.preset)
    model_kwargs = {**chosen.recipe().model_kwargs, "compile_model": False, "deterministic": False, "seed": args.seed}
    if args.lr is not None:
        model_kwargs["lr"] = args.lr
    backbone = FeatureBackboneConfig(args.backbone or chosen.backbone, pretrained=True, fallback_to_scratch=True)
    model = ObjectDetector(backbone, num_classes=len(shapes.class_names), **model_kwargs)
    trainer = AutoTrainer(max_epochs=args.epochs, default_root_dir=str(out), live_plot=_has_live_plot(), log_every_n_steps=5)
    trainer.fit(model, datamodule=data)
    out = trainer.run_dir  # runs/demo2, ... when runs/demo holds an earlier run
    best = trainer.best_model_path
    model = ObjectDetector.load_from_checkpoint(best)
    metrics = AutoTrainer(default_root_dir=str(out / "eval"), logger=False, enable_checkpointing=False, monitor=None,
                          enable_progress_bar=False, enable_model_summary=False).validate(model, datamodule=data, verbose=False)[0]
    _plot_history(out / "metrics.csv", out / "curves.png")
    data.setup("validate")
    val_records = data.val_dataset.records[:4] if hasattr(data.val_dataset, "records") else []
    paths = [r.image_path for r in val_records]
    for i, result in enumerate(model.predict(paths)):
        result.save(out / f"val_pred_{i}.png", score_thresh=0.3)  # the one drawing helper: autotimm.drawing
    elapsed = time.time() - start
    summary = {
        "val/mAP": round(float(metrics["val/mAP"]), 4),
        "val/mAP_50": round(float(metrics.get("val/mAP_50", float("nan"))), 4),
        "best_checkpoint": best,
        "preset": args.preset,
        "backbone": backbone.model_name,
        "epochs": args.epochs,
        "seconds": round(elapsed, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n=== autotimm demo ===")
    for key, value in summary.items():
        print(f"{key:>16}: {value}")
    print(f"{'outputs':>16}: {out}/ (metrics.csv, curves.png, val_pred_*.png, report/, checkpoints/)")
    return summary


def _has_live_plot() -> bool:
    try:
        from autotimm.callbacks import LivePlot  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    torch.set_float32_matmul_precision("high")
    main()
