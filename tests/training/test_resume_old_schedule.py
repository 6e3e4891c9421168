"""A checkpoint written when epoch-length schedules stepped once per epoch (schedule format 1) resumes on
today's per-step schedule: its scheduler state is converted, or refused by name when that cannot be exact."""

from __future__ import annotations

import math

import pytest
import torch

from autotimm import AutoTrainer, FeatureBackboneConfig

from training_utils import InterruptAt, LrPerStep, StopAfterEpoch, quiet
from training_utils import tiny_model as _resnet18_model

LR = 1e-3
SCHEDULE = {"lr": LR, "scheduler": "cosine", "scheduler_kwargs": {"warmup_epochs": 1}}


def tiny_model(**kw):
    return _resnet18_model(backbone=FeatureBackboneConfig("test_resnet", pretrained=False), fpn_channels=16, **SCHEDULE, **kw)


def _trainer(root, max_epochs=3, **kw):
    return AutoTrainer(default_root_dir=root, max_epochs=max_epochs, precision="32-true", limit_val_batches=1,
                       num_sanity_val_steps=0, report=False, **quiet(**kw))


def _as_format_1(path, epochs: int) -> None:
    """Rewrite ``path`` as the per-epoch code wrote it: the scheduler state and optimizer lr of
    SequentialLR[LinearLR(0.001, 1 epoch), CosineAnnealingLR(T_max=3 - 1 epochs)] after ``epochs`` epochs
    (that code's schedule for cosine, warmup_epochs=1, max_epochs=3), and no schedule_format key."""
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    groups = ckpt["optimizer_states"][0]["param_groups"]
    scratch = torch.optim.AdamW([{"params": [torch.zeros(1, requires_grad=True)]} for _ in groups], lr=LR)
    ramp = torch.optim.lr_scheduler.LinearLR(scratch, start_factor=0.001, total_iters=1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(scratch, T_max=2)
    old = torch.optim.lr_scheduler.SequentialLR(scratch, [ramp, cosine], milestones=[1])
    scratch.step()
    for _ in range(epochs):
        old.step()
    ckpt["lr_schedulers"] = [old.state_dict()]
    for group, old_group in zip(groups, scratch.param_groups):
        group["lr"] = old_group["lr"]
    ckpt["autotimm"].pop("schedule_format", None)
    torch.save(ckpt, path)


def _cosine_with_warmup(step: int) -> float:
    """Today's schedule with 3 steps per epoch, 3 epochs: linear warm-up over steps 0-2, cosine over 6 steps."""
    return LR * (0.001 + 0.999 * step / 3) if step < 3 else LR * 0.5 * (1 + math.cos(math.pi * (step - 3) / 6))


@pytest.mark.parametrize("stop_step, epochs", [(6, 2), (4, 1)])  # after epoch 1 ends, and Ctrl+C inside epoch 1
def test_format_1_checkpoint_resumes_on_the_per_step_schedule(tiny_data, tmp_path, stop_step, epochs):
    # 12 training images, batch 4: 3 optimizer steps per epoch, 9 in the 3 epochs.
    whole_lrs = LrPerStep()
    whole = _trainer(tmp_path / "whole", callbacks=[whole_lrs])
    whole.fit(tiny_model(), datamodule=tiny_data)
    assert whole_lrs.lrs == pytest.approx([_cosine_with_warmup(k) for k in range(9)], rel=1e-6)

    halt = StopAfterEpoch(2) if stop_step == 6 else InterruptAt(stop_step)
    first = _trainer(tmp_path / "halves", callbacks=[halt])
    first.fit(tiny_model(), datamodule=tiny_data)
    last = tmp_path / "halves" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == stop_step
    _as_format_1(last, epochs)

    resumed_lrs = LrPerStep()
    second = _trainer(tmp_path / "halves", callbacks=[resumed_lrs])
    second.fit(tiny_model(seed=3), datamodule=tiny_data, ckpt_path="last")
    assert resumed_lrs.steps == list(range(stop_step, 9))
    # the same lrs as the run that always stepped per optimizer step (format 1 as it is: 5e-4 then 0 at step 7)
    assert resumed_lrs.lrs == pytest.approx(whole_lrs.lrs[stop_step:], rel=1e-6)
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(last, weights_only=False)
    assert a["lr_schedulers"] == b["lr_schedulers"]
    assert b["autotimm"]["schedule_format"] == 2


def test_format_1_checkpoint_of_another_horizon_is_refused_by_name(tiny_data, tmp_path):
    first = _trainer(tmp_path, callbacks=[StopAfterEpoch(2)])
    first.fit(tiny_model(), datamodule=tiny_data)
    last = tmp_path / "checkpoints" / "last.ckpt"
    _as_format_1(last, 2)
    longer = _trainer(tmp_path, max_epochs=4)  # its per-epoch cosine would have T_max 3, the checkpoint's has 2
    with pytest.raises(ValueError, match=r"Checkpoint '.*last\.ckpt' was written by an autotimm that stepped .*"
                                         r"max_epochs=4.*load_from_checkpoint"):
        longer.fit(tiny_model(), datamodule=tiny_data, ckpt_path="last")
    assert longer.global_step == 6  # not one step on a wrong schedule


def test_step_counting_checkpoint_without_the_format_key_resumes_as_it_is(tiny_data, tmp_path):
    # written after schedules went per step but before checkpoints carried schedule_format: already in steps
    whole_lrs = LrPerStep()
    _trainer(tmp_path / "whole", callbacks=[whole_lrs]).fit(tiny_model(), datamodule=tiny_data)
    _trainer(tmp_path / "halves", callbacks=[InterruptAt(4)]).fit(tiny_model(), datamodule=tiny_data)
    last = tmp_path / "halves" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False, map_location="cpu")
    assert ckpt["lr_schedulers"][0]["last_epoch"] == ckpt["global_step"] == 4
    del ckpt["autotimm"]["schedule_format"]
    torch.save(ckpt, last)
    resumed_lrs = LrPerStep()
    _trainer(tmp_path / "halves", callbacks=[resumed_lrs]).fit(tiny_model(seed=3), datamodule=tiny_data, ckpt_path="last")
    assert resumed_lrs.steps == list(range(4, 9))
    assert resumed_lrs.lrs == pytest.approx(whole_lrs.lrs[4:], rel=1e-6)
