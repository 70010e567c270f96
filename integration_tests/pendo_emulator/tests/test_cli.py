"""The command line: `python -m integration_tests.pendo_emulator serve|truth` (run from the repo root)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from integration_tests.pendo_emulator.dataset import SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth

from .conftest import HOUR_MS, KEY_US, NOW_MS, TZ

REPO = Path(__file__).resolve().parents[3]
MODULE = [sys.executable, "-m", "integration_tests.pendo_emulator"]


@contextmanager
def serve(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    process = subprocess.Popen(
        [*MODULE, "serve", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, (
            f"the emulator exited before listening: {process.stderr.read() if process.stderr else ''}"
        )
        yield process, json.loads(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_cli_serve_prints_one_json_line_and_answers_page() -> None:
    with serve("--scale", "tiny") as (process, info):
        assert set(info) >= {"base_url", "now_ms"}
        assert str(info["base_url"]).startswith("http://127.0.0.1:")
        assert isinstance(info["now_ms"], int) and info["now_ms"] % HOUR_MS == 0
        assert info.get("pid") == process.pid
        response = requests.get(
            f"{info['base_url']}/api/v1/page",
            headers={"x-pendo-integration-key": KEY_US, "Connection": "close"},
            timeout=30,
        )
        assert response.status_code == 200
        assert response.json() and {p["appId"] for p in response.json()} == {-323232}
        process.terminate()
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None and process.stdout.read() == "", "exactly one line on stdout"


def test_cli_serve_options_clock_time_zone_and_faults() -> None:
    faults = json.dumps([{"kind": "status", "status": 503, "route": "page"}])
    with serve("--now", str(NOW_MS), "--tz", TZ, "--faults", faults, "--key", "extra-key.au:au") as (_, info):
        assert info["now_ms"] == NOW_MS
        headers = {"x-pendo-integration-key": KEY_US, "Connection": "close"}
        assert requests.get(f"{info['base_url']}/api/v1/page", headers=headers, timeout=30).status_code == 503
        assert requests.get(f"{info['base_url']}/api/v1/page", headers=headers, timeout=30).status_code == 200
        extra = {"x-pendo-integration-key": "extra-key.au", "Connection": "close"}
        assert (
            requests.get(f"{info['base_url']}/au/api/v1/page", headers=extra, timeout=30).status_code == 200
        )
        assert requests.get(f"{info['base_url']}/api/v1/page", headers=extra, timeout=30).status_code == 400
        body: dict[str, Any] = {
            "response": {},
            "request": {
                "pipeline": [
                    {
                        "source": {
                            "events": None,
                            "timeSeries": {"period": "dayRange", "first": "now()", "count": -1},
                        }
                    }
                ]
            },
        }
        envelope = requests.post(
            f"{info['base_url']}/api/v1/aggregation", json=body, headers=headers, timeout=30
        ).json()
        assert envelope["startTime"] == 1_794_891_600_000  # New York midnight of 2026-11-17 (05:00Z)


def test_cli_truth_prints_json_lines_of_the_stream() -> None:
    config = '{"start_date":"2020-01-01"}'
    result = subprocess.run(
        [*MODULE, "truth", "--config", config, "--stream", "events", "--now", str(NOW_MS), "--tz", TZ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all(set(line) == {"stream", "data"} and line["stream"] == "events" for line in lines)
    expected = GroundTruth(Dataset(SCALES["tiny"], 7, NOW_MS, TZ)).records("events", json.loads(config))
    assert [line["data"] for line in lines] == expected


def test_cli_truth_without_stream_prints_every_stream() -> None:
    result = subprocess.run(
        [*MODULE, "truth", "--config", '{"start_date":"2020-01-01"}', "--now", str(NOW_MS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    streams = {json.loads(line)["stream"] for line in result.stdout.splitlines()}
    assert streams == set(GroundTruth.streams())


def test_cli_truth_without_now_uses_the_current_hour() -> None:
    """Regression: `truth` without --now used a clock of 0 (1970)."""
    result = subprocess.run(
        [*MODULE, "truth", "--config", '{"start_date":"2020-01-01"}', "--stream", "events"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line)["data"] for line in result.stdout.splitlines()]
    current_hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    assert rows and max(r["day"] for r in rows) > current_hour - 2 * 86_400_000
