#!/usr/bin/env bash
# Airbyte's connector QA checks (the ones `airbyte-ops local connector qa` runs; PyPI airbyte-internal-ops) on
# this working tree, offline: copies the tracked and new files into a directory laid out as Airbyte's monorepo
# (airbyte-integrations/connectors/source-pendo/, docs/integrations/sources/pendo.md and pendo-migrations.md, as
# metadata's documentationUrl names them) and runs scripts/airbyte_qa.py there with the QA venv (.venv-qa, made
# from PyPI on first use, ~3 min). docs/development.md ("Airbyte's QA checks") has the last result and the one
# check expected to fail (the Dockerfile).
#
#   ./scripts/airbyte_qa.sh              env: SL=300 (run the doc content checks too: ab_internal.sl 300 in the
#                                        copy), QA_VENV (default .venv-qa), ONLINE=1 (fetch what is faked offline)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
QA_VENV=${QA_VENV:-.venv-qa}
QA_VERSION=0.132.0
if [[ ! -x $QA_VENV/bin/python ]] || ! "$QA_VENV/bin/python" -c "import airbyte_ops_mcp" 2>/dev/null; then
  python3 -m venv --clear "$QA_VENV"
  "$QA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "airbyte-internal-ops==$QA_VERSION"
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
connector=$root/airbyte-integrations/connectors/source-pendo
mkdir -p "$connector" "$root/docs/integrations/sources"
git ls-files --cached --others --exclude-standard -z | while IFS= read -r -d '' file; do
  [[ -e $file ]] && mkdir -p "$connector/$(dirname "$file")" && cp -p "$file" "$connector/$file"
done
cp docs/pendo.md docs/pendo-migrations.md "$root/docs/integrations/sources/"
if [[ -n ${SL:-} ]]; then
  sed -i "s/^\(    sl: \).*/\1$SL/" "$connector/metadata.yaml"
fi
python=$(cd "$QA_VENV" && pwd)/bin/python
(cd "$root" && "$python" "$repo/scripts/airbyte_qa.py" source-pendo ${ONLINE:+--online})
