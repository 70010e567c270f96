"""What an activity sync costs in aggregation requests on a normal server: each window's count and its read
(BEHAVIOR.md §B-22), visitor history's per-visitor calls included.

Measured at 1.0.0, `--scale small --period DAY`: first sync 86, incremental 20 (0.3.1, which followed short
answers with requests ruling out a server's cap: 181-183 and 29).

Runs the activity streams and visitor_history against the bundled emulator, a first sync and then an
incremental one from its state, and prints the aggregation requests per stream; nothing is asserted. Run it on
two checkouts to compare (the connector is imported from the checkout the script lives in):

    .venv/bin/python bench/probe_cost.py [--scale small] [--period DAY]

The connector's clock is pinned to the emulator's (SOURCE_PENDO_NOW_MS), so two checkouts read the same data.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.conftest import API_KEY, CONNECTOR_NOW_ENV, catalog_for, run_connector  # noqa: E402
from integration_tests.invariant import CURSOR_FIELDS  # noqa: E402
from integration_tests.pendo_emulator import EmulatorProcess  # noqa: E402

STREAMS = list(CURSOR_FIELDS)  # the activity streams and visitor_history


def _read(
    stream: str, config: dict[str, Any], state: list[dict[str, Any]] | None, now_ms: int
) -> tuple[int, list[dict[str, Any]]]:
    """One incremental sync of `stream` by the connector of this checkout, its clock the emulator's."""
    env = {CONNECTOR_NOW_ENV: str(now_ms), "PYTHONPATH": str(ROOT)}
    run = run_connector("read", config, catalog_for([stream]), state, env=env)
    if run.returncode != 0:
        raise SystemExit(f"{stream}: the sync failed: {run.errors() or run.stderr[-2000:]}")
    return len(run.records(stream)), run.final_state()


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
            "api_key": API_KEY,
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
                records, state = _read(stream, config, state, pendo.now_ms)
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
