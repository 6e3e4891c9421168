"""The notebooks as files (clean, parametrised, with a scale-up section) and the parameter injection."""

from __future__ import annotations

import ast

import nbformat
import pytest

from nb_runner import INJECTED_TAG, NOTEBOOKS, PARAMETERS_TAG, inject_parameters, parameter_names, summary_values

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _toy(parameters: str = "EPOCHS = 12\nIMAGE_SIZE = 256\n", tagged: bool = True) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(parameters)
    if tagged:
        cell.metadata["tags"] = [PARAMETERS_TAG]
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"), cell, nbformat.v4.new_code_cell("print(EPOCHS * IMAGE_SIZE)"),
    ])


def test_six_tutorials() -> None:
    assert [p.name[:3] for p in PATHS] == ["01_", "02_", "03_", "04_", "05_", "06_"]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parametrised(path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit notebooks without outputs"
    # The first code cell holds the parameters and nothing but literal assignments.
    assert PARAMETERS_TAG in code[0].metadata.get("tags", [])
    body = ast.parse(code[0].source).body
    assert body and all(isinstance(node, ast.Assign) for node in body)
    for node in body:
        ast.literal_eval(node.value)
    assert len(parameter_names(nb)) == len(body)
    assert not any(INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Scale up" in markdown or "scale up" in markdown
    # Offline-safe weights: every backbone asked for with pretrained=True may fall back to scratch.
    source = "\n".join(c.source for c in code)
    assert source.count("pretrained=True") == source.count("fallback_to_scratch=True")


def test_inject_puts_a_tagged_cell_after_the_parameters() -> None:
    nb = inject_parameters(_toy(), {"EPOCHS": 1, "IMAGE_SIZE": 128})
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
    assert nb.cells[2].metadata["tags"] == [INJECTED_TAG]
    assert nb.cells[2].source.splitlines()[1:] == ["EPOCHS = 1", "IMAGE_SIZE = 128"]
    namespace: dict = {}
    for cell in nb.cells[1:3]:
        exec(cell.source, namespace)
    assert (namespace["EPOCHS"], namespace["IMAGE_SIZE"]) == (1, 128)
    nbformat.validate(nb)


def test_inject_again_replaces_the_injected_cell() -> None:
    once = inject_parameters(_toy(), {"EPOCHS": 1})
    twice = inject_parameters(once, {"EPOCHS": 3, "IMAGE_SIZE": 64})
    injected = [c for c in twice.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert injected[0].source.splitlines()[1:] == ["EPOCHS = 3", "IMAGE_SIZE = 64"]
    assert len(twice.cells) == 4


def test_inject_leaves_the_original_untouched() -> None:
    nb = _toy()
    inject_parameters(nb, {"EPOCHS": 1})
    assert len(nb.cells) == 3


def test_inject_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown notebook parameters \['EPOHCS'\].*defines \['EPOCHS', 'IMAGE_SIZE'\]"):
        inject_parameters(_toy(), {"EPOHCS": 1})


def test_inject_refuses_non_literals() -> None:
    with pytest.raises(ValueError, match="Parameter EPOCHS=<object object at .*expected a Python literal"):
        inject_parameters(_toy(), {"EPOCHS": object()})


def test_inject_needs_exactly_one_parameters_cell() -> None:
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters', found 0"):
        inject_parameters(_toy(tagged=False), {"EPOCHS": 1})
    nb = _toy()
    nb.cells.append(nb.cells[1].copy())
    with pytest.raises(ValueError, match="found 2"):
        inject_parameters(nb, {"EPOCHS": 1})


def test_summary_values_reads_the_last_matching_line() -> None:
    text = "noise\nexport: a=1 b=0.5\nexport: a=2 b=x/y\nother: a=9\n"
    assert summary_values(text, "export") == {"a": "2", "b": "x/y"}
    with pytest.raises(ValueError, match="No line starting with 'live:'"):
        summary_values(text, "live")
