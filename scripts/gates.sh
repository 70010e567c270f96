#!/usr/bin/env bash
# The static gates, run by .ci/run before the tests (and by pre-commit, see .pre-commit-config.yaml):
# ruff's lint, ruff's formatting check (nothing is rewritten) and mypy over source_pendo/ (its settings,
# strict for source_pendo/, are pyproject's [tool.mypy]). Runs all three and fails if any failed.
#
#   ./scripts/gates.sh            env: VENV (default .venv)
set -uo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
VENV="$VENV" ./scripts/setup_venv.sh || exit 1
failed=()
gate() {  # gate <name> <command...>
  local name=$1; shift
  echo "gates: $name"
  "$@" || failed+=("$name")
}
gate "ruff check" "$VENV/bin/ruff" check .
gate "ruff format --check" "$VENV/bin/ruff" format --check .
gate "mypy" "$VENV/bin/mypy" source_pendo
if ((${#failed[@]})); then
  echo "gates: FAIL: ${failed[*]}" >&2
  exit 1
fi
echo "gates: OK (ruff check, ruff format --check, mypy)"
