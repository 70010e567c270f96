"""What the reads after a possibly capped answer cost on a normal server (BEHAVIOR.md §B-17, activity/answers.py).

Runs the activity streams and visitor_history against the bundled emulator, a first sync and then an
incremental one from its state, and prints the aggregation requests per stream; nothing is asserted. Run it on
two checkouts to compare (the connector is imported from the checkout the script lives in):

    .venv/bin/python bench/probe_cost.py [--scale small] [--period DAY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.pendo_emulator import EmulatorProcess  # noqa: E402

STREAMS = [
    "events",
    "feature_events",
    "page_events",
    "track_events",
    "guide_events",
    "poll_events",
    "visitor_history",
]


def _read(stream: str, config: dict[str, Any], state: list[dict[str, Any]] | None) -> tuple[int, Any]:
    catalog = {
        "streams": [
            {
                "stream": {
                    "name": stream,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "incremental",
                "destination_sync_mode": "append",
            }
        ]
    }
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-c", "from source_pendo.run import run; run()", "read"]
        for name, payload in (("config", config), ("catalog", catalog), ("state", state)):
            if payload is None:
                continue
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(payload))
            args += [f"--{name}", str(path)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out = subprocess.run(args, capture_output=True, check=True, env=env, cwd=ROOT).stdout
    records, last_state = 0, None
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("type") == "RECORD":
            records += 1
        elif message.get("type") == "STATE":
            last_state = message["state"]
    return records, [last_state] if last_state else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "large"])
    parser.add_argument("--period", default="DAY", choices=["DAY", "HOUR"])
    parser.add_argument(
        "--days", type=int, default=30, help="start_date this many days before the emulator's now"
    )
    args = parser.parse_args()
    with EmulatorProcess(scale=args.scale) as pendo:
        start = time.strftime("%Y-%m-%d", time.gmtime(pendo.now_ms / 1000 - args.days * 86400))
        config = {
            "api_key": "emulator-key.us",
            "base_url": pendo.base_url,
            "start_date": start,
            "period": args.period,
        }
        print(f"scale {args.scale}, period {args.period}, start_date {start}")
        totals = Counter()
        for stream in STREAMS:
            state = None
            line = []
            for label in ("first", "incremental"):
                before = len(pendo.stats()["requests"])
                records, state = _read(stream, config, state)
                requests = pendo.stats()["requests"][before:]
                n = sum(1 for r in requests if r.get("route") == "aggregation")
                totals[label] += n
                line.append(f"{label} {records} records / {n} aggregation requests")
            print(f"{stream:16} " + "; ".join(line))
        print(
            f"{'total':16} first {totals['first']}, incremental {totals['incremental']} aggregation requests"
        )


if __name__ == "__main__":
    main()
