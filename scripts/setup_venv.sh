#!/usr/bin/env bash
# The one install step: creates .venv (or $VENV) if missing and installs the connector with its dev tools,
# every version pinned by constraints.txt (so an install today and in a month resolve the same versions).
# Skips pip when pyproject.toml and constraints.txt are unchanged since the last install into this venv.
# Used by scripts/test.sh, scripts/gates.sh, .ci/run and the pre-commit hooks.
#
#   ./scripts/setup_venv.sh            env: VENV (default .venv), FORCE_INSTALL=1 to reinstall anyway
#
# To move the pins (a new airbyte-cdk, say): edit pyproject.toml, then regenerate constraints.txt from a fresh
# venv (see the header of constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.source-pendo-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [[ -z ${FORCE_INSTALL:-} && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet -c constraints.txt --upgrade pip >/dev/null
"${pip[@]}" install --quiet -c constraints.txt -e '.[dev]'
echo "$want" >"$stamp"
