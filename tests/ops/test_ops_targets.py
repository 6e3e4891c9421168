"""PaddedTargets: a batch's boxes padded to the largest count, crowd boxes kept apart."""

import torch

from autotimm.ops.targets import PaddedTargets


def test_padding_validity_and_crowd():
    targets = [
        {"boxes": torch.tensor([[0.0, 0, 4, 4], [1, 1, 2, 2]]), "labels": torch.tensor([2, 0]), "iscrowd": torch.tensor([0, 1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    gt = PaddedTargets.from_targets(targets, torch.device("cpu"))
    assert gt.boxes.shape == (2, 2, 4) and gt.labels.tolist() == [[2, 0], [0, 0]]
    assert gt.valid.tolist() == [[True, False], [False, False]]
    assert gt.crowd.tolist() == [[False, True], [False, False]]


def test_a_batch_without_boxes_still_has_one_padded_column():
    gt = PaddedTargets.from_targets([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}], torch.device("cpu"))
    assert gt.boxes.shape == (1, 1, 4) and not gt.valid.any()
