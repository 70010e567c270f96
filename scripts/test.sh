#!/usr/bin/env bash
# The test command: installs the connector with its dev tools into .venv (scripts/setup_venv.sh, pinned by
# poetry.lock) and runs the tests: unit tests, the emulator's own tests, and the integration tests that
# run the installed connector as a process against the emulator process. Tests marked `heavy` (the `large`
# emulator, ~9-14 GB) are left out (pyproject addopts); `./scripts/test.sh -m heavy` runs them.
# The suite runs on three pytest-xdist workers (PYTEST_WORKERS; the tests often wait on connector and emulator
# processes, so three keep 2 cores busier than two: 9:08 vs 9:57 measured);
# A module whose tests share an expensive module fixture is marked `xdist_group` (one worker runs it);
# PYTEST_WORKERS=0 runs it in this process (a debugger, or the heavy tests, which must not share the machine).
# Extra arguments go to pytest (e.g. -k events), after the worker count, so `-n 0` on the command line also wins.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
VENV="$VENV" ./scripts/setup_venv.sh
exec "$VENV/bin/python" -m pytest -n "${PYTEST_WORKERS:-3}" --dist loadgroup "$@"
