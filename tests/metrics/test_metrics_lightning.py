"""The logging pattern ObjectDetector uses, run by a real Lightning Trainer on a tiny module.

The module's "detector" returns stored predictions, so the logged mAP can be checked against
pycocotools; training is one SGD step of a 2-weight linear model with hand-computed gradients.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from metrics_testdata import coco_like_set
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.detection import IntersectionOverUnion

from autotimm.metrics import (
    LoggingConfig,
    MetricConfig,
    MetricManager,
    coco_map,
    gradient_norm,
    learning_rate,
    weight_norm,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers:UserWarning",
    "ignore:.*sync_dist=True.*:UserWarning",
    "ignore:You defined a `validation_step` but have no `val_dataloader`:UserWarning",
)


class StoredDetector(L.LightningModule):
    def __init__(self, preds, targets, metrics, logging_config: LoggingConfig) -> None:
        super().__init__()
        self.preds, self.targets = preds, targets
        self.w = nn.Parameter(torch.tensor([1.0, 0.0]))
        self.metric_manager = MetricManager.from_metrics(metrics)
        self.logging_config = logging_config

    # -- training: loss = 0.5 * (x . w - y)^2 with x = [3, 4], y = 1, w = [1, 0]
    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = 0.5 * ((x @ self.w - y) ** 2).mean()
        if self.logging_config.log_learning_rate:
            self.log("train/lr", learning_rate(self.optimizers()), on_step=True, on_epoch=False)
        return loss

    def on_before_optimizer_step(self, optimizer):
        cfg = self.logging_config
        if cfg.log_gradient_norm:
            self.log(
                "train/grad_norm", gradient_norm(self, cfg.norm_type), on_step=True, on_epoch=False
            )
        if cfg.log_weight_norm:
            self.log(
                "train/weight_norm", weight_norm(self, cfg.norm_type), on_step=True, on_epoch=False
            )

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    # -- validation: the batch holds image indices
    def validation_step(self, batch, batch_idx):
        (index,) = batch
        preds = [self.preds[i] for i in index.tolist()]
        targets = [self.targets[i] for i in index.tolist()]
        for name, value in self.metric_manager.update("val", preds, targets).items():
            self.log(name, value, batch_size=len(preds), **self.metric_manager.log_kwargs(name))

    def on_validation_epoch_end(self):
        for name, value in self.metric_manager.compute("val").items():
            self.log(name, value, **self.metric_manager.log_kwargs(name))
        self.metric_manager.reset("val")


def trainer(tmp_path, **kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, **kwargs,
    )  # fmt: skip


def test_validate_logs_map_equal_to_pycocotools(tmp_path):
    preds, targets = coco_like_set(seed=0, num_images=8)
    iou = MetricConfig(
        name="IoU", backend="torchmetrics", metric_class="IntersectionOverUnion", params={},
        stages=["val"], log_on_step=True,
    )  # fmt: skip
    metrics = [*MetricManager.default().configs, iou]
    model = StoredDetector(preds, targets, metrics, LoggingConfig())
    loader = DataLoader(TensorDataset(torch.arange(8)), batch_size=3)
    expected = coco_map(preds, targets)
    whole_set_iou = IntersectionOverUnion()(preds, targets)["iou"].item()
    for _ in range(2):  # a second run must not see the first run's images
        t = trainer(tmp_path)
        t.validate(model, dataloaders=loader, verbose=False)
        assert t.callback_metrics["val/mAP"].item() == pytest.approx(expected["map"], abs=1e-4)
        assert t.callback_metrics["val/mAP_mar_100"].item() == pytest.approx(
            expected["mar_100"], abs=1e-4
        )
        assert "val/mAP" in t.progress_bar_metrics and "val/mAP_50" not in t.progress_bar_metrics
        assert t.callback_metrics["val/IoU"].item() == pytest.approx(whole_set_iou, abs=1e-6)
        assert "val/IoU_step" in t.logged_metrics  # the last batch's value, logged on step


def test_fit_logs_lr_grad_norm_and_weight_norm(tmp_path):
    x, y = torch.tensor([[3.0, 4.0]]), torch.tensor([1.0])
    cfg = LoggingConfig(log_gradient_norm=True, log_weight_norm=True)
    model = StoredDetector([], [], [], cfg)
    t = trainer(tmp_path, max_steps=1)
    t.fit(model, train_dataloaders=DataLoader(TensorDataset(x, y), batch_size=1))
    # residual x . w - y = 2, so dL/dw = 2 * [3, 4] = [6, 8]
    assert t.callback_metrics["train/lr"].item() == pytest.approx(0.1)
    assert t.callback_metrics["train/grad_norm"].item() == pytest.approx(10.0)
    assert t.callback_metrics["train/weight_norm"].item() == pytest.approx(1.0)  # before the step
    assert model.w.detach().tolist() == pytest.approx([1.0 - 0.6, -0.8])
