"""Helpers for the training tests."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from autotimm import FeatureBackboneConfig


def tiny_model(**over):
    from autotimm import ObjectDetector

    kw = dict(backbone=FeatureBackboneConfig("resnet18", pretrained=False), num_classes=3, fpn_channels=32,
              head_num_convs=1, compile_model=False, deterministic=False, lr=1e-3, seed=0)
    kw.update(over)
    return ObjectDetector(**kw)


def quiet(**kw):
    return dict(enable_progress_bar=False, enable_model_summary=False, **kw)


class LrPerStep(Callback):
    """The global step and the lr of the first param group at every optimizer step, before the step."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append(trainer.global_step)
        self.lrs.append(optimizer.param_groups[0]["lr"])


class StopAfterEpoch(Callback):
    """Ends fit cleanly after ``epochs`` epochs (as if the session stopped there)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class InterruptAt(Callback):
    """Raises KeyboardInterrupt (as Ctrl+C does) once, when the given global step is about to run;
    autotimm then saves last.ckpt at that step."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.fired = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
