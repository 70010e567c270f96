"""Integration fixtures: the Pendo emulator as a real process, and the installed connector run as one.

Every connector run's stdout and stderr are scanned for the integration key: a leak fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth

API_KEY = "emulator-key.us"
HOUR_MS = 3_600_000
ONE_APP = "5629499534213120"  # a large positive app id of the emulator's subscription
EMULATOR_TZ = "America/New_York"  # day buckets at local midnight, with DST, like Pendo's samples (§7)


def connector_command() -> list[str]:
    """The installed console script, next to this interpreter (the way Airbyte and PyAirbyte run it)."""
    script = Path(sys.executable).parent / "source-pendo"
    if script.exists():
        return [str(script)]
    found = shutil.which("source-pendo")
    if not found:
        raise RuntimeError("source-pendo is not installed: run `pip install -e .` first")
    return [found]


@dataclass
class ConnectorRun:
    returncode: int
    stdout: str
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == type_]

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [m["record"]["data"] for m in self.of_type("RECORD") if stream is None or m["record"]["stream"] == stream]

    def states(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.of_type("STATE")]

    def final_state(self) -> list[dict[str, Any]]:
        """The last state per stream, as the platform would pass it to the next sync."""
        last: dict[str, dict[str, Any]] = {}
        for state in self.states():
            last[state["stream"]["stream_descriptor"]["name"]] = state
        return list(last.values())

    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]

    def logs(self) -> list[str]:
        return [m["log"]["message"] for m in self.of_type("LOG")]


def run_connector(command: str, config: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None,
                  state: list[dict[str, Any]] | None = None, timeout: float = 600, env: dict[str, str] | None = None) -> ConnectorRun:
    with tempfile.TemporaryDirectory() as tmp:
        args = connector_command() + [command]
        for name, payload in (("config", config), ("catalog", catalog), ("state", state)):
            if payload is not None:
                path = Path(tmp) / f"{name}.json"
                path.write_text(json.dumps(payload))
                args += [f"--{name}", str(path)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL)
    run = ConnectorRun(proc.returncode, proc.stdout, proc.stderr)
    for line in proc.stdout.splitlines():
        try:
            run.messages.append(json.loads(line))
        except ValueError:
            pass
    assert_no_secret(run.stdout + run.stderr)
    return run


def assert_no_secret(output: str, secret: str = API_KEY) -> None:
    assert secret not in output, "the integration key appeared in the connector's output"


def catalog_for(streams: list[str], sync_mode: str = "incremental", discovered: dict[str, Any] | None = None) -> dict[str, Any]:
    """A configured catalog selecting `streams`, incremental where the stream supports it."""
    by_name = {s["name"]: s for s in (discovered or {}).get("streams", [])}
    configured = []
    for name in streams:
        stream = by_name.get(name, {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]})
        mode = sync_mode if sync_mode in stream.get("supported_sync_modes", ["full_refresh"]) else "full_refresh"
        configured.append({
            "stream": stream,
            "sync_mode": mode,
            "destination_sync_mode": "append_dedup" if mode == "incremental" and stream.get("source_defined_primary_key") else ("append" if mode == "incremental" else "overwrite"),
            **({"cursor_field": stream.get("default_cursor_field", [])} if mode == "incremental" else {}),
            **({"primary_key": stream["source_defined_primary_key"]} if stream.get("source_defined_primary_key") else {}),
        })
    return {"streams": configured}


@pytest.fixture(scope="session")
def emulator_now() -> int:
    """The emulator's clock: the current hour, so its data ends where a real sync's clock is."""
    return int(time.time() * 1000) // HOUR_MS * HOUR_MS


@pytest.fixture(scope="session")
def emulator(emulator_now: int) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        yield process


@pytest.fixture(scope="session")
def truth(emulator: EmulatorProcess) -> GroundTruth:
    return GroundTruth(Dataset(SCALES["tiny"], 7, emulator.now_ms, EMULATOR_TZ))


@pytest.fixture(scope="session")
def base_config(emulator: EmulatorProcess) -> dict[str, Any]:
    start = time.strftime("%Y-%m-%d", time.gmtime(emulator.now_ms / 1000 - 4 * 86400))
    return {
        "api_key": API_KEY,
        "base_url": emulator.base_url,
        "start_date": start,
        "period": "DAY",
        "app_ids": [],
        "include_anonymous_visitors": False,
        "lookback_window_days": 1,
        "request_timeout_seconds": 30,
    }


@pytest.fixture(scope="session")
def discovered(emulator: EmulatorProcess, base_config: dict[str, Any]) -> dict[str, Any]:
    """The catalog `discover` returns against the session's emulator (run once per session)."""
    run = run_connector("discover", base_config)
    assert run.returncode == 0, run.stderr
    return run.of_type("CATALOG")[0]["catalog"]
