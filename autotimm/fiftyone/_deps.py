"""FiftyOne is an optional extra: find it without importing it, import it on first use."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

INSTALL_HINT = "pip install 'autotimm[fiftyone]'"


def fiftyone_available() -> bool:
    """True when the ``fiftyone`` package can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("fiftyone") is not None
    except (ImportError, ValueError):
        return False


def missing_error() -> ImportError:
    return ImportError(
        "autotimm.fiftyone needs the FiftyOne package, which is not installed. Install the extra "
        f"with: {INSTALL_HINT}  (it brings fiftyone and a MongoDB build for its database)."
    )


def require_fiftyone() -> ModuleType:
    """The ``fiftyone`` module, imported now (~5 s the first time; the database starts later).

    Raises:
        ImportError: naming ``pip install 'autotimm[fiftyone]'`` when FiftyOne is missing.
    """
    try:
        return importlib.import_module("fiftyone")
    except ModuleNotFoundError as err:
        if err.name is not None and err.name.split(".")[0] != "fiftyone":
            raise  # FiftyOne is there but one of its own dependencies is broken: show that
        raise missing_error() from err


def root_dataset(samples: Any) -> Any:
    """The ``fo.Dataset`` behind ``samples`` (a dataset or any view of one), through public API:
    a view's ``dataset_name`` and ``fo.load_dataset`` (which returns the same, already loaded object)."""
    fo = require_fiftyone()
    if isinstance(samples, fo.Dataset):
        return samples
    return fo.load_dataset(samples.dataset_name)
