"""Lightning callbacks of autotimm."""

from autotimm.callbacks.checkpoint import AtomicCheckpointIO, DetectionCheckpoint
from autotimm.callbacks.live_plot import LivePlot
from autotimm.callbacks.report import ReportCallback
from autotimm.callbacks.strong_augment import DisableStrongAugment
from autotimm.callbacks.yolox import YOLOXEMA, YOLOXLastEpochs

__all__ = [
    "AtomicCheckpointIO", "DetectionCheckpoint", "DisableStrongAugment", "LivePlot", "ReportCallback", "YOLOXEMA",
    "YOLOXLastEpochs",
]
