# make setup      - .venv with pinned torch + this project (+ CPU Vulkan driver where there is no NVIDIA GPU)
# make test       - setup if needed, then lint and the test suite (CPU is enough)
# make lint       - ruff: lint rules and formatting (pyproject.toml [tool.ruff])
# make quickstart - setup if needed, then train + evaluate a small policy (PushCube on CPU, PickCube on GPU), with an eval video
# make gpu-check  - GPU preflight (bench/gpu_check.py, <10 min): envs, replay, training modes, BC, eval memory,
#                   benchmark rows; pass/fail table, rows in results/gpu_check.csv. No setup (the GPU box has no
#                   package index): .venv/bin/python if present, else python3. GPU_CHECK_ARGS="--only env" etc.
# make report     - regenerate every results page from results/*.csv: docs/reproduction.md and the generated tables
#                   in docs/*.md (bench/reproduce.py --render), docs/report.md + docs/figures/*.png, README.md's
#                   generated blocks and docs/benchmarks.md + results/*.png (bench/make_report.py). No runs; a
#                   second call changes no file.
PY := .venv/bin/python
GPU_PY := $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
GPU_CHECK_ARGS ?=

.PHONY: setup test test-fast lint quickstart clean-runs gpu-check report

setup:
	@bash scripts/setup.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

test: lint
	@bash scripts/run_tests.sh

test-fast: setup
	@bash scripts/run_tests.sh -m "not slow"

quickstart: setup
	@bash scripts/quickstart.sh

report: setup
	$(PY) bench/reproduce.py --render
	$(PY) bench/make_report.py

gpu-check:
	@$(GPU_PY) bench/gpu_check.py $(GPU_CHECK_ARGS)

clean-runs:
	rm -rf runs/quickstart
