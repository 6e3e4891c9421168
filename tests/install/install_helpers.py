"""What the package asks pip for, read from pyproject.toml or a built wheel, evaluated per platform."""

from __future__ import annotations

import re
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "autotimm"

# PEP 508 environments of the platforms a user of the [all] extra may be on (CPython 3.11).
PLATFORMS: dict[str, dict[str, str]] = {
    "darwin": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "arm64"},
    "win32": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"},
}

# Distributions that publish Linux builds only (a build for one distribution, or Linux-only runtimes).
LINUX_ONLY = re.compile(r"(ubuntu|debian|rhel|centos|amazonlinux|manylinux|linux)|^triton$", re.IGNORECASE)


def pyproject_requirements(path: Path = ROOT / "pyproject.toml") -> list[str]:
    """``Requires-Dist`` lines as a wheel would hold them: core ones, then each extra's with its marker."""
    project = tomllib.loads(path.read_text())["project"]
    lines = list(project["dependencies"])
    for extra, reqs in project.get("optional-dependencies", {}).items():
        for req in reqs:
            marker = Requirement(req).marker
            condition = f'extra == "{extra}"' if marker is None else f'({marker}) and extra == "{extra}"'
            lines.append(f"{str(Requirement(req)).split(';')[0]}; {condition}")
    return lines


def wheel_requirements(wheel: Path) -> list[str]:
    """``Requires-Dist`` lines of a built wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(zf.read(name).decode())
    return metadata.get_all("Requires-Dist") or []


def required_on(lines: list[str], extras: set[str], platform: str) -> list[Requirement]:
    """What pip installs for ``autotimm[extras]`` on ``platform`` (self-references expanded).

    Raises:
        KeyError: ``platform`` is not one of ``PLATFORMS``.
    """
    env = {**default_environment(), **PLATFORMS[platform]}
    wanted, done, out = set(extras) | {""}, set(), []
    while wanted - done:
        extra = (wanted - done).pop()
        done.add(extra)
        for line in lines:
            req = Requirement(line)
            # The extra "" stands for the core dependencies (no extra marker).
            if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
                continue
            if req.marker is None and extra != "":
                continue
            if req.name == PACKAGE:
                wanted |= req.extras
            elif all(str(r) != str(req) for r in out):
                out.append(req)
    return out


def linux_only(reqs: list[Requirement]) -> list[str]:
    """Names among ``reqs`` that exist for Linux only."""
    return [r.name for r in reqs if LINUX_ONLY.search(r.name)]


def read_constraints(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """``{canonical name: version}`` of the ``name==version`` lines of a pip constraints file."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: '{raw}' is not an exact pin"
            pins[canonical(req.name)] = spec.version
    return pins


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()
