#!/usr/bin/env bash
# Are pyproject.toml's lower bounds true? Run before a release, NOT in `make test` (it downloads GBs).
#
# In a separate venv it installs the LOWEST version pyproject.toml allows of every core dependency
# (torch and torchvision included) and of the extras in $EXTRAS, then runs the fast tests (-m "not slow").
# torch/torchvision at their lower bounds come from PyPI: on Linux x86_64 a CUDA build of several GB
# (this project's CI machines hold only today's pair on local disk: seen here, ~4 min to install, 5.2 GB,
# then ~13 min of fast tests on 2 busy cores).
#
# Usage: scripts/check_min_versions.sh [VENV [PYTEST ARGS...]]     (or `make check-min-versions`)
#   VENV     the venv to create or reuse (default .venv-min, git-ignored)
#   PYTHON   interpreter for the venv (default python3; requires-python's lowest, 3.11, is the point)
#   EXTRAS   extras pinned low too (default notebooks,onnx,cli; [dev] test tools take current releases;
#            add fiftyone,fast where FiftyOne's fiftyone-db can download its MongoDB, i.e. not on CI)
#   further arguments go to pytest (a subset of tests/, for instance)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${1:-.venv-min}
EXTRAS=${EXTRAS:-notebooks,onnx,cli}

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" scripts/min_constraints.py --extras "$EXTRAS" > "$VENV/min-constraints.txt"
echo "== lowest supported versions (pyproject.toml):"
cat "$VENV/min-constraints.txt"
"$VENV/bin/python" -m pip install -q -c "$VENV/min-constraints.txt" -e ".[$EXTRAS,dev]"
echo "== installed:"
"$VENV/bin/python" -m pip list --format=freeze | grep -i -E "^($(cut -d= -f1 "$VENV/min-constraints.txt" | paste -sd'|'))==" || true
echo "== fast tests"
"$VENV/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider "${@:2}"
