"""Demo sync: the bundled emulator (a Pendo subscription with 3 apps), then spec, check, discover, read.

Prints the check result, the discovered streams, per-stream record counts and the final state size.
`--scale small` (default) has ~200 visitors and 30 days of activity; `--period HOUR` syncs hourly rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from integration_tests.pendo_emulator import EmulatorProcess

CONNECTOR = [str(Path(sys.executable).parent / "source-pendo")]


def run(command: str, tmp: Path, **files: object) -> tuple[list[dict], float]:
    args = [*CONNECTOR, command]
    for name, payload in files.items():
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(payload))
        args += [f"--{name}", str(path)]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        errors = [
            m["trace"]["error"]["message"]
            for m in messages
            if m.get("type") == "TRACE" and m["trace"].get("type") == "ERROR"
        ]
        sys.exit(f"{command} failed (exit {proc.returncode}): {errors or proc.stderr[-2000:]}")
    return messages, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--period", default="DAY", choices=["DAY", "HOUR"])
    args = parser.parse_args()
    print(f"Starting the Pendo emulator ({args.scale} dataset)...")
    with (
        EmulatorProcess(scale=args.scale, tz="America/New_York") as emulator,
        tempfile.TemporaryDirectory() as tmp_dir,
    ):
        tmp = Path(tmp_dir)
        start_date = time.strftime("%Y-%m-%d", time.gmtime(emulator.now_ms / 1000 - 14 * 86400))
        config = {
            "api_key": "emulator-key.us",
            "base_url": emulator.base_url,
            "start_date": start_date,
            "period": args.period,
            # one filtered stream (docs/pendo.md#filters): page_events of one server only, sent to Pendo
            "filters": [
                {
                    "stream": "page_events",
                    "field": "server",
                    "operator": "EQUAL_TO",
                    "value": {"value_type": "text", "text": "app1.example.com"},
                }
            ],
            # One custom aggregation stream (docs/pendo.md, "Custom aggregation streams"): clicks per account
            # and period, incremental on periodStart.
            "custom_aggregations": [
                {
                    "name": "feature_clicks_per_account",
                    "source": '{"featureEvents": null}',
                    "pipeline": '[{"group": {"group": ["accountId"], "fields": {"clicks": {"sum": "numEvents"}}}}]',
                    "primary_key": ["accountId"],
                }
            ],
        }
        print(
            f"Emulator at {emulator.base_url}; config: start_date={start_date}, period={args.period}, all apps; "
            "filters: page_events where server EQUAL_TO app1.example.com; "
            "custom stream feature_clicks_per_account\n"
        )

        spec, _ = run("spec", tmp)
        properties = spec[-1]["spec"]["connectionSpecification"]["properties"]
        print(f"spec: {len(properties)} options: {', '.join(properties)}")

        check, _ = run("check", tmp, config=config)
        status = next(m for m in check if m["type"] == "CONNECTION_STATUS")["connectionStatus"]
        print(f"check: {status['status']} {status.get('message') or ''}")

        discover, _ = run("discover", tmp, config=config)
        streams = next(m for m in discover if m["type"] == "CATALOG")["catalog"]["streams"]
        print(f"discover: {len(streams)} streams\n")

        catalog = {
            "streams": [
                {
                    "stream": s,
                    "sync_mode": "incremental"
                    if "incremental" in s["supported_sync_modes"]
                    else "full_refresh",
                    "destination_sync_mode": "append_dedup"
                    if "incremental" in s["supported_sync_modes"] and s.get("source_defined_primary_key")
                    else "overwrite",
                    **(
                        {"cursor_field": s.get("default_cursor_field", [])}
                        if "incremental" in s["supported_sync_modes"]
                        else {}
                    ),
                    **(
                        {"primary_key": s["source_defined_primary_key"]}
                        if s.get("source_defined_primary_key")
                        else {}
                    ),
                }
                for s in streams
            ]
        }
        messages, elapsed = run("read", tmp, config=config, catalog=catalog)
        counts = Counter(m["record"]["stream"] for m in messages if m["type"] == "RECORD")
        states = [m for m in messages if m["type"] == "STATE"]
        width = max(len(s["name"]) for s in streams)
        print(f"{'stream'.ljust(width)}  {'mode':12}  records")
        for s in streams:
            mode = next(c["sync_mode"] for c in catalog["streams"] if c["stream"]["name"] == s["name"])
            print(f"{s['name'].ljust(width)}  {mode:12}  {counts.get(s['name'], 0):>7,}")
        total = sum(counts.values())
        print(f"\nread: {total:,} records, {len(states)} state checkpoints in {elapsed:.1f} s")
        last_state = {m["state"]["stream"]["stream_descriptor"]["name"]: m["state"] for m in states}
        second, elapsed = run("read", tmp, config=config, catalog=catalog, state=list(last_state.values()))
        again = sum(1 for m in second if m["type"] == "RECORD")
        print(
            f"read again with the saved state: {again:,} records in {elapsed:.1f} s (entities re-checked, activity from the lookback window)"
        )


if __name__ == "__main__":
    main()
