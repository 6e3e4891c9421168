"""The ``autotimm`` command: ``fit | validate | test | predict`` from YAML (LightningCLI), and ``export``.

    autotimm fit --config config.yaml
    autotimm fit --print_config > config.yaml     # a full, editable config
    autotimm export --checkpoint best.ckpt --output model.onnx
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        from autotimm.export_cli import main as export_main

        sys.exit(export_main(argv[1:]))
    try:
        from lightning.pytorch.cli import LightningCLI
    except ImportError as err:  # pragma: no cover - jsonargparse missing
        raise SystemExit(f"The autotimm command needs the 'cli' extra: pip install 'autotimm[cli]' ({err}).")

    from autotimm.data.datamodule import DetectionDataModule
    from autotimm.detector import ObjectDetector
    from autotimm.training.trainer import AutoTrainer

    LightningCLI(
        ObjectDetector,
        DetectionDataModule,
        trainer_class=AutoTrainer,
        args=argv,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main()
