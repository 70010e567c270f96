#!/usr/bin/env bash
# The test command: installs the connector with its dev tools into .venv (if needed) and runs every test:
# unit tests, the emulator's own tests, and the integration tests that run the installed connector as a
# process against the emulator process. Extra arguments go to pytest (e.g. -k events).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
exec "$VENV/bin/python" -m pytest "$@"
