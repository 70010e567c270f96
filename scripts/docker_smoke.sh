#!/usr/bin/env bash
# Docker smoke test: builds the connector image, starts the Pendo emulator on this host, and runs the image's
# spec, check, discover and read against it (`docker run --network host`, config and catalog mounted at /data).
# Fails with a message on the first thing that is wrong. Run by .ci/run after the tests.
#
# The base image: the Dockerfile's default (the official Airbyte Python connector base), pulled when a
# container registry is reachable. When none is (an offline machine), a local stand-in is built with
# ../shared/tools/local-base-image if that file exists beside the repo; otherwise the script stops and prints
# how to build one. BASE_IMAGE=... uses the given image instead (built with the shared tool when it is the
# local stand-in's tag and missing).
#
#   ./scripts/docker_smoke.sh            env: BASE_IMAGE (default: the Dockerfile's), IMAGE (default
#                                             source-pendo:dev), VENV (default .venv), PULL_TIMEOUT (s, 180)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
local_base_tool="$repo/../shared/tools/local-base-image"   # optional: only for offline builds
LOCAL_BASE=local/python-connector-base:3.11
DEFAULT_BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
BASE_IMAGE=${BASE_IMAGE:-}
IMAGE=${IMAGE:-source-pendo:dev}
VENV=${VENV:-.venv}
API_KEY=emulator-key.us
PY="$VENV/bin/python"; [[ -x $PY ]] || PY=python3

fail() { echo "docker_smoke: FAIL: $*" >&2; exit 1; }
step() { echo "docker_smoke: $*"; }
started=$(date +%s)
[[ -n $DEFAULT_BASE ]] || fail "no 'ARG BASE_IMAGE=' default in the Dockerfile"

offline_help() {
  cat >&2 <<HELP
docker_smoke: no container registry answered, so the Dockerfile's base image cannot be pulled:
  $DEFAULT_BASE
To build offline, make a local stand-in for it (Debian bookworm with Python 3.11; needs Debian's package
archive and PyPI, as root) and pass it as BASE_IMAGE:
  apt-get install -y docker.io debootstrap
  root=\$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "\$root" <your Debian mirror>
  rm -f "\$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf python3 "\$root/usr/bin/python"; ln -sf pip3 "\$root/usr/bin/pip"
  cp /etc/ssl/certs/ca-certificates.crt "\$root/etc/ssl/certs/"   # so pip in 'docker build' trusts what the host trusts
  tar -C "\$root" -c . | docker import -c 'ENV PYTHONUNBUFFERED=1' - $LOCAL_BASE
  BASE_IMAGE=$LOCAL_BASE ./scripts/docker_smoke.sh
(../shared/tools/local-base-image, where it exists beside the repo, does exactly this; this script runs it
by itself when it is there.)
HELP
}

# dockerd: use the running one, or start one (as root) if the binary is here
if ! docker info >/dev/null 2>&1; then
  if command -v dockerd >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    step "starting dockerd (log: ${TMPDIR:-/tmp}/dockerd.log)"
    (setsid dockerd >>"${TMPDIR:-/tmp}/dockerd.log" 2>&1 &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  elif [[ -x $local_base_tool ]]; then
    "$local_base_tool" "$LOCAL_BASE" >/dev/null || fail "$local_base_tool could not start dockerd"
  fi
  docker info >/dev/null 2>&1 || fail "no Docker daemon answers (docker info) and none could be started: install docker.io, run dockerd"
fi

# the base image
if [[ -z $BASE_IMAGE ]]; then
  if docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE_IMAGE=$DEFAULT_BASE
  else
    step "pulling the Dockerfile's base image $DEFAULT_BASE"
    if timeout "${PULL_TIMEOUT:-180}" docker pull -q "$DEFAULT_BASE" >"${TMPDIR:-/tmp}/docker_smoke.pull.log" 2>&1; then
      BASE_IMAGE=$DEFAULT_BASE
    elif [[ -x $local_base_tool ]]; then
      step "no registry reachable ($(tail -1 "${TMPDIR:-/tmp}/docker_smoke.pull.log" | cut -c1-160)); building the local stand-in $LOCAL_BASE with $local_base_tool"
      "$local_base_tool" "$LOCAL_BASE" >/dev/null || fail "$local_base_tool could not build $LOCAL_BASE"
      BASE_IMAGE=$LOCAL_BASE
    else
      tail -3 "${TMPDIR:-/tmp}/docker_smoke.pull.log" >&2 || true
      offline_help
      fail "cannot pull $DEFAULT_BASE and $local_base_tool is not there (see above for the offline build)"
    fi
  fi
elif ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  if [[ $BASE_IMAGE == "$LOCAL_BASE" && -x $local_base_tool ]]; then
    "$local_base_tool" "$LOCAL_BASE" >/dev/null || fail "$local_base_tool could not build $LOCAL_BASE"
  elif ! timeout "${PULL_TIMEOUT:-180}" docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    [[ $BASE_IMAGE == "$LOCAL_BASE" ]] && offline_help
    fail "base image $BASE_IMAGE is neither here nor pullable"
  fi
fi

tmp=$(mktemp -d)
emu_pid=
cleanup() {
  [[ -n $emu_pid ]] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp"   # the image runs as uid 1000

step "building $IMAGE on $BASE_IMAGE"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" . >"$tmp/build.log" 2>&1 \
  || { tail -40 "$tmp/build.log" >&2; fail "docker build failed"; }
size=$(docker image inspect "$IMAGE" --format '{{.Size}}')
step "image $IMAGE: $((size / 1000000)) MB"
[[ $(docker image inspect "$IMAGE" --format '{{.Config.User}}') == airbyte ]] || fail "image does not run as user airbyte"

step "starting the emulator"
"$PY" -m integration_tests.pendo_emulator serve --port 0 --scale tiny >"$tmp/emulator.out" 2>"$tmp/emulator.err" &
emu_pid=$!
base_url=
for _ in $(seq 1 100); do
  base_url=$("$PY" -c 'import json,sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        print(json.loads(line).get("base_url", "")); break' "$tmp/emulator.out" 2>/dev/null || true)
  [[ -n $base_url ]] && break
  kill -0 "$emu_pid" 2>/dev/null || { cat "$tmp/emulator.err" >&2; fail "the emulator exited"; }
  sleep 0.2
done
[[ -n $base_url ]] || fail "the emulator printed no base_url"

start_date=$("$PY" -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) - d.timedelta(days=4)).strftime("%Y-%m-%d"))')
cat >"$tmp/config.json" <<JSON
{"api_key": "$API_KEY", "base_url": "$base_url", "start_date": "$start_date", "period": "DAY",
 "app_ids": [], "include_anonymous_visitors": false, "lookback_window_days": 1, "request_timeout_seconds": 30}
JSON
chmod 644 "$tmp/config.json"

run() {  # run <name> <args...>: stdout to $tmp/<name>.out, stderr to $tmp/<name>.err
  local name=$1; shift
  docker run --rm --network host -v "$tmp:/data:ro" "$IMAGE" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" \
    || { tail -20 "$tmp/$name.out" "$tmp/$name.err" >&2; fail "'$name' exited non-zero"; }
}
# assert <name> <python expression over msgs (list of parsed messages)> <message if false>
assert() {
  "$PY" - "$tmp/$1.out" "$2" <<'PY' || fail "$1: $3"
import json, sys
msgs = []
for line in open(sys.argv[1]):
    try:
        msgs.append(json.loads(line))
    except ValueError:
        pass
sys.exit(0 if eval(sys.argv[2], {"msgs": msgs}) else 1)
PY
}

step "spec"
run spec spec
assert spec '"api_key" in next(m for m in msgs if m["type"] == "SPEC")["spec"]["connectionSpecification"]["properties"]' \
  "no SPEC message listing api_key"

step "check"
run check check --config /data/config.json
assert check 'any(m["type"] == "CONNECTION_STATUS" and m["connectionStatus"]["status"] == "SUCCEEDED" for m in msgs)' \
  "connection status is not SUCCEEDED: $(grep -h CONNECTION_STATUS "$tmp/check.out" | head -c 400)"

step "discover"
run discover discover --config /data/config.json
# the image lists every stream this checkout's connector lists (the manifest's streams, never a count kept here)
"$VENV/bin/source-pendo" discover --config "$tmp/config.json" >"$tmp/discover.local.out" 2>"$tmp/discover.local.err" \
  || fail "discover from $VENV failed: $(tail -c 400 "$tmp/discover.local.err")"
"$PY" - "$tmp/discover.out" "$tmp/discover.local.out" <<'PY' || fail "discover: the image's catalog differs from the checkout's"
import json, sys
def names(path):
    for line in open(path):
        if line.startswith("{") and (m := json.loads(line))["type"] == "CATALOG":
            return sorted(s["name"] for s in m["catalog"]["streams"])
    return None
image, local = names(sys.argv[1]), names(sys.argv[2])
if not image or image != local:
    print(f"docker_smoke: image streams {image}, checkout streams {local}", file=sys.stderr)
    sys.exit(1)
open(sys.argv[1] + ".count", "w").write(str(len(image)))
PY

"$PY" - "$tmp/discover.out" "$tmp/catalog.json" <<'PY'
import json, sys
catalog = next(m for line in open(sys.argv[1]) if line.startswith("{") for m in [json.loads(line)] if m["type"] == "CATALOG")
streams = []
for s in catalog["catalog"]["streams"]:
    if s["name"] in ("events", "accounts"):
        streams.append({"stream": s, "sync_mode": "incremental", "destination_sync_mode": "append_dedup",
                        "cursor_field": s.get("default_cursor_field", []),
                        "primary_key": s.get("source_defined_primary_key", [])})
json.dump({"streams": streams}, open(sys.argv[2], "w"))
PY
chmod 644 "$tmp/catalog.json"

step "read (events, accounts)"
run read read --config /data/config.json --catalog /data/catalog.json
assert read '
all(any(m["type"] == "RECORD" and m["record"]["stream"] == s for m in msgs) for s in ("events", "accounts"))' \
  "no records for events and accounts"
assert read '
all(
    max((i for i, m in enumerate(msgs) if m["type"] == "STATE"
         and m["state"].get("stream", {}).get("stream_descriptor", {}).get("name") == s), default=-1)
    > max(i for i, m in enumerate(msgs) if m["type"] == "RECORD" and m["record"]["stream"] == s)
    for s in ("events", "accounts"))' \
  "events or accounts has no STATE message after its last record"

if grep -l -F "$API_KEY" "$tmp"/{spec,check,discover,read}.{out,err} >/dev/null 2>&1; then
  fail "the API key appears in the connector's output: $(grep -l -F "$API_KEY" "$tmp"/{spec,check,discover,read}.{out,err} | xargs -n1 basename | tr '\n' ' ')"
fi
counts=$("$PY" -c 'import json,sys,collections
c = collections.Counter(m["record"]["stream"] for m in map(json.loads, filter(lambda l: l.startswith("{"), open(sys.argv[1]))) if m["type"] == "RECORD")
print(", ".join(f"{k}={v}" for k, v in sorted(c.items())))' "$tmp/read.out")
step "OK: spec, check, discover ($(cat "$tmp/discover.out.count") streams), read ($counts), key never printed; $(( $(date +%s) - started )) s"
