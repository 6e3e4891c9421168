"""Lightning callbacks of autotimm."""

from autotimm.callbacks.live_plot import LivePlot

__all__ = ["LivePlot"]
