"""Smoke tests of benchmarks.loader_speed: the parts run and report rates (no figure is asserted)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks import loader_speed


def test_per_core_rates_cover_every_preset_and_restore_threads():
    threads = torch.get_num_threads()
    rates = loader_speed.per_core_rates(image_size=64, samples=3, rounds=3)
    assert list(rates) == ["none", "default", "strong", "strong, partner_buffer=0", "strong, photometric=device",
                           "default, cache=ram", "strong, cache=ram"]
    assert all(math.isfinite(r) and r > 0 for r in rates.values())
    assert torch.get_num_threads() == threads


def test_batched_colour_rate_times_the_device_side_on_the_cpu():
    threads = torch.get_num_threads()
    rate = loader_speed.batched_colour_rate(image_size=64, batch_size=2, repeats=1)
    assert math.isfinite(rate) and rate > 0
    assert torch.get_num_threads() == threads


def test_model_rates_time_the_step_alone_and_fed_by_the_loader():
    from autotimm.data import example

    dm = example("shapes").datamodule(image_size=64, batch_size=2, num_workers=0, augment="default", image_check="none")
    dm.setup("fit")
    alone, loop = loader_speed.model_rates(dm.train_dataloader(), num_classes=3, steps=1, bf16=False)
    assert alone > 0 and loop > 0


def test_cpu_summary_names_the_flags():
    assert "flags:" in loader_speed.cpu_summary()


@pytest.mark.slow
def test_compare_runs_both_sides_in_turn():
    old, new, rates = loader_speed.compare_rates("HEAD", image_size=64, samples=2, rounds=2)
    assert old and new.startswith(old)  # HEAD against this checkout of it
    assert set(rates) >= {"none", "default", "strong", "strong, cache=ram"}
    assert all(new_rate > 0 for _, new_rate in rates.values())
    assert all(old_rate > 0 for name, (old_rate, _) in rates.items() if name != "strong, partner_buffer=0")
