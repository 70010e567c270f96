#!/usr/bin/env bash
# Runs the tests once per pinned instant (PENDO_TEST_NOW, see conftest.py) and reports each: proof that no
# test depends on the wall clock, nor on where "now" falls. Instants: just after midnight UTC, the last hour
# of a month, the US spring-forward and fall-back changes in America/New_York (the emulator's day buckets),
# and the default. Runs one pytest at a time. Arguments go to pytest (default: -m "not slow"), e.g.
#   scripts/pinned_clock_runs.sh integration_tests/test_activity_streams.py -m "not slow"
# PINNED_INSTANTS="2026-06-10T00:05:00Z default" overrides the list ("default" = no PENDO_TEST_NOW).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
[ -x "$PY" ] || { echo "no $PY: run scripts/test.sh once (or set VENV)" >&2; exit 2; }
[ $# -gt 0 ] || set -- -m "not slow"
INSTANTS=(${PINNED_INSTANTS:-2026-06-10T00:05:00Z 2026-04-30T23:30:00Z 2026-03-08T07:30:00Z 2026-11-01T06:30:00Z default})
declare -A WHY=(
  [2026-06-10T00:05:00Z]="just after midnight UTC"
  [2026-04-30T23:30:00Z]="last hour of a month (UTC)"
  [2026-03-08T07:30:00Z]="spring forward in New York (03:30 EDT, the 02:xx hour skipped)"
  [2026-11-01T06:30:00Z]="fall back in New York (01:30 EST, the 01:xx hour's second time)"
  [default]="the default instant (conftest.py DEFAULT_TEST_NOW)"
)
LOGS="$(mktemp -d)"
summary=()
failed=0
for instant in "${INSTANTS[@]}"; do
  log="$LOGS/${instant//:/}.log"
  echo "== $instant: ${WHY[$instant]:-}" >&2
  if [ "$instant" = default ]; then
    env -u PENDO_TEST_NOW "$PY" -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
  else
    PENDO_TEST_NOW="$instant" "$PY" -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
  fi
  rc=$?
  result="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)|(passed|failed|error).* in [0-9.]+s' "$log" | tail -1)"
  [ $rc -eq 0 ] || failed=1
  summary+=("$(printf '%-22s rc=%d  %s' "$instant" "$rc" "${result:-see $log}")")
  [ $rc -eq 0 ] || grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /' >&2
done
echo "pinned-clock runs (logs in $LOGS):"
printf '  %s\n' "${summary[@]}"
exit $failed
