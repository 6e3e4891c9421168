"""Lazy public names for packages: ``import autotimm`` stays fast and optional extras load on first use."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence


def lazy_getattr(namespace: dict[str, Any], exports: Mapping[str, str], submodules: Sequence[str] = ()) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first access.

    Args:
        namespace: the package's ``globals()``; resolved names are cached there.
        exports: public name -> module defining it.
        submodules: sub-package names returned as modules (``autotimm.widgets``).
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


def export_lazily(namespace: dict[str, Any], exports: Mapping[str, str]) -> None:
    """Give a package lazy public names: sets its ``__all__`` (sorted ``exports``), ``__getattr__``
    (:func:`lazy_getattr`) and ``__dir__``.

    Args:
        namespace: the package's ``globals()``.
        exports: public name -> module defining it.
    """
    names = sorted(exports)
    namespace["__all__"] = names
    namespace["__getattr__"] = lazy_getattr(namespace, exports)
    namespace["__dir__"] = lambda: list(names)
