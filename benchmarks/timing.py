"""Interleaved wall-clock timing: every contender runs once per round, so load spikes on a shared
machine hit all of them alike and their ratios stay meaningful."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import torch


@dataclass(frozen=True)
class Stats:
    """Seconds of repeated runs of one contender.

    Attributes:
        times: every timed run, in the order they ran (warm-up runs excluded).
    """

    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times:
            raise ValueError("Stats needs at least one timed run, got none (repeats must be >= 1).")

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def synchronize(device: torch.device | str = "cpu") -> None:
    """Wait for queued device work, so a timer measures the work and not its launch."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleave(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, Stats]:
    """Time every function ``warmup + repeats`` times, round-robin (A, B, C, A, B, C, ...).

    The start of each round rotates (A B C, B C A, ...) so that no contender always runs right after
    the same neighbour (caches, allocator state, frequency boost).

    Args:
        fns: name -> a callable doing one unit of work (one training step, one inference).
        repeats: timed rounds (>= 1).
        warmup: untimed rounds first (allocator, oneDNN kernel caches, lazy initialisation).
        device: where the work runs; CUDA work is synchronised before the clock stops.

    Returns:
        name -> :class:`Stats` of its ``repeats`` timed runs.

    Example:
        >>> stats = interleave({"a": lambda: sum(range(1000)), "b": lambda: sorted(range(1000))}, repeats=3)
        >>> len(stats["a"].times)
        3
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"interleave(repeats={repeats!r}): expected an int >= 1 (timed rounds).")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"interleave(warmup={warmup!r}): expected an int >= 0 (untimed rounds).")
    names = list(fns)
    if not names:
        raise ValueError("interleave(fns={}): give at least one name -> callable to time.")
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            elapsed = time.perf_counter() - start
            if round_index >= warmup:
                times[name].append(elapsed)
    return {name: Stats(tuple(t)) for name, t in times.items()}
