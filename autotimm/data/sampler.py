"""A training sampler whose order depends only on (seed, epoch), so a resumed run sees the same images
in the same order as an uninterrupted one."""

from __future__ import annotations

from typing import Callable, Iterator, Sized

import torch
from torch.utils.data import RandomSampler


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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        seed = self.seed() if callable(self.seed) else self.seed
        generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + self.epoch) % (2**63))
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()
