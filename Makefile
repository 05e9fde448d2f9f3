# make setup      - .venv with pinned torch + this project (+ CPU Vulkan driver where there is no NVIDIA GPU)
# make test       - setup if needed, then lint and the test suite (CPU is enough)
# make lint       - ruff: lint rules and formatting (pyproject.toml [tool.ruff])
# make quickstart - setup if needed, then train + evaluate a small policy (PushCube on CPU, PickCube on GPU), with an eval video
PY := .venv/bin/python

.PHONY: setup test test-fast lint quickstart clean-runs

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

clean-runs:
	rm -rf runs/quickstart
