# Quick start: `make demo` and `make test` (see README.md). Needs only Python 3.11+ and the package index.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Re-install whenever pyproject.toml changes.
INSTALLED      := $(VENV)/.installed
INSTALLED_TEST := $(VENV)/.installed-test

.PHONY: demo test install gpu-test bench bench-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(INSTALLED_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(INSTALLED)

install: $(INSTALLED)

# The demo, then one of its jobs again on a local Dask cluster (jobs/specs/quick.toml), ending with the
# path of that run's report.
demo: $(INSTALLED)
	$(BIN)/gpu-lpi demo --out demo-out
	$(BIN)/gpu-lpi run jobs/specs/quick.toml --out demo-out/run-quick-local --scheduler local
	$(BIN)/gpu-lpi report demo-out/run-quick-local

test: $(INSTALLED_TEST)
	$(BIN)/python -m pytest -n 2 --durations=15

# On a machine with an NVIDIA GPU and `pip install -e '.[gpu,test]'`: CPU/GPU parity tests.
gpu-test: $(INSTALLED_TEST)
	$(BIN)/python -m pytest -m gpu -v

bench: $(INSTALLED_TEST)
	$(BIN)/python bench/run_all.py --device cpu

bench-gpu: $(INSTALLED_TEST)
	$(BIN)/python bench/run_all.py --device gpu

clean:
	rm -rf demo-out bench/out .pytest_cache
