"""Warm-up and schedules step per optimizer step inside a real fit (gradient accumulation included)."""

from __future__ import annotations

import math

import pytest

from autotimm import AutoTrainer

from training_utils import LrPerStep, quiet, tiny_model


@pytest.mark.parametrize("accumulate, steps_per_epoch", [(1, 3), (2, 2)])
def test_one_epoch_warmup_ramps_within_the_first_epoch(tiny_data, tmp_path, accumulate, steps_per_epoch):
    # 12 training images, batch 4: 3 batches per epoch -> ceil(3 / accumulate) optimizer steps per epoch.
    record = LrPerStep()
    model = tiny_model(lr=1e-3, scheduler="cosine", scheduler_kwargs={"warmup_epochs": 1})
    trainer = AutoTrainer(max_epochs=2, default_root_dir=tmp_path, precision="32-true", callbacks=[record],
                          accumulate_grad_batches=accumulate, limit_val_batches=0, num_sanity_val_steps=0,
                          enable_checkpointing=False, report=False, csv_log=False, **quiet())
    trainer.fit(model, datamodule=tiny_data)
    assert trainer.lr_scheduler_configs[0].interval == "step"
    assert len(record.lrs) == 2 * steps_per_epoch
    n = steps_per_epoch
    warm = [1e-3 * (0.001 + 0.999 * i / n) for i in range(n)]  # linear from lr x 0.001 over the first epoch
    cosine = [1e-3 * 0.5 * (1 + math.cos(math.pi * i / n)) for i in range(n)]  # then cosine over the second
    assert record.lrs == pytest.approx(warm + cosine, rel=1e-6)
