# Front door. `make repro` runs the pipeline on the embedded default; `make test` runs the suite.
# Both create .venv from requirements.lock on first use (Python 3.11, pip; nothing else needed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export TOKENIZERS_PARALLELISM := false

# TORCH: the torch build `make setup` installs (README, "GPU machines").
#   cpu    the lock's torch==<version> with the rest of the lock, --no-deps: the CPU wheel (this machine kind, CI).
#   cuXYZ  a CUDA variant of the PyTorch index: torch==<version>+cuXYZ first, from
#          https://download.pytorch.org/whl/cuXYZ WITH its dependencies (the nvidia-* libraries), then the rest of
#          the lock --no-deps. Ask for it with `make setup TORCH=cu128`.
# Default: the build the stamp records (the one .venv holds), else $(TORCH_CUDA) where nvidia-smi is on PATH, else
# cpu. A TORCH other than the recorded one reinstalls.
TORCH_CUDA    ?= cu128
TORCH_VERSION := $(shell sed -n 's/^torch==//p' requirements.lock)
RECORDED      := $(strip $(shell cat $(STAMP) 2>/dev/null))
ifndef TORCH
TORCH := $(or $(RECORDED),$(if $(shell command -v nvidia-smi 2>/dev/null),$(TORCH_CUDA),cpu))
TORCH_FROM := default
endif
ifneq ($(shell printf '%s' 'x$(TORCH)' | grep -Ex 'x(cpu|cu[0-9]+)'),x$(TORCH))
$(error TORCH=$(TORCH): use cpu, or a CUDA variant of the PyTorch index such as cu128 (README, "GPU machines"))
endif
# .venv holds another build (a stamp from before it recorded one counts only against an explicit TORCH): reinstall
ifneq ($(RECORDED),$(TORCH))
ifneq ($(RECORDED)$(TORCH_FROM),default)
.PHONY: $(STAMP)
endif
endif

.PHONY: setup repro test lint bench check lock clean-venv gpu-smoke

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
ifeq ($(TORCH),cpu)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
else
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)+$(TORCH) --index-url https://download.pytorch.org/whl/$(TORCH)
	grep -v '^torch==' requirements.lock > $(VENV)/requirements-$(TORCH).txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r $(VENV)/requirements-$(TORCH).txt
endif
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	echo $(TORCH) > $@

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

# Re-pin requirements.lock from the current .venv (after changing dependencies on purpose), from a CPU .venv only:
# a CUDA one would pin its torch+cuXYZ and nvidia-* libraries, which the CPU path cannot install.
lock:
	$(VENV)/bin/python -m pip list --format=freeze | grep '^torch==.*+cpu$$' >/dev/null || { echo "make lock: .venv has no CPU torch (TORCH=cpu)" >&2; exit 1; }
	{ sed -n '1,4p' requirements.lock; $(VENV)/bin/python -m pip list --format=freeze --exclude-editable | grep -viE '^(explainft|pip|setuptools)==' \
	  | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; } > requirements.lock.new && mv requirements.lock.new requirements.lock

clean-venv:
	rm -rf $(VENV)

# GPU smoke test (scripts/gpu_smoke.py, BENCHMARKS.md "GPU smoke"): on one CUDA GPU, offline, under 5 minutes;
# one table of checks and timings. Needs only torch, transformers, peft, accelerate (so no `setup`).
# Arguments through ARGS, e.g. `make gpu-smoke ARGS="--device cpu --steps 12"`.
gpu-smoke:
	sh scripts/gpu_smoke.sh $(ARGS)
