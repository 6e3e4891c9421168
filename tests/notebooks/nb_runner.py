"""Run the tutorial notebooks in a real Jupyter kernel, with papermill-style parameter injection.

A notebook's first code cell is tagged ``parameters`` and holds plain ``NAME = value`` lines. To run it
fast, :func:`inject_parameters` inserts a cell tagged ``injected-parameters`` right after it (as
papermill does) that re-assigns some of those names; names the parameters cell does not define are
refused, so a renamed parameter cannot silently stop being overridden.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """Names assigned at top level of the cell tagged ``parameters``, in order.

    Raises:
        ValueError: no cell, or more than one, is tagged ``parameters``.
    """
    cells = [c for c in nb.cells if PARAMETERS_TAG in _tags(c)]
    if len(cells) != 1:
        raise ValueError(
            f"Expected exactly one cell tagged {PARAMETERS_TAG!r}, found {len(cells)}; tag the notebook's "
            "settings cell (View > Cell Toolbar > Tags in Jupyter)."
        )
    names: list[str] = []
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def inject_parameters(nb: nbformat.NotebookNode, values: Mapping[str, Any]) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a cell assigning ``values`` right after the ``parameters`` cell.

    An ``injected-parameters`` cell left by an earlier injection is replaced, not stacked.

    Args:
        nb: the notebook.
        values: parameter name -> value; each value must round-trip through ``repr`` (numbers,
            strings, booleans, None, lists/tuples/dicts of them).

    Raises:
        ValueError: no ``parameters`` cell, a name it does not define, or a value ``repr`` cannot
            write back as a literal.
    """
    known = parameter_names(nb)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"Unknown notebook parameters {unknown}: the 'parameters' cell defines {known}.")
    lines = ["# Injected by tests/notebooks/nb_runner.py"]
    for name, value in values.items():
        text = repr(value)
        try:
            same = ast.literal_eval(text) == value
        except (ValueError, SyntaxError):
            same = False
        if not same:
            raise ValueError(f"Parameter {name}={text}: expected a Python literal (number, string, bool, None, list, dict).")
        lines.append(f"{name} = {text}")
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if INJECTED_TAG not in _tags(c)]
    index = next(i for i, c in enumerate(out.cells) if PARAMETERS_TAG in _tags(c))
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    cell["id"] = INJECTED_TAG  # cell ids must be unique; the notebooks' own ids are "cell-NN"
    out.cells.insert(index + 1, cell)
    return out


def kernel_env(workdir: Path) -> dict[str, str]:
    """Environment for the kernel: HOME, Jupyter and FiftyOne state inside ``workdir``, hubs offline."""
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        JUPYTER_PLATFORM_DIRS="1",
        HF_HUB_OFFLINE="1",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
        FIFTYONE_SHOW_PROGRESS_BARS="false",
        FIFTYONE_DATABASE_DIR=str(workdir / "fiftyone-db"),
        FIFTYONE_DATASET_ZOO_DIR=str(workdir / "fiftyone-zoo"),
        FIFTYONE_DEFAULT_DATASET_DIR=str(workdir / "fiftyone-datasets"),
    )
    return env


def run_notebook(path: Path, workdir: Path, parameters: Mapping[str, Any] | None = None, timeout: int = 300) -> nbformat.NotebookNode:
    """Execute a notebook top to bottom in a fresh ``python3`` kernel started in ``workdir``.

    Args:
        path: the ``.ipynb`` file.
        workdir: the kernel's working directory (runs/ outputs land here) and its HOME's parent.
        parameters: values injected after the ``parameters`` cell.
        timeout: seconds allowed per cell.

    Returns:
        the executed notebook (with outputs); also written to ``workdir / path.name``.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (the message holds its traceback).
    """
    nb = nbformat.read(path, as_version=4)
    if parameters:
        nb = inject_parameters(nb, parameters)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
        record_timing=True,
    )
    try:
        client.execute(env=kernel_env(workdir), cwd=str(workdir))
    finally:
        nbformat.write(nb, workdir / path.name)
    return nb


def remove_fiftyone_database(workdir: Path, timeout: float = 30.0) -> bool:
    """Delete the MongoDB folder a notebook's FiftyOne started in ``workdir`` (~300 MB preallocated).

    FiftyOne's database service outlives the kernel while another FiftyOne process of the same user
    is attached to it; its folder is left alone until no process names it on its command line.

    Returns:
        True when the folder is gone (or never existed).
    """
    import psutil

    folder = workdir / "fiftyone-db"

    def users() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(folder) in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        return found

    deadline = time.monotonic() + timeout
    while folder.exists() and users():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def stream_text(nb: nbformat.NotebookNode, name: str = "stdout") -> str:
    """Everything the notebook printed on ``stdout`` (or ``stderr``), in cell order."""
    return "".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
        for out in cell.get("outputs", []) if out.get("output_type") == "stream" and out.get("name") == name
    )


def output_types(nb: nbformat.NotebookNode) -> dict[str, int]:
    """How many outputs of each MIME type (``image/png``, widget views...) and of type ``error``."""
    counts: dict[str, int] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            kinds = ["error"] if out.get("output_type") == "error" else list(out.get("data", {}))
            for kind in kinds:
                counts[kind] = counts.get(kind, 0) + 1
    return counts


def summary_values(text: str, prefix: str) -> dict[str, str]:
    """``key=value`` pairs of the last printed line starting with ``prefix:``.

    Raises:
        ValueError: no such line.
    """
    lines = [line for line in text.splitlines() if line.startswith(prefix + ":")]
    if not lines:
        raise ValueError(f"No line starting with {prefix + ':'!r} in the notebook output:\n{text[-2000:]}")
    return dict(re.findall(r"(\S+?)=(\S+)", lines[-1]))
