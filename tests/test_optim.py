"""build_scheduler: schedules step once per optimizer step whatever unit their lengths are given in."""

from __future__ import annotations

import math

import pytest
import torch

from autotimm.optim import build_scheduler


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _lrs(config: dict, steps: int) -> list[float]:
    """lr before each of ``steps`` scheduler steps, then after the last one (steps + 1 values)."""
    opt, sched = config["scheduler"].optimizer, config["scheduler"]
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_one_epoch_warmup_ramps_over_the_epochs_steps_then_cosine():
    conf = build_scheduler("cosine", _optimizer(), {"warmup_epochs": 1}, max_epochs=2, total_steps=20, steps_per_epoch=10)
    assert conf["interval"] == "step"
    lrs = _lrs(conf, 20)
    assert lrs[0] == pytest.approx(0.001)  # step 0: lr x warmup_factor
    assert lrs[5] == pytest.approx(0.001 + 0.999 * 0.5)  # half-way through the warm-up epoch
    assert lrs[10] == pytest.approx(1.0)  # end of warm-up: the peak
    assert lrs[15] == pytest.approx(0.5)  # cosine over the 10 remaining steps: cos(pi/2)
    assert lrs[20] == pytest.approx(0.0, abs=1e-12)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # rises at every step of the first epoch


def test_fractional_warmup_epochs_and_warmup_steps_in_epoch_units():
    half = build_scheduler("cosine", _optimizer(), {"warmup_epochs": 0.5, "warmup_factor": 0.1}, 2, 8, steps_per_epoch=4)
    lrs = _lrs(half, 2)
    assert lrs == pytest.approx([0.1, 0.55, 1.0])  # 0.5 epoch x 4 steps = 2 warm-up steps
    steps = build_scheduler("cosine", _optimizer(), {"warmup_steps": 3, "warmup_factor": 0.25}, 2, 8, steps_per_epoch=4)
    assert _lrs(steps, 3) == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_multistep_milestones_in_epochs_decay_at_the_epoch_boundary():
    conf = build_scheduler("multistep", _optimizer(), {"milestones": [1, 2], "gamma": 0.1}, 3, 12, steps_per_epoch=4)
    lrs = _lrs(conf, 8)
    assert lrs[:4] == pytest.approx([1.0] * 4)  # epoch 0: steps 0-3
    assert lrs[4:8] == pytest.approx([0.1] * 4)  # epoch 1 starts at step 4
    assert lrs[8] == pytest.approx(0.01)
    step = build_scheduler("step", _optimizer(), {"step_size": 1, "gamma": 0.5}, 3, 6, steps_per_epoch=2)
    assert _lrs(step, 4) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


def test_cosine_t_max_in_epochs_is_converted_and_interval_step_keeps_steps():
    conf = build_scheduler("cosine", _optimizer(), {"T_max": 2}, 4, 16, steps_per_epoch=4)
    assert _lrs(conf, 8)[4] == pytest.approx(0.5) and conf["scheduler"].T_max == 8
    steps = build_scheduler("cosine", _optimizer(), {"interval": "step", "T_max": 4}, 4, 16, steps_per_epoch=4)
    assert _lrs(steps, 2)[2] == pytest.approx(0.5) and steps["interval"] == "step"


def test_without_a_trainer_epoch_lengths_step_per_epoch():
    conf = build_scheduler("cosine", _optimizer(), {"warmup_epochs": 1}, max_epochs=3, total_steps=1)
    assert conf["interval"] == "epoch"
    assert _lrs(conf, 3) == pytest.approx([0.001, 1.0, 0.5 * (1 + math.cos(math.pi / 2)), 0.0], abs=1e-12)


def test_plateau_stays_per_epoch():
    conf = build_scheduler("plateau", _optimizer(), {"warmup_epochs": 1}, 3, 30, steps_per_epoch=10)
    assert conf["interval"] == "epoch" and conf["monitor"] == "val/loss"


@pytest.mark.parametrize(
    "kwargs, steps_per_epoch, match",
    [
        ({"warmup_epochs": 1, "warmup_steps": 5}, 4, r"both warmup_epochs=1 and warmup_steps=5; give one"),
        ({"warmup_steps": 5}, None, r"warmup_steps=5 needs optimizer steps"),
        ({"warmup_epochs": -1}, 4, r"warmup_epochs=-1: expected a number >= 0"),
        ({"interval": "batch"}, 4, r"interval must be 'epoch' or 'step', got 'batch'"),
        ({}, 0, r"steps_per_epoch must be None or an int >= 1, got 0"),
    ],
)
def test_bad_scheduler_options_are_named(kwargs, steps_per_epoch, match):
    with pytest.raises(ValueError, match=match):
        build_scheduler("cosine", _optimizer(), kwargs, 3, 12, steps_per_epoch=steps_per_epoch)
