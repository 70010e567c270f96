#!/usr/bin/env bash
# The demo command: installs the connector into .venv (if needed), starts the bundled Pendo emulator,
# and runs spec, check, discover and read against it, printing what a user would look at.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
exec "$VENV/bin/python" scripts/demo.py "$@"
