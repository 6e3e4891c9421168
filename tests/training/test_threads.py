"""Torch threads and DataLoader workers sized to the cores other processes leave free."""

from __future__ import annotations

import pytest
import torch

from autotimm import AutoTrainer, DetectionDataModule
from autotimm.training.threads import CoreLoad, _free, measure_free_cores, plan_threads, usable_cores

from training_utils import quiet, tiny_model


def _load(usable: int, free: int) -> CoreLoad:
    return CoreLoad(usable=usable, busy_elsewhere=float(usable - free), free=free, source="psutil")


@pytest.mark.parametrize(
    "device, usable, free, threads, workers",
    [
        ("cpu", 2, 1, 1, 1),  # a 2-core laptop beside one busy process: no second OpenMP thread to wait for
        ("cpu", 2, 2, 2, 1),
        ("cpu", 8, 8, 6, 2),
        ("cpu", 16, 16, 12, 4),
        ("cpu", 64, 64, 56, 8),  # workers capped at 8
        ("gpu", 2, 1, 1, 1),
        ("gpu", 8, 8, 1, 7),  # on a GPU the CPU feeds the loader
        ("gpu", 32, 20, 12, 8),
    ],
)
def test_plan_from_free_cores(device, usable, free, threads, workers):
    plan = plan_threads(device, load=_load(usable, free))
    assert (plan.num_threads, plan.num_workers) == (threads, workers)
    line = plan.describe()
    assert f"{free} of {usable} cores free" in line and f"torch threads {threads}, DataLoader workers {workers}" in line


def test_fixed_counts_are_kept_and_the_rest_planned_around_them():
    assert (plan_threads("cpu", num_workers=0, load=_load(8, 8)).num_threads) == 8
    plan = plan_threads("cpu", num_threads=3, load=_load(8, 8))
    assert (plan.num_threads, plan.num_workers) == (3, 2)
    capped = plan_threads("cpu", max_threads=2, load=_load(8, 8))  # a user's lower torch.set_num_threads stays
    assert (capped.num_threads, capped.num_workers) == (2, 2)


@pytest.mark.parametrize("usable, busy, free", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 2.0, 1), (4, 1.5, 2)])
def test_a_core_counts_as_taken_when_half_busy(usable, busy, free):
    assert _free(usable, busy) == free


def test_measurement_stays_within_the_usable_cores():
    load = measure_free_cores(sample_s=0.05)
    assert load.usable == usable_cores() >= 1
    assert 0.0 <= load.busy_elsewhere <= load.usable and 1 <= load.free <= load.usable
    assert load.source in ("psutil", "loadavg")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"device": "tpu"}, r"device='tpu'\): expected 'cpu' or 'gpu'"),
        ({"num_threads": 0}, r"num_threads=0\): expected None .* or an int >= 1"),
        ({"num_workers": -1}, r"num_workers=-1\): expected None .* or an int >= 0"),
        ({"max_threads": 0}, r"max_threads=0\): expected None .* or an int >= 1"),
    ],
)
def test_bad_plan_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_threads(load=_load(2, 2), **kwargs)


def test_autotrainer_rejects_a_bad_thread_count(tmp_path):
    with pytest.raises(ValueError, match=r"AutoTrainer\(num_threads=0\): expected 'auto', 'off' or an int >= 1"):
        AutoTrainer(default_root_dir=tmp_path, num_threads=0)


def test_fit_applies_the_plan_says_it_once_and_restores_torch_threads(tiny_shapes, tmp_path, capsys):
    data = DetectionDataModule(train=tiny_shapes["train"], val=tiny_shapes["val"], image_size=64, batch_size=4,
                               augment="none", persistent_workers=False)  # num_workers=None: planned
    assert data.num_workers_auto
    before = torch.get_num_threads()
    seen: list[int] = []

    from lightning.pytorch.callbacks import Callback

    class _Record(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(torch.get_num_threads())

    trainer = AutoTrainer(max_epochs=1, default_root_dir=tmp_path, precision="32-true", num_threads=1,
                          limit_train_batches=1, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[_Record()],
                          enable_checkpointing=False, report=False, csv_log=False, **quiet())
    trainer.fit(tiny_model(), datamodule=data)
    out = capsys.readouterr().out
    assert seen == [1]  # the step ran with the fixed thread count
    assert torch.get_num_threads() == before  # ... and the user's setting is back after fit
    assert out.count("torch threads 1, DataLoader workers") == 1
    assert data.num_workers == trainer.thread_plan.num_workers >= 1
    off = AutoTrainer(max_epochs=1, default_root_dir=tmp_path / "off", num_threads="off")
    assert off._apply_thread_plan(data) is None and off.thread_plan is None
