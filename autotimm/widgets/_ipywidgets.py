"""ipywidgets, imported with an install hint when the optional extra is missing."""

from __future__ import annotations

try:
    import ipywidgets as widgets
    import traitlets
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "autotimm.widgets needs ipywidgets: pip install 'autotimm[notebooks]' (or pip install ipywidgets)."
    ) from err

__all__ = ["traitlets", "widgets"]
