# Front door. `make repro` runs the pipeline on the embedded default; `make test` runs the suite.
# Both create .venv from requirements.lock on first use (Python 3.11, pip; nothing else needed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export TOKENIZERS_PARALLELISM := false

.PHONY: setup repro test lint bench check lock clean-venv

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Run (or bring up to date) the whole DVC pipeline of the active profile (params.yaml).
repro: setup
	$(VENV)/bin/explainft check params.yaml
	$(VENV)/bin/dvc repro

# The full test suite (what CI runs): lint, the import contracts, then pytest.
test: lint
	$(VENV)/bin/python -m pytest -q

# ruff (lint and format check) and the import contracts of pyproject.toml (lint-imports).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Benchmarks (pytest-benchmark); figures go to BENCHMARKS.md.
bench: setup
	$(VENV)/bin/python -m pytest -q benchmarks --benchmark-only --benchmark-columns=min,mean,median,stddev,rounds

check: setup
	$(VENV)/bin/explainft check params.yaml

# Re-pin requirements.lock from the current .venv (after changing dependencies on purpose).
lock:
	{ sed -n '1,4p' requirements.lock; $(VENV)/bin/python -m pip list --format=freeze --exclude-editable | grep -viE '^(explainft|pip|setuptools)==' \
	  | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; } > requirements.lock.new && mv requirements.lock.new requirements.lock

clean-venv:
	rm -rf $(VENV)
