"""The import graph of autotimm has no cycles, between modules or between packages.

Every ``import`` / ``from ... import`` of an ``autotimm`` name counts, also those inside functions
(lazy imports hide a cycle from Python, not from a reader). A package is ``autotimm.<first part>``
(``autotimm.data``, ``autotimm.detector``, ...). ``__main__`` modules are entry points that nothing
imports, so they are left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import autotimm

ROOT = Path(autotimm.__file__).resolve().parent


def module_graph() -> dict[str, set[str]]:
    """``{module: autotimm modules it imports}`` read from the source files."""
    modules: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.startswith("autotimm.") else ""
                if target and target not in (module, "autotimm"):
                    graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}}) is None


def test_the_graph_is_read_from_the_source():
    graph = module_graph()
    assert "autotimm.arch.registry" in graph["autotimm.detector"]
    assert "autotimm.ops.targets" in graph["autotimm.assigners.fcos"]


def test_no_cycle_between_modules():
    assert find_cycle(module_graph()) is None


def test_no_cycle_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in module_graph().items():
        packages[package_of(module)] |= {package_of(t) for t in targets} - {package_of(module)}
    assert find_cycle(packages) is None
