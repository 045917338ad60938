# Two entry points for a fresh machine (offline: only the package registries are needed):
#   make demo   set up .venv and run the whole default pipeline (Snakemake: a one-thread job per core)
#   make test   set up .venv and run the tests
PYTHON ?= python3
VENV ?= .venv
# The torch build to install first; override for your machine (e.g. TORCH_SPEC="torch torchvision").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1

# make demo and make baseline: Snakemake runs the stages DVC finds stale (the Snakefile), a
# one-thread job per core (params.yaml `threads`), and records each in dvc.lock: what DVC keeps
# is the same as after `dvc repro` (tests/test_engines.py), in less time on several cores.
CORES ?= $(shell $(PYTHON) -c "import os; print(len(os.sched_getaffinity(0)))")

.PHONY: setup demo baseline test test-fast lint bench bench-gpu clean

PLOT_PAGE := $(VENV)/share/transferlab/dvc_plots.html
# make test: pytest-xdist runs the tests side by side, a worker per core and one more (at most 4:
# a worker waiting on SLURM's scheduler leaves its core to the others), the end-to-end ones first
# (tests/conftest.py says which go to one worker together). PARALLEL= runs them one by one.
WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(len(os.sched_getaffinity(0)) + 1, 4))")
PARALLEL ?= -n $(WORKERS)

# DVC's site cache (its per-repository databases) goes to a private folder of yours, not /var/tmp/dvc.
setup: $(VENV)/.installed $(PLOT_PAGE)
	@$(BIN)/python workflow/site_cache.py

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_SPEC) 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install --quiet -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	# (Inductor's cache folder pointed at the private one first: importing torchvision makes it.)
	$(BIN)/python -c "from transferlab.private import compile_caches; compile_caches(); import torch, torchvision, dvc, snakemake"
	touch $@

# The page of `dvc plots show/diff` with Vega inline (it draws offline), from the npm registry;
# .dvc/config.local (this clone's own) points DVC at it: relative to .dvc/ when the venv is in the
# clone, so that a moved clone still finds it. Without npm, DVC's page loads Vega online.
$(PLOT_PAGE): workflow/plots/offline_page.py $(VENV)/.installed
	@if command -v npm >/dev/null; then \
		$(BIN)/python workflow/plots/offline_page.py $@ && $(BIN)/dvc config --local plots.html_template $(if $(filter /%,$(VENV)),$(abspath $@),../$@); \
	else echo "setup: npm not found: dvc plots pages load Vega from its CDN (online only)"; fi

demo: setup
	$(BIN)/transferlab plan --no-ids
	$(BIN)/snakemake --cores $(CORES)
	@echo
	@echo "Figures:  reports/figures/transfer.png (Figure 2), transfer_relative.png (Figure 3), and each study's"
	@echo "Tables:   reports/<study>/results.parquet (and .csv), for grid, binary, strategies, size, analysis"
	@echo "Metrics:  reports/<study>/metrics.json (dvc metrics show); the grid's:"
	@cat reports/grid/metrics.json

# The committed baseline of `dvc exp show` and `dvc plots diff` (dvc.lock, each study's metrics.json
# and plot tables): remake it after a change of code or params.yaml (tests/test_baseline.py fails
# while it is stale).
baseline: setup
	$(BIN)/snakemake --cores $(CORES)
	git add dvc.lock reports/*/metrics.json reports/*/plots/*.csv

test: setup
	$(BIN)/python -m pytest -q $(PARALLEL)

lint: setup
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/ruff format --check src tests workflow benchmarks

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/pipeline_time.py --engine dvc
	$(BIN)/python benchmarks/pipeline_time.py --engine snakemake
	$(BIN)/python benchmarks/schedule_sim.py

# On a machine with one CUDA GPU (about 8 minutes): the trainer against its limit (compile off and on),
# a CIFAR-100-sized slice of the grid, JPEG decoding on the GPU against PIL workers; then the projection.
bench-gpu: setup
	$(BIN)/python benchmarks/gpu_bench.py --device cuda
	$(BIN)/python benchmarks/schedule_sim.py --durations reports/bench/gpu_bench.json --out reports/bench/schedule_sim_gpu.json

# Outputs that git does not track (the committed baseline, dvc.lock and each study's metrics.json
# and plot tables, stays); data/raw (downloads) stays too.
clean:
	git clean -fdXq -- data/code data/prepared data/splits data/settings data/models data/runs data/checkpoints \
		data/measurements data/strategies data/size data/features data/analysis reports .snakemake
