"""AutoTrainer writes the evaluation report of the best checkpoint at the end of fit; report=False turns it off."""

from __future__ import annotations

import json

import pytest
import torch

from autotimm import AutoTrainer
from autotimm.callbacks import ReportCallback
from training_utils import quiet, tiny_model


def test_fit_writes_the_best_checkpoints_report(tiny_data, tmp_path):
    model = tiny_model(score_thresh=0.0)
    trainer = AutoTrainer(max_epochs=2, default_root_dir=str(tmp_path / "run"), precision="32-true", accelerator="cpu",
                          limit_train_batches=1, **quiet())
    trainer.fit(model, datamodule=tiny_data)
    weights_after_fit = {k: v.clone() for k, v in model.state_dict().items()}
    report_dir = tmp_path / "run" / "report"
    assert (report_dir / "report.json").is_file() and (report_dir / "f1_confidence.png").is_file()
    data = json.loads((report_dir / "report.json").read_text())
    assert data["class_names"] == ["circle", "square", "triangle"] and data["num_images"] == 6
    # The report is the best checkpoint's: its mAP equals validating that checkpoint.
    best = trainer.checkpoint_callback.best_model_path
    best_score = float(trainer.checkpoint_callback.best_model_score)
    assert data["summary"]["map"] == pytest.approx(best_score, abs=1e-4)
    callback = next(c for c in trainer.callbacks if isinstance(c, ReportCallback))
    assert callback.report_dir == report_dir and best
    # The model keeps its final weights (the report borrowed the best ones).
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights_after_fit.items())
    # Validating the best checkpoint gives the report's numbers (recall too, which is not ~0 here).
    validator = AutoTrainer(default_root_dir=str(tmp_path / "val"), precision="32-true", accelerator="cpu", logger=False,
                            enable_checkpointing=False, monitor=None, **quiet())
    metrics = validator.validate(model, datamodule=tiny_data, ckpt_path=best, verbose=False)[0]
    assert data["summary"]["mar_100"] > 0
    assert data["summary"]["mar_100"] == pytest.approx(float(metrics["val/mAP_mar_100"]), abs=1e-4)


def test_report_switch_off(tiny_data, tmp_path):
    trainer = AutoTrainer(max_epochs=1, default_root_dir=str(tmp_path / "run"), precision="32-true", accelerator="cpu",
                          limit_train_batches=1, report=False, **quiet())
    assert not any(isinstance(c, ReportCallback) for c in trainer.callbacks)
    trainer.fit(tiny_model(), datamodule=tiny_data)
    assert not (tmp_path / "run" / "report").exists()
