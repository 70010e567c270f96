#!/usr/bin/env bash
# The demo command: installs the connector into .venv (scripts/setup_venv.sh, the one install step: poetry.lock),
# starts the bundled Pendo emulator, and runs spec, check, discover and read against it, printing what a user
# would look at.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
VENV="$VENV" ./scripts/setup_venv.sh
exec "$VENV/bin/python" scripts/demo.py "$@"
