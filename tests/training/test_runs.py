"""Run folders: the newest checkpoint among a run and its numbered reruns."""

from __future__ import annotations

import os
from pathlib import Path

from autotimm.training import latest_checkpoint
from autotimm.training.runs import next_run_dir


def _checkpoint(run: Path, mtime_ns: int) -> Path:
    path = run / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_latest_checkpoint_takes_the_newest_rerun_not_the_first(tmp_path: Path) -> None:
    run = tmp_path / "quickstart"
    first = _checkpoint(run, 1_000_000_000)
    assert latest_checkpoint(run) == first
    assert next_run_dir(run) == tmp_path / "quickstart2"
    second = _checkpoint(tmp_path / "quickstart2", 3_000_000_000)
    _checkpoint(tmp_path / "quickstart3", 2_000_000_000)  # an older rerun with a higher number
    _checkpoint(tmp_path / "quickstart_other", 9_000_000_000)  # another run's name: not a rerun
    assert latest_checkpoint(run) == second
    assert latest_checkpoint(str(run)) == second


def test_latest_checkpoint_of_a_file_or_nothing(tmp_path: Path) -> None:
    file = _checkpoint(tmp_path / "a", 1)
    assert latest_checkpoint(file) == file
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path / "a", name="best.ckpt") is None
