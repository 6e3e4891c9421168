"""The ``autotimm`` command: ``fit | validate | test | predict`` from YAML (LightningCLI), ``export``,
and ``predict --source`` on any images or a video.

    autotimm fit --config config.yaml
    autotimm fit --print_config > config.yaml     # a full, editable config
    autotimm export --checkpoint best.ckpt --output model.onnx
    autotimm predict --checkpoint best.ckpt --source images/ --save-dir runs/predict

``autotimm predict`` with ``--source`` (or ``--checkpoint``) runs :mod:`autotimm.predict_cli` (drawn images
or video + ``predictions.json``, no annotation file needed); without them it stays LightningCLI's
``predict`` (a config with a data module, ``--ckpt_path``).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        from autotimm.export_cli import main as export_main

        sys.exit(export_main(argv[1:]))
    if argv and argv[0] == "predict" and _wants_source_predict(argv[1:]):
        from autotimm.predict_cli import main as predict_main

        sys.exit(predict_main(argv[1:]))
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


def _wants_source_predict(args: list[str]) -> bool:
    """``predict --source/--checkpoint/--save-dir ...`` (and plain ``predict --help``) is ours;
    ``predict --config ...`` is LightningCLI's."""
    ours = ("--source", "--checkpoint", "--save-dir")
    return args in (["-h"], ["--help"]) or any(a.split("=", 1)[0] in ours for a in args)


if __name__ == "__main__":
    main()
