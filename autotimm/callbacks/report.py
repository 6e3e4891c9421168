"""``ReportCallback``: at the end of ``fit``, evaluate the best checkpoint on the validation split and
write its :class:`~autotimm.evaluation.EvaluationReport` (PNGs, json, csv) into the run folder."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback


class ReportCallback(Callback):
    """Write the evaluation report of the best checkpoint when ``fit`` ends.

    Args:
        dirpath: where the report goes; default ``<run folder>/report`` (``AutoTrainer.run_dir``, else
            ``trainer.default_root_dir``).
        iou_thresh: IoU of the curves' precision/recall and of the confusion matrix.

    The report is computed on rank 0 over the whole validation split (not sharded), with the weights of
    ``trainer.checkpoint_callback.best_model_path`` (the current weights when there is no checkpoint);
    the model's own weights are put back afterwards. A failure here only warns: training is done and
    its checkpoints are already on disk.

    Attributes:
        report: the last :class:`~autotimm.evaluation.EvaluationReport` written (None before).
        report_dir: where it was written.
    """

    def __init__(self, dirpath: str | Path | None = None, iou_thresh: float = 0.5) -> None:
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.iou_thresh = iou_thresh
        self.report: Any = None
        self.report_dir: Path | None = None

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero or getattr(trainer, "fast_dev_run", False):
            return
        dm = getattr(trainer, "datamodule", None)
        dataset = getattr(dm, "val_dataset", None)
        if dataset is None or not hasattr(pl_module, "detect"):
            return  # no validation split of a DetectionDataModule: nothing to report on
        try:
            self._write(trainer, pl_module, dm, dataset)
        except Exception as err:  # noqa: BLE001 - training is finished; never lose it to the report
            warnings.warn(f"The evaluation report could not be written ({type(err).__name__}: {err}); "
                          "the checkpoints are saved. Run model.evaluate(data) to retry.", stacklevel=2)

    def _write(self, trainer: Any, pl_module: Any, dm: Any, dataset: Any) -> None:
        from torch.utils.data import DataLoader

        from autotimm.data.dataset import collate_detection
        from autotimm.evaluation.report import build_report
        from autotimm.evaluation.run import collect

        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        current = None
        if best:
            current = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
            state = torch.load(best, map_location=pl_module.device, weights_only=False)["state_dict"]
            pl_module.load_state_dict(state)
        try:
            loader = DataLoader(dataset, batch_size=getattr(dm, "val_batch_size", 8), shuffle=False,
                                num_workers=0, collate_fn=collate_detection)
            precision = "bf16" if str(trainer.precision).startswith("bf16") else "fp32"
            preds, targets = collect(pl_module, loader, precision=precision, progress=False)
        finally:
            if current is not None:
                pl_module.load_state_dict(current)
        self.report = build_report(preds, targets, list(dm.class_names), iou_thresh=self.iou_thresh)
        run_dir = getattr(trainer, "run_dir", None) or trainer.default_root_dir
        self.report_dir = self.report.save(self.dirpath or Path(run_dir) / "report")
        source = Path(best).name if best else "the final weights"
        print(f"autotimm: evaluation report of {source} (mAP {self.report.summary['map']:.4f}, "
              f"best F1 threshold {self.report.best_threshold():.3f}) -> {self.report_dir}")
