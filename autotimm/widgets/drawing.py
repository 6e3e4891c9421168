"""Drawing for the widgets: the one detection drawing of :mod:`autotimm.drawing`, shown on a matplotlib
Axes of a figure that is never registered with pyplot (so never auto-shown)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from autotimm.drawing import draw_detections as draw_on_image
from autotimm.drawing import label_name
from autotimm.plotting import figure_png, new_figure

__all__ = ["draw_detections", "figure_png", "label_name", "new_figure"]


def draw_detections(ax: Any, image: np.ndarray, detections: Mapping[str, Tensor], class_names: Sequence[str] | None = None) -> Tensor:
    """Show an image with its detections drawn by :func:`autotimm.drawing.draw_detections`.

    Args:
        ax: a matplotlib Axes.
        image: uint8 array[H, W, 3] in the ORIGINAL frame.
        detections: ``boxes`` Tensor[N, 4] x1y1x2y2 in ORIGINAL pixels, ``labels`` int64[N],
            optional ``scores`` Tensor[N].
        class_names: names indexed by label.

    Returns:
        the drawn uint8 Tensor[3, H, W].
    """
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # [3, H, W]
    drawn = draw_on_image(pixels, detections, class_names)
    ax.imshow(drawn.permute(1, 2, 0).numpy())
    ax.set_axis_off()
    return drawn
