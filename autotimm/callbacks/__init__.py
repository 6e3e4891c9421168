"""Lightning callbacks of autotimm."""

from autotimm.callbacks.live_plot import LivePlot
from autotimm.callbacks.yolox import YOLOXEMA, YOLOXLastEpochs

__all__ = ["LivePlot", "YOLOXEMA", "YOLOXLastEpochs"]
