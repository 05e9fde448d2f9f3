#!/usr/bin/env bash
# Runs the test suite in .venv. pytest's exit code 5 ("no tests collected") is reported loudly;
# any other non-zero code is passed through.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "run_tests: pytest collected no tests (exit 5) - treated as success; check the -m/-k filters" >&2
  exit 0
fi
exit "$rc"
