# Two set-up commands on a fresh machine:  `make repro` (main job) and `make test` (test suite).
# Both install the exact versions of requirements/lock.txt (refresh it with `make lock`).
PYTHON ?= python3
VENV ?= .venv
LOCK ?= requirements/lock.txt
# Where pip finds torch==2.13.0+cpu when no local wheel provides it: make TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# A CUDA machine swaps the lock's CPU torch for another build, e.g. make repro TORCH=torch==2.13.0 (PyPI's CUDA build)
TORCH ?=
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1
INDEX_ARGS := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)

.PHONY: env repro test test-fast bench lint lock

$(VENV)/.installed: $(LOCK) pyproject.toml src/tsfmlab/_mkl_dispatch.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(if $(TORCH),grep -v '^torch==' $(LOCK),cat $(LOCK)) > $(VENV)/requirements.txt
	# the lock pins every package (uv resolved it, overrides included): pip installs it as it is
	$(BIN)/pip install --quiet --no-deps $(INDEX_ARGS) -r $(VENV)/requirements.txt
	$(if $(TORCH),$(BIN)/pip install --quiet $(INDEX_ARGS) $(TORCH))
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

env: $(VENV)/.installed

repro: env
	dvc repro

# Two workers (pytest-xdist), a test file at a time each, in collection order (tests/conftest.py puts the
# smoke profile's end-to-end pipeline first, then the emulated CPU and the GPU profile's CPU rehearsal:
# the rest fill in around them). `pytest` alone runs everything in one process.
test: env
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The inner loop: library tests only (no stage subprocesses, no DVC pipelines).
test-fast: env
	$(BIN)/python -m pytest -q -m "not slow and not stage"

# Re-resolve the lock after editing pyproject.toml (uv; requirements/overrides.txt: torch's CPU build, and
# the pins of granite-tsfm that are stricter than it needs).
lock: env
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra s3 --extra ttm --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --prerelease disallow --override requirements/overrides.txt \
	  $(INDEX_ARGS) --no-emit-find-links --no-emit-index-url -o $(LOCK)

bench: env
	$(BIN)/python bench/bench_dysts.py
	$(BIN)/python bench/bench_kernelsynth.py
	$(BIN)/python bench/bench_distill_step.py
	$(BIN)/python bench/bench_forecast_throughput.py
	$(BIN)/python bench/bench_embed.py
	$(BIN)/python bench/bench_timae.py
	$(BIN)/python bench/bench_numerics.py
	$(BIN)/python bench/bench_corpus_scale.py
	$(BIN)/python bench/bench_fev_scoring.py

lint: env
	$(BIN)/ruff check src stages tests bench
