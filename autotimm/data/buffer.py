"""A small, bounded store of recently decoded images, from which mosaic and mixup draw partners.

A 4-image mosaic (and a mixup partner) decoded from disk costs ~4-5 JPEG decodes per training sample.
Fast detection kits keep the last few hundred decoded, resized images of each loader worker in memory
and draw the partner images from them (Ultralytics' ``BaseDataset.buffer``, of length
``min(n, 8 * batch, 1000)``): each sample then decodes about one image. :class:`RecentImages` is that
store: first in, first out, at most ``capacity`` entries; each DataLoader worker holds its own copy
(the dataset object is copied into every worker), so nothing is shared or locked.

Draws use torch's global generator (seeded per worker by the DataLoader), so they are as reproducible
as the rest of the augmentation: the same seed, data order and number of workers give the same
partners.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

import torch

Entry = TypeVar("Entry")


class RecentImages(Generic[Entry]):
    """First-in-first-out store of at most ``capacity`` entries keyed by record index.

    Args:
        capacity: the most entries kept (>= 1); adding one more drops the oldest.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"RecentImages capacity must be an int >= 1; got {capacity!r}.")
        self.capacity = capacity
        self._entries: OrderedDict[int, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, index: object) -> bool:
        return index in self._entries

    def get(self, index: int) -> Entry | None:
        """The entry of record ``index``, or None when it is not (or no longer) held."""
        return self._entries.get(index)

    def add(self, index: int, entry: Entry) -> None:
        """Hold ``entry`` for record ``index`` as the newest one; drop the oldest beyond capacity."""
        self._entries[index] = entry
        self._entries.move_to_end(index)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def draw(self, count: int) -> list[int]:
        """``count`` record indices drawn uniformly, with replacement, from those held.

        Raises:
            ValueError: when the store is empty.
        """
        if not self._entries:
            raise ValueError("RecentImages.draw needs at least one image held; add() one first.")
        keys = list(self._entries)
        return [keys[k] for k in torch.randint(len(keys), (count,)).tolist()]

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
