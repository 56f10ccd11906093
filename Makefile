# Two set-up commands on a fresh machine:  `make repro` (main job) and `make test` (test suite).
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on a CUDA machine use e.g. `make TORCH_SPEC=torch==2.13.0 TORCH_INDEX=...`.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,s3
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: env repro test bench lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# one resolution for everything (a later separate install of moto would break dvc-s3's botocore pin)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" -e ".[$(EXTRAS)]"
	touch $@

env: $(VENV)/.installed

repro: env
	dvc repro

test: env
	$(BIN)/python -m pytest -q

bench: env
	$(BIN)/python bench/bench_dysts.py
	$(BIN)/python bench/bench_kernelsynth.py
	$(BIN)/python bench/bench_distill_step.py
	$(BIN)/python bench/bench_forecast_throughput.py
	$(BIN)/python bench/bench_embed.py
	$(BIN)/python bench/bench_timae.py
	$(BIN)/python bench/bench_rolling_eval.py

lint: env
	$(BIN)/ruff check src stages tests bench
