"""matplotlib figures that show inline in Jupyter without pyplot: an Agg canvas, never registered with
pyplot (so nothing is auto-shown twice or leaks), and a ``_repr_png_`` so a figure returned as the last
expression of a cell renders as a PNG."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure


class InlineFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter displays as a PNG (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def new_figure(figsize: tuple[float, float], dpi: int = 100, layout: str | None = "tight") -> InlineFigure:
    """A new :class:`InlineFigure` on an Agg canvas, not registered with pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = InlineFigure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
