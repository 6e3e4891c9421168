"""The `autotimm` command runs one short fit from a YAML file (LightningCLI)."""

from __future__ import annotations

import pytest
import yaml

from autotimm import ObjectDetector
from autotimm.cli import main


def test_cli_fit_from_yaml(tiny_shapes, tmp_path):
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "precision": "32-true", "default_root_dir": str(tmp_path / "run"),
                    "enable_progress_bar": False, "enable_model_summary": False, "limit_train_batches": 2},
        "model": {"backbone": {"model_name": "resnet18", "pretrained": False}, "num_classes": 3, "fpn_channels": 32,
                  "head_num_convs": 1, "compile_model": False, "deterministic": False, "lr": 0.001},
        "data": {"train": str(tiny_shapes["train"]), "val": str(tiny_shapes["val"]), "image_size": 96,
                 "batch_size": 4, "num_workers": 0, "augment": "none"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path)])
    best = list((tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    model = ObjectDetector.load_from_checkpoint(best[0])
    assert model.hparams.fpn_channels == 32 and model.class_names == ["circle", "square", "triangle"]


def test_cli_rejects_unknown_option(tmp_path):
    with pytest.raises(SystemExit):
        main(["fit", "--model.no_such_option", "1"])
