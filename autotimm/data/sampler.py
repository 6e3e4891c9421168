"""Training order that depends only on (seed, epoch), and a loader that resumes mid-epoch, so a resumed
run sees the same images in the same order as an uninterrupted one."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sized

import torch
from torch.utils.data import DataLoader, RandomSampler


class EpochShuffleSampler(RandomSampler):
    """Shuffles every epoch with ``torch.Generator().manual_seed(f(seed, epoch))``.

    PyTorch's default ``RandomSampler`` draws its seed from the global RNG when an epoch starts, so the
    order after a resume depends on what consumed random numbers before (model init, a sanity check),
    not on the epoch. Lightning calls :meth:`set_epoch` before every epoch. It stays a
    ``RandomSampler`` so that Lightning's multi-process training swaps it for a shuffling
    ``DistributedSampler`` (itself seeded by epoch).

    Args:
        data_source: the dataset (only its length is used).
        seed: an int, or a callable returning it (read when an epoch starts, so a seed restored
            from a checkpoint is used).
    """

    def __init__(self, data_source: Sized, seed: int | Callable[[], int]) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0
        self.resume_at: tuple[int, int] | None = None  # (epoch, samples already seen) after a mid-epoch resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        seed = self.seed() if callable(self.seed) else self.seed
        generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + self.epoch) % (2**63))
        order = torch.randperm(len(self.data_source), generator=generator).tolist()
        skip = self.resume_at[1] if self.resume_at is not None and self.resume_at[0] == self.epoch else 0
        self.resume_at = None
        yield from order[skip:]


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochShuffleSampler` that Lightning can checkpoint mid-epoch.

    Lightning saves ``state_dict()`` with every checkpoint and, when it resumes in the middle of an
    epoch, calls ``load_state_dict()`` before iterating: the sampler then skips the batches that
    were already trained on, so the rest of the epoch is exactly what an uninterrupted run would see.
    ``batches_done`` (set by the data module) returns how many batches of the current epoch are done.
    """

    batches_done: Callable[[], int] | None = None

    def state_dict(self) -> dict[str, Any]:
        sampler = self.sampler
        if not isinstance(sampler, EpochShuffleSampler) or self.batches_done is None:
            return {}
        return {"epoch": sampler.epoch, "batches": int(self.batches_done())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if isinstance(self.sampler, EpochShuffleSampler) and "epoch" in state_dict and self.batch_size:
            self.sampler.resume_at = (int(state_dict["epoch"]), int(state_dict["batches"]) * int(self.batch_size))
