"""The torchmetrics internals autotimm wraps still work as assumed (fails loudly when they change)."""

import pytest
import torch
from torchmetrics import Metric
from torchmetrics.detection import MeanAveragePrecision

from autotimm.metrics.torchmetrics_internals import forget_computed, per_item_list_states


class Items(Metric):
    def __init__(self) -> None:
        super().__init__()
        self.add_state("items", default=[], dist_reduce_fx=None)
        self.add_state("merged", default=[], dist_reduce_fx="cat")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, x: torch.Tensor) -> None:
        self.items.append(x)
        self.total += x.sum()

    def compute(self) -> torch.Tensor:
        return torch.stack([t.sum() for t in self.items]).sum() if self.items else torch.tensor(0.0)


def test_per_item_list_states():
    assert per_item_list_states(Items()) == ["items"]
    assert {"detection_box", "detection_scores", "groundtruth_box"} <= set(per_item_list_states(MeanAveragePrecision()))


def test_forget_computed_makes_compute_read_replaced_states():
    metric = Items()
    metric.update(torch.tensor([1.0, 2.0]))
    assert metric.compute() == 3.0
    metric.items = [torch.tensor(10.0)]
    forget_computed(metric)
    assert metric.compute() == 10.0


def test_a_changed_library_fails_loudly():
    with pytest.raises(RuntimeError, match="changed Metric._reductions"):
        per_item_list_states(object())
    with pytest.raises(RuntimeError, match="changed Metric._computed"):
        forget_computed(object())
