"""FiftyOne stays optional: ``import autotimm`` never imports it, and a missing FiftyOne gives an
ImportError that says how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autotimm.fiftyone._deps import INSTALL_HINT, require_fiftyone


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_autotimm_does_not_import_fiftyone():
    out = _run(
        "import sys, autotimm, autotimm.fiftyone\n"
        "print('fiftyone' in sys.modules)"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_fiftyone_names_the_extra():
    out = _run("import sys\nsys.modules['fiftyone'] = None\nimport autotimm.fiftyone")
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert INSTALL_HINT in out.stderr
    assert INSTALL_HINT == "pip install 'autotimm[fiftyone]'"


def test_require_fiftyone_raises_the_same_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "fiftyone", None)
    with pytest.raises(ImportError, match=r"pip install 'autotimm\[fiftyone\]'"):
        require_fiftyone()
