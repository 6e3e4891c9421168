"""Torch threads and DataLoader workers from the CPU cores actually free.

On a shared CPU (a laptop with a browser, a second notebook, another training), torch's default of one
OpenMP thread per core makes every parallel region wait for threads the OS has given to someone else,
and DataLoader workers add more runnable threads than there are cores: a training step then slows
5-20x. :func:`plan_threads` measures how many of the usable cores other processes keep busy (a short
sample of the per-core CPU times, with psutil when installed, else the load average) and sizes the
torch thread pool and the workers to the rest. :class:`~autotimm.training.AutoTrainer` applies the
plan at the start of ``fit`` and says it in one line; both numbers can be set by hand
(``AutoTrainer(num_threads=...)``, ``DetectionDataModule(num_workers=...)``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Literal

Device = Literal["cpu", "gpu"]
MAX_WORKERS = 8


@dataclass(frozen=True)
class CoreLoad:
    """What :func:`measure_free_cores` saw.

    Attributes:
        usable: cores this process may run on (its CPU affinity).
        busy_elsewhere: cores' worth of CPU time other processes used (0.0-``usable``).
        free: usable cores not busy elsewhere, rounded, at least 1.
        source: how it was measured: "psutil", "loadavg" or "unknown" (assumed all free).
    """

    usable: int
    busy_elsewhere: float
    free: int
    source: Literal["psutil", "loadavg", "unknown"]


@dataclass(frozen=True)
class ThreadPlan:
    """Torch intra-op threads and DataLoader workers for one training run.

    Attributes:
        num_threads: for ``torch.set_num_threads``.
        num_workers: DataLoader workers of the training and validation loaders.
        load: the measurement the plan came from.
    """

    num_threads: int
    num_workers: int
    load: CoreLoad

    def describe(self) -> str:
        """One line for the user: what was seen, what was chosen, how to override it."""
        load = self.load
        seen = (
            f"{load.free} of {load.usable} cores free (other processes busy on ~{load.busy_elsewhere:.1f}, {load.source})"
            if load.source != "unknown"
            else f"{load.usable} cores (load unknown, assumed free)"
        )
        return (
            f"{seen}: torch threads {self.num_threads}, DataLoader workers {self.num_workers} "
            "(override with AutoTrainer(num_threads=...) / DetectionDataModule(num_workers=...))"
        )


def usable_cores() -> int:
    """Cores this process may run on (``os.sched_getaffinity`` where available, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def measure_free_cores(sample_s: float = 0.3) -> CoreLoad:
    """Cores left free by other processes, from a ``sample_s`` sample of CPU times.

    With psutil: the busy time of the usable cores minus this process's own CPU time over the sample.
    Without it: the 1-minute load average (which lags and cannot leave out this process's own past
    work). Where neither exists, every usable core is taken as free.
    """
    usable = usable_cores()
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return _measure_psutil(psutil, usable, sample_s)
        except (OSError, AttributeError, RuntimeError):  # restricted /proc, exotic platforms
            pass
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        return CoreLoad(usable, 0.0, usable, "unknown")
    busy = min(float(usable), max(0.0, load1))
    return CoreLoad(usable, busy, _free(usable, busy), "loadavg")


def _measure_psutil(psutil, usable: int, sample_s: float) -> CoreLoad:  # noqa: ANN001 (optional module)
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cores = None
    me = psutil.Process()

    def busy_seconds() -> float:
        per_cpu = psutil.cpu_times(percpu=True)
        chosen = [per_cpu[i] for i in cores if i < len(per_cpu)] if cores is not None else per_cpu
        # everything but idle (and iowait, which is idle time waiting for a disk)
        return sum(sum(t) - t.idle - getattr(t, "iowait", 0.0) for t in chosen)

    def own_seconds() -> float:
        t = me.cpu_times()
        return t.user + t.system

    t0, busy0, own0 = time.monotonic(), busy_seconds(), own_seconds()
    time.sleep(sample_s)
    t1, busy1, own1 = time.monotonic(), busy_seconds(), own_seconds()
    elapsed = max(t1 - t0, 1e-3)
    busy = max(0.0, (busy1 - busy0) - (own1 - own0)) / elapsed
    busy = min(float(usable), busy)
    return CoreLoad(usable, busy, _free(usable, busy), "psutil")


def _free(usable: int, busy: float) -> int:
    # A core counts as taken when at least half of it is in use elsewhere.
    return max(1, min(usable, usable - math.floor(busy + 0.5)))


def plan_threads(
    device: Device = "cpu",
    *,
    num_threads: int | None = None,
    num_workers: int | None = None,
    max_threads: int | None = None,
    load: CoreLoad | None = None,
) -> ThreadPlan:
    """Torch threads and DataLoader workers for a run on ``device``, from the free cores.

    Training on the CPU: the model's math needs the cores, the loader a fraction of one (decoding and
    augmenting a 256-640 px image costs a few ms against tens of ms of compute per image), so
    ``workers = clamp(free // 4, 1, 8)`` and ``threads = free - workers`` (all free cores when only
    one or two are free: the worker then mostly sleeps on a full prefetch queue). Training on a GPU:
    the loader is what the CPU is for: ``workers = clamp(free - 1, 1, 8)``, ``threads = free - workers``
    (at least 1).

    Args:
        device: "cpu" or "gpu" (any accelerator that is not the CPU).
        num_threads / num_workers: fixed by the user; the other is planned around it.
        max_threads: upper bound of a planned thread count (e.g. torch's current one, which a user
            may have lowered with ``torch.set_num_threads``).
        load: a measurement (default: :func:`measure_free_cores` now).

    Returns:
        a :class:`ThreadPlan`.

    Example:
        >>> plan = plan_threads("cpu", load=CoreLoad(usable=2, busy_elsewhere=1.0, free=1, source="psutil"))
        >>> plan.num_threads, plan.num_workers
        (1, 1)
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"plan_threads(device={device!r}): expected 'cpu' or 'gpu'.")
    for name, value in (("num_threads", num_threads), ("num_workers", num_workers), ("max_threads", max_threads)):
        low = 0 if name == "num_workers" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"plan_threads({name}={value!r}): expected None (choose from the free cores) or an int >= {low}.")
    load = load if load is not None else measure_free_cores()
    free = load.free
    if num_workers is None:
        num_workers = min(MAX_WORKERS, max(1, free // 4)) if device == "cpu" else min(MAX_WORKERS, max(1, free - 1))
    if num_threads is None:
        num_threads = free if (device == "cpu" and free <= 2) else max(1, free - num_workers)
        num_threads = min(num_threads, max_threads) if max_threads is not None else num_threads
    return ThreadPlan(num_threads=num_threads, num_workers=num_workers, load=load)
