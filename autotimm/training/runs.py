"""Run folders: every ``fit`` writes to its own folder unless it resumes, and a resume keeps the log.

``runs/exp`` is used when it holds no earlier run; otherwise ``runs/exp2``, ``runs/exp3``, ... (as
other detection kits number their runs). A resume (``fit(..., ckpt_path=...)``) writes to the folder
of the run it resumes and appends to that run's ``metrics.csv``.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Any

# Files that mark a folder as holding an earlier run (a user's own folder with other files is not one).
RUN_MARKERS = ("metrics.csv", "hparams.yaml", "live_plot.png")
CHECKPOINTS = "checkpoints"
RESUME_IF_PRESENT = "last_if_present"


def holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds an earlier run: a metrics log, hyperparameters, a plot or a checkpoint."""
    if any((folder / name).is_file() for name in RUN_MARKERS):
        return True
    checkpoints = folder / CHECKPOINTS
    return checkpoints.is_dir() and any(checkpoints.glob("*.ckpt"))


def next_run_dir(requested: Path) -> Path:
    """``requested`` when it holds no run, else the first free ``<requested>2``, ``<requested>3``, ..."""
    if not holds_run(requested):
        return requested
    n = 2
    while holds_run(requested.with_name(f"{requested.name}{n}")):
        n += 1
    return requested.with_name(f"{requested.name}{n}")


def run_dir_of_checkpoint(path: Path) -> Path | None:
    """The run folder of ``<run>/checkpoints/<file>.ckpt``, or None for a checkpoint elsewhere."""
    parent = path.resolve().parent
    return parent.parent if parent.name == CHECKPOINTS else None


def latest_checkpoint(run: str | os.PathLike, name: str = "last.ckpt") -> Path | None:
    """The newest ``checkpoints/<name>`` among a run folder and its numbered reruns, or None.

    A rerun of the same notebook writes to ``runs/exp2``, ``runs/exp3``, ... (see :func:`next_run_dir`), so a
    later notebook that reads "the checkpoint of ``runs/exp``" wants the most recent of them, not the first.

    Args:
        run: a run folder as given to ``AutoTrainer(default_root_dir=...)``, or a checkpoint file (returned
            as it is when it exists).
        name: the checkpoint file inside ``<run>/checkpoints``.

    Returns:
        The most recently written ``<run>[N]/checkpoints/<name>``, or None when there is none.

    Example:
        >>> latest_checkpoint("runs/quickstart")  # doctest: +SKIP
        PosixPath('runs/quickstart2/checkpoints/last.ckpt')
    """
    path = Path(run)
    if path.is_file():
        return path
    reruns = [c for c in path.parent.glob(f"{path.name}[0-9]*") if c.name[len(path.name):].isdigit()]
    found = [f for f in (c / CHECKPOINTS / name for c in [path, *reruns]) if f.is_file()]
    return max(found, key=lambda f: f.stat().st_mtime_ns) if found else None


def find_last(checkpoint_dir: Path, run_dir: Path) -> Path:
    """``<checkpoint_dir>/last.ckpt``, or a FileNotFoundError that names the folder searched."""
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        return last
    found = sorted(p.name for p in checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
    siblings = sorted(p.name for p in run_dir.parent.glob(f"{run_dir.name}*") if p.is_dir() and p != run_dir)
    hint = f" Other checkpoints there: {found}." if found else ""
    hint += f" Other runs beside it: {siblings} (pass default_root_dir=... of the run to resume)." if siblings else ""
    raise FileNotFoundError(
        f"fit(ckpt_path='last'): no last.ckpt in '{checkpoint_dir}' (run folder '{run_dir}').{hint} "
        f"Pass the run's folder as AutoTrainer(default_root_dir=...), a checkpoint file as ckpt_path=..., or "
        f"ckpt_path='{RESUME_IF_PRESENT}' to resume when a last.ckpt exists and start afresh otherwise."
    )


def open_log_for_append(logger: Any) -> None:
    """Make a CSVLogger append to the ``metrics.csv`` already in its folder (a resumed run).

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it is created. The file is moved
    aside while the writer is created, then put back, and the writer learns the file's columns so that
    new rows (and new columns) are added without losing old ones.
    """
    metrics = Path(logger.log_dir) / "metrics.csv"
    if not metrics.is_file():
        return
    aside = metrics.with_name(".metrics.csv.resume")
    os.replace(metrics, aside)
    try:
        with warnings.catch_warnings():  # "previous log files will be deleted": not so here
            warnings.filterwarnings("ignore", message=".*will be deleted.*")
            writer = logger.experiment
    finally:
        os.replace(aside, metrics)
    with open(metrics, newline="") as f:
        header = next(csv.reader(f), [])
    if hasattr(writer, "metrics_keys"):
        writer.metrics_keys = sorted(dict.fromkeys([*writer.metrics_keys, *header]))
