# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) .venv and install what they need; the stamp is redone when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.autotimm-installed

.PHONY: demo test bench install clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[all,dev]'
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

clean:
	rm -rf runs lightning_logs .pytest_cache test-artifacts
