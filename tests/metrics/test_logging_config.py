"""LoggingConfig validation and the norm / learning-rate helpers, with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from autotimm.metrics import LoggingConfig, gradient_norm, learning_rate, weight_norm


class TwoParams(nn.Module):
    """w1 = [1, 2], w2 = [2] trainable, plus a frozen [4]."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.tensor([1.0, 2.0]))
        self.w2 = nn.Parameter(torch.tensor([2.0]))
        self.frozen = nn.Parameter(torch.tensor([4.0]), requires_grad=False)

    def loss(self) -> torch.Tensor:
        # d/dw1 = [3, 4], d/dw2 = [12]
        return (self.w1 * torch.tensor([3.0, 4.0])).sum() + 12.0 * self.w2.sum() + self.frozen.sum()


def test_defaults():
    cfg = LoggingConfig()
    assert (cfg.log_learning_rate, cfg.log_gradient_norm, cfg.log_weight_norm) == (
        True,
        False,
        False,
    )
    assert cfg.norm_type == 2.0
    assert LoggingConfig(norm_type=1).norm_type == 1.0
    assert LoggingConfig(norm_type=math.inf).norm_type == math.inf


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"log_gradient_norm": "yes"}, r"log_gradient_norm must be True or False, got 'yes'"),
        ({"log_learning_rate": 1}, r"log_learning_rate must be True or False, got 1"),
        ({"norm_type": 0}, r"norm_type must be a positive number or math.inf, got 0"),
        ({"norm_type": -2.0}, r"got -2.0"),
        ({"norm_type": "2"}, r"got '2'"),
        ({"norm_type": True}, r"got True"),
        ({"norm_type": math.nan}, r"got nan"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoggingConfig(**kwargs)


def test_gradient_norm_is_total_norm_of_existing_grads():
    module = TwoParams()
    assert gradient_norm(module).item() == 0.0  # no backward yet
    module.loss().backward()
    assert module.frozen.grad is None
    norm = gradient_norm(module)
    assert norm.ndim == 0 and norm.dtype == torch.float32
    assert norm.item() == pytest.approx(13.0)  # sqrt(3^2 + 4^2 + 12^2)
    assert gradient_norm(module, 1.0).item() == pytest.approx(19.0)
    assert gradient_norm(module, math.inf).item() == pytest.approx(12.0)
    assert gradient_norm([module.w1]).item() == pytest.approx(5.0)


def test_weight_norm_counts_all_parameters():
    module = TwoParams()
    assert weight_norm(module).item() == pytest.approx(5.0)  # sqrt(1 + 4 + 4 + 16)
    assert weight_norm(module, 1.0).item() == pytest.approx(9.0)
    assert weight_norm(nn.ReLU()).item() == 0.0
    assert weight_norm(module).requires_grad is False


def test_learning_rate_reads_first_param_group():
    module = TwoParams()
    optimizer = torch.optim.SGD(
        [{"params": [module.w1], "lr": 0.1}, {"params": [module.w2], "lr": 0.01}], lr=0.5
    )
    assert learning_rate(optimizer) == pytest.approx(0.1)
    optimizer.param_groups[0]["lr"] = torch.tensor(0.25)  # tensor learning rates exist too
    assert learning_rate(optimizer) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"Linear has no param_groups"):
        learning_rate(nn.Linear(1, 1))
