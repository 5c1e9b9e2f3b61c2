# Two commands on a fresh clone: `make run` (serve) and `make test` (the whole suite).
# Each creates .venv and installs what it needs; `make test` also installs system packages
# (Chromium for the browser tests) when they are missing.

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test compat lint typecheck pytest bench bench-quick system-deps clean simulator

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/realtime-bridge

simulator: $(VENV)/.installed
	$(BIN)/realtime-bridge simulator --port 8090

system-deps:
	@bash scripts/ensure-system-deps.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench compat
	$(BIN)/ruff format --check src tests bench compat

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test system-deps
	$(BIN)/python -m pytest

test: lint typecheck pytest

# Frameworks (compat/<name>/), each pinned in its own venv, driven against a bridge process.
compat: $(VENV)/.installed
	$(BIN)/python compat/run.py

bench: $(VENV)/.installed-test
	$(PIP) install -e '.[test,bench]'
	$(BIN)/python bench/relay.py --bridge-metrics both --repeats 5
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/session_rules.py
	$(BIN)/python bench/relay_chain.py
	$(BIN)/python bench/turns.py
	$(BIN)/python bench/local_lag.py
	$(BIN)/python bench/client_secrets.py
	$(BIN)/python bench/twilio_calls.py
	$(BIN)/python bench/server_tools.py
	$(BIN)/python bench/large_events.py
	$(BIN)/python bench/resume.py
	$(BIN)/python bench/webrtc.py

bench-quick: $(VENV)/.installed-test
	$(BIN)/python bench/relay.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
