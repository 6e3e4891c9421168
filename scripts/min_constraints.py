"""Print pip constraints that pin each dependency of pyproject.toml to its lower bound (``>=X`` -> ``==X``).

Used by scripts/check_min_versions.sh. Standard library only: it runs in a venv with nothing installed.

    python scripts/min_constraints.py --extras notebooks,onnx,cli > min-constraints.txt
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lowest(requirements: list[str], source: str) -> list[str]:
    """``name==bound`` for each requirement; a requirement without a ``>=`` bound is an error."""
    pins = []
    for req in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", req).group(0)
        if name == "autotimm":
            continue
        bound = re.search(r">=\s*([^,;\s]+)", req)
        if bound is None:
            sys.exit(f"{source}: '{req}' has no lower bound (>=); add one, it is what this check tests.")
        pins.append(f"{name}=={bound.group(1)}")
    return pins


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="comma-separated extras to pin as well, e.g. onnx,cli")
    args = parser.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [e for e in args.extras.split(",") if e]
    unknown = sorted(set(extras) - set(project["optional-dependencies"]))
    if unknown:
        sys.exit(f"--extras: unknown {unknown}; pyproject.toml has {sorted(project['optional-dependencies'])}")
    lines = lowest(project["dependencies"], "dependencies")
    for extra in extras:
        lines += lowest(project["optional-dependencies"][extra], f"[{extra}]")
    print("\n".join(dict.fromkeys(lines)))


if __name__ == "__main__":
    main()
