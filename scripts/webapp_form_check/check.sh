#!/usr/bin/env bash
# Runs airbyte-webapp's own connector form code on source-pendo's spec: the classic form that renders a source's
# settings in Airbyte (core/form/schemaToFormBlock.ts builds the form, schemaToYup.ts its validation). It checks
# that the whole spec renders (no FormBuildError such as oneOfWithNonObjects or oneOfWithoutConst), that no field
# is an untyped text box, that the custom aggregations' JSON fields are multi-line text areas and the filter value
# a dropdown of value kinds, and that configs as the form submits them (cases.json: each filter value kind, a
# multi-line custom aggregation, a loopback http base_url) pass and come back unchanged, while broken ones (a time
# range without its end, plain http to another host) are rejected. unit_tests/test_spec_form.py holds the same
# rules in Python and runs in ./scripts/test.sh; this runs the real code where a checkout of it is at hand.
#
#   AIRBYTE_WEBAPP_SRC=/path/to/airbyte-platform/airbyte-webapp/src ./scripts/webapp_form_check/check.sh
#
# Needs node and npm (the packages of package-lock.json from the npm registry, into node_modules/ here) and the
# webapp's source, which is not part of this repository (airbytehq/airbyte-platform, ELv2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${AIRBYTE_WEBAPP_SRC:?set AIRBYTE_WEBAPP_SRC to a checkout of airbyte-platform/airbyte-webapp/src}"
[[ -f $AIRBYTE_WEBAPP_SRC/core/form/schemaToFormBlock.ts ]] || { echo "no core/form/schemaToFormBlock.ts under $AIRBYTE_WEBAPP_SRC" >&2; exit 2; }
if [[ ! -d $here/node_modules/yup ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi
AIRBYTE_WEBAPP_SRC=$AIRBYTE_WEBAPP_SRC node "$here/build.mjs"
cd "$repo"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${VENV:-$repo/.venv}/bin/python" - "$tmp" <<'PY'
import json, sys
from source_pendo.settings.spec import spec_message
sys.path.insert(0, "unit_tests")
from test_spec_form import FORM_CASES
tmp = sys.argv[1]
json.dump(spec_message()["spec"]["connectionSpecification"], open(f"{tmp}/spec.json", "w"))
json.dump(FORM_CASES, open(f"{tmp}/cases.json", "w"))
PY
node "$here/out.cjs" "$tmp/spec.json" "$tmp/cases.json"
