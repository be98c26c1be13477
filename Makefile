# fleetform: two commands on a fresh machine.
#   make demo   set up .venv, synthesize the example organization (accounts/) into cdktf.out/
#   make test   set up .venv with the test extra, run ruff and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test install install-test lint clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# stamps re-run the install whenever pyproject.toml changes
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/fleetform validate
	$(BIN)/fleetform synth

lint: install-test
	$(BIN)/ruff check .

test: install-test lint
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python bench/synth.py

clean:
	rm -rf cdktf.out .pytest_cache .ruff_cache
