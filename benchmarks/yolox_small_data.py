"""Why ``yolox_recipe()`` stalled on a small real dataset: short from-scratch ablations on the bundled
raccoon photos (160 train / 40 val, one class), resnet18 + FPN, 256 px, batch 8.

Every variant trains with the same seed and data order; the val mAP / mAP50 (pycocotools-equal, original
frame) after each epoch is printed as one json line per epoch, so that the figures are deterministic and
independent of the machine's load (no timing here). Run one variant or several::

    nice -n 10 python -m benchmarks.yolox_small_data --epochs 5 --fpn-channels 128 lr_linear lr_0.01
    python -m benchmarks.yolox_small_data --list

The variants are keyword overrides of :func:`autotimm.recipes.yolox_recipe` (and of the detector); see
:data:`VARIANTS`. Results are recorded in ``benchmarks/RESULTS.md`` ("YOLOX recipe on small data").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from typing import Any

# name -> (yolox_recipe overrides, ObjectDetector overrides)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # The lr is given explicitly (lr_min_batch=1: lr_per_image x batch), so that every row keeps its
    # meaning whatever the recipe's defaults become.
    "lr_linear": ({"lr_per_image": 0.01 / 64, "lr_min_batch": 1}, {}),  # YOLOX's linear rule: 0.00125 at batch 8
    "lr_0.01": ({"lr_per_image": 0.01 / 8, "lr_min_batch": 1}, {}),  # YOLOX's batch-64 lr at batch 8
    "lr_linear_no_mosaic_mixup": ({"lr_per_image": 0.01 / 64, "lr_min_batch": 1, "mosaic_prob": 0.0, "mixup_prob": 0.0}, {}),
    "lr_0.01_no_mosaic_mixup": ({"lr_per_image": 0.01 / 8, "lr_min_batch": 1, "mosaic_prob": 0.0, "mixup_prob": 0.0}, {}),
    "lr_0.01_no_mixup": ({"lr_per_image": 0.01 / 8, "lr_min_batch": 1, "mixup_prob": 0.0}, {}),
    "lr_0.01_no_ema": ({"lr_per_image": 0.01 / 8, "lr_min_batch": 1, "ema": False}, {}),
    "recipe": ({}, {}),  # yolox_recipe's defaults as they are now
}


def _collector(name: str) -> Any:
    """A Lightning callback that prints (and keeps in ``.rows``) val/mAP, val/mAP_50 and the lr after
    every validation, as one json line tagged with the variant's ``name``."""
    import lightning as L

    class Collector(L.Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []

        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            # (not on_validation_epoch_end: callbacks run before the module's, which logs the mAP)
            if trainer.sanity_checking:
                return
            m = trainer.callback_metrics
            row: dict[str, float] = {"epoch": trainer.current_epoch + 1}
            for key in ("val/mAP", "val/mAP_50"):
                if key in m:
                    row[key] = round(float(m[key]), 4)
            row["lr"] = float(f"{trainer.optimizers[0].param_groups[0]['lr']:.3g}")
            self.rows.append(row)
            print(json.dumps({"variant": name, **row}), flush=True)

    return Collector()


def run_variant(
    name: str, epochs: int, image_size: int = 256, batch_size: int = 8, fpn_channels: int = 256, seed: int = 0
) -> list[dict[str, float]]:
    """Train variant ``name`` from scratch for ``epochs`` and return its per-epoch val metrics."""
    import autotimm
    from autotimm.data import example
    from autotimm.models.backbone import FeatureBackboneConfig
    from autotimm.recipes import yolox_recipe

    recipe_kw, model_kw = VARIANTS[name]
    recipe_kw = {"no_aug_epochs": min(2, epochs - 1), "warmup_epochs": min(5, epochs // 3), "fpn_channels": fpn_channels, **recipe_kw}
    recipe = yolox_recipe(image_size=image_size, batch_size=batch_size, max_epochs=epochs, **recipe_kw)
    dm = example("raccoon").datamodule(
        **recipe.datamodule_kwargs, num_workers=1, persistent_workers=False, image_check="none", shuffle_seed=seed,
    )  # fmt: skip
    dm.setup("fit")
    model = autotimm.ObjectDetector(
        FeatureBackboneConfig("resnet18", pretrained=False), num_classes=dm.num_classes,
        **{**recipe.model_kwargs, "compile_model": False, "seed": seed, **model_kw},
    )  # fmt: skip
    collector = _collector(name)
    trainer_kwargs = dict(recipe.trainer_kwargs)
    callbacks = list(trainer_kwargs.pop("callbacks", [])) + [collector]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = autotimm.AutoTrainer(
            **trainer_kwargs, callbacks=callbacks, default_root_dir=tmp, seed=seed, enable_checkpointing=False,
            report=False, csv_log=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(model, datamodule=dm)
    return collector.rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", default=["recipe"], help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (recipe_kw, model_kw) in VARIANTS.items():
            print(f"{name}: recipe {recipe_kw} model {model_kw}")
        return 0
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {', '.join(VARIANTS)}")
    for name in args.variants:
        run_variant(name, args.epochs, fpn_channels=args.fpn_channels)  # prints one json line per epoch as it goes
    return 0


if __name__ == "__main__":
    sys.exit(main())
