"""Drawing detections with matplotlib's object-oriented API (no pyplot, no interactive backend)."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
from torch import Tensor


def new_figure(figsize: tuple[float, float], dpi: int) -> Any:
    """A matplotlib ``Figure`` on an Agg canvas, not registered with pyplot (so never auto-shown)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="tight")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def label_name(label: int, class_names: Sequence[str] | None) -> str:
    """The class name of a label index, or the index itself when names are unknown."""
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)


def draw_detections(ax: Any, image: np.ndarray, detections: dict[str, Tensor], class_names: Sequence[str] | None = None) -> None:
    """Draw an image and one rectangle patch per detection (colour per class) with "name score" tags.

    Args:
        ax: a matplotlib Axes.
        image: uint8 array[H, W, 3] in the ORIGINAL frame.
        detections: ``boxes`` Tensor[N, 4] x1y1x2y2 in ORIGINAL pixels, ``labels`` int64[N],
            optional ``scores`` Tensor[N].
        class_names: names indexed by label.
    """
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    ax.imshow(image)
    ax.set_axis_off()
    palette = colormaps["tab10"]
    boxes = detections["boxes"].detach().cpu().float().tolist()
    labels = detections["labels"].detach().cpu().tolist()
    scores = detections.get("scores")
    scores = scores.detach().cpu().float().tolist() if scores is not None else [None] * len(boxes)
    for (x1, y1, x2, y2), label, score in zip(boxes, labels, scores):
        colour = palette(label % 10)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=2))
        tag = label_name(label, class_names) + ("" if score is None else f" {score:.2f}")
        # The tag's background box belongs to the Text, not to ax.patches: one patch per detection.
        ax.text(x1, y1, tag, fontsize=8, color="white", va="bottom",
                bbox=dict(facecolor=colour, edgecolor="none", pad=1, alpha=0.8))
