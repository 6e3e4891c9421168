"""Lightning callbacks of autotimm."""

from autotimm.callbacks.live_plot import LivePlot
from autotimm.callbacks.strong_augment import DisableStrongAugment
from autotimm.callbacks.yolox import YOLOXEMA, YOLOXLastEpochs

__all__ = ["DisableStrongAugment", "LivePlot", "YOLOXEMA", "YOLOXLastEpochs"]
