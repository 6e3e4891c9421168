"""ipywidgets is an optional extra: importing autotimm.widgets (and the callbacks) must not load it."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_ipywidgets():
    code = (
        "import sys, autotimm.widgets, autotimm.widgets.catalog, autotimm.widgets.config; "
        "assert 'ipywidgets' not in sys.modules, 'ipywidgets imported'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_unknown_name_is_an_attribute_error():
    import pytest

    import autotimm.widgets

    with pytest.raises(AttributeError, match="has no attribute 'Foo'"):
        autotimm.widgets.Foo  # noqa: B018
    assert "DetectorBuilder" in dir(autotimm.widgets)
