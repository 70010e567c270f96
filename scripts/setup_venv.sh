#!/usr/bin/env bash
# The one install step: creates .venv (or $VENV) if missing and installs the connector with its dev tools at the
# versions of poetry.lock, the one lock (so an install today and in a month resolve the same versions), with
# Poetry: `poetry install --with dev --sync` into that venv. Poetry itself (POETRY_VERSION) lives in its own venv,
# .poetry/ (or $POETRY_HOME), made here from PyPI on first use, so its dependencies never mix with the project's.
# Skips Poetry when pyproject.toml and poetry.lock are unchanged since the last install into this venv.
# Used by scripts/test.sh, scripts/gates.sh, scripts/demo.sh, .ci/run and the pre-commit hooks; the Dockerfile
# installs the same lock with the same Poetry.
#
#   ./scripts/setup_venv.sh            env: VENV (default .venv), POETRY_HOME (default .poetry),
#                                           FORCE_INSTALL=1 to reinstall anyway
#
# To move a pin (a new airbyte-cdk, say): edit pyproject.toml, then `.poetry/bin/poetry lock --no-update`
# (docs/development.md, "Dependencies").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
POETRY_HOME="${POETRY_HOME:-.poetry}"
POETRY_VERSION=1.8.5  # the Dockerfile's ARG POETRY_VERSION too (unit_tests/test_metadata.py keeps them equal)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.source-pendo-installed"
want=$( (cat pyproject.toml poetry.lock; echo "poetry $POETRY_VERSION") | sha256sum | cut -d' ' -f1)
if [[ -z ${FORCE_INSTALL:-} && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
poetry="$POETRY_HOME/bin/poetry"
if [[ ! -x $poetry ]] || [[ $("$poetry" --version 2>/dev/null) != *" $POETRY_VERSION)"* ]]; then
  python3 -m venv --clear "$POETRY_HOME"
  "$POETRY_HOME/bin/python" -m pip install --quiet --disable-pip-version-check "poetry==$POETRY_VERSION"
fi
# Into $VENV, whatever venv is active: Poetry installs into the one VIRTUAL_ENV names and creates none.
VIRTUAL_ENV=$(cd "$VENV" && pwd) POETRY_VIRTUALENVS_CREATE=false PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring \
  "$poetry" install --with dev --sync --no-interaction --quiet
echo "$want" >"$stamp"
