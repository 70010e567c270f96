"""The Pendo emulator Airbyte's Connector Acceptance Tests (CAT) run against, on a fixed loopback port.

CAT runs the connector's image with `docker run --network host` and the configs of acceptance-test-config.yml,
as Airbyte's CI does; those configs name `http://127.0.0.1:8765` (`ACCEPTANCE_BASE_URL`). One command starts the
emulator there, on a pinned clock (`ACCEPTANCE_NOW_MS`, the test suite's default instant) with the `tiny` dataset
and seed the expected records were made from:

    .venv/bin/python -m integration_tests.acceptance_emulator                   # serve until Ctrl-C
    .venv/bin/python -m integration_tests.acceptance_emulator expected-records  # rewrite expected_records.jsonl

The connector's own clock is pinned too: acceptance-test-config.yml sets `SOURCE_PENDO_NOW_MS` (CAT's
`custom_environment_variables`) to `CONNECTOR_NOW_MS`, a little after the emulator's, as the test suite does.
`integration_tests/expected_records.jsonl` (CAT's `expect_records` for basic_read) is the emulator's ground truth
for `sample_config.json`; `integration_tests/test_acceptance.py` checks that every one of these facts still holds.
docs/development.md ("Airbyte's acceptance tests") has the whole CAT run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from integration_tests.pendo_emulator.__main__ import main as emulator_main
from integration_tests.pendo_emulator.dataset import SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth
from source_pendo.settings.spec import built_in_streams

HOST = "127.0.0.1"
PORT = 8765
ACCEPTANCE_BASE_URL = f"http://{HOST}:{PORT}"
SCALE, SEED, TZ = "tiny", 7, "UTC"
ACCEPTANCE_NOW = "2026-05-20T14:20:00Z"  # the test suite's default instant (conftest.py DEFAULT_TEST_NOW)
ACCEPTANCE_NOW_MS = 1_779_286_800_000  # ACCEPTANCE_NOW in epoch ms
CONNECTOR_NOW_MS = ACCEPTANCE_NOW_MS + 120_000  # two minutes later, as conftest.py's connector_now_ms
HERE = Path(__file__).resolve().parent
SAMPLE_CONFIG = HERE / "sample_config.json"
EXPECTED_RECORDS = HERE / "expected_records.jsonl"


def expected_records() -> list[str]:
    """CAT's expected records: every built-in stream's ground truth for sample_config.json, one line each."""
    config: dict[str, Any] = json.loads(SAMPLE_CONFIG.read_text())
    truth = GroundTruth(Dataset(SCALES[SCALE], SEED, ACCEPTANCE_NOW_MS, TZ))
    return [
        json.dumps({"stream": stream, "data": record, "emitted_at": 0}, sort_keys=True)
        for stream in truth.streams()
        if stream in built_in_streams()  # the streams sample_config.json discovers (no custom aggregation)
        for record in truth.records(stream, config)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acceptance_emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "expected-records"])
    args = parser.parse_args(argv)
    if args.command == "expected-records":
        lines = expected_records()
        EXPECTED_RECORDS.write_text("\n".join(lines) + "\n")
        print(f"wrote {len(lines)} records to {EXPECTED_RECORDS}")
        return 0
    print(
        f"serving the acceptance emulator on {ACCEPTANCE_BASE_URL} (scale {SCALE}, seed {SEED}, clock "
        f"{ACCEPTANCE_NOW}); connectors under test: SOURCE_PENDO_NOW_MS={CONNECTOR_NOW_MS}",
        file=sys.stderr,
        flush=True,
    )
    return emulator_main(
        [
            "serve",
            *("--host", HOST, "--port", str(PORT), "--scale", SCALE, "--seed", str(SEED)),
            *("--now", str(ACCEPTANCE_NOW_MS), "--tz", TZ),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
