"""Integration fixtures: the Pendo emulator as a real process, and the installed connector run as one.

Every connector run's stdout and stderr are scanned for the integration key (the emulator's, and whatever
key the run's config carries): a leak fails the test. Start the connector only through the runners below
(`run_connector`, `run_connector_killed_at`, `run_connector_to_file`), which all scan, and which all give the
connector the session's pinned clock (`SOURCE_PENDO_NOW_MS`, set by the root conftest.py): no run reads the
wall clock to decide what to read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import SCALES, Dataset
from integration_tests.pendo_emulator.readings import expand
from integration_tests.pendo_emulator.truth import GroundTruth

API_KEY = "emulator-key.us"
HOUR_MS = 3_600_000
ONE_APP = "5629499534213120"  # a large positive app id of the emulator's subscription
CONNECTOR_NOW_ENV = "SOURCE_PENDO_NOW_MS"  # the connector's clock (source_pendo/clock.py)
EMULATOR_TZ = "America/New_York"  # local-midnight days with DST, like Pendo's samples (BEHAVIOR.md §B-18)


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
    state_in: list[dict[str, Any]] | None = None  # the --state the run started from

    def iter_messages(self) -> Iterator[dict[str, Any]]:
        return iter(self.messages)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == type_]

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [
            m["record"]["data"]
            for m in self.of_type("RECORD")
            if stream is None or m["record"]["stream"] == stream
        ]

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


def _arguments(
    tmp: str,
    command: str,
    config: dict[str, Any] | None,
    catalog: dict[str, Any] | None,
    state: list[dict[str, Any]] | None,
    extra: list[str] | None = None,
) -> list[str]:
    args = [*connector_command(), command]
    for name, payload in (("config", config), ("catalog", catalog), ("state", state)):
        if payload is not None:
            path = Path(tmp) / f"{name}.json"
            path.write_text(json.dumps(payload))
            args += [f"--{name}", str(path)]
    return args + (extra or [])


def _connector_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment (plus `extra`), which must carry the pinned clock."""
    env = dict(os.environ, **(extra or {}))
    if not env.get(CONNECTOR_NOW_ENV):
        raise RuntimeError(f"{CONNECTOR_NOW_ENV} is not set: connector runs take the session's pinned clock")
    return env


def _parsed(run: ConnectorRun) -> ConnectorRun:
    for line in run.stdout.splitlines():
        with contextlib.suppress(ValueError):
            run.messages.append(json.loads(line))
    return run


def run_connector(
    command: str,
    config: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    state: list[dict[str, Any]] | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> ConnectorRun:
    with tempfile.TemporaryDirectory() as tmp:
        args = _arguments(tmp, command, config, catalog, state, extra_args)
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_connector_env(env),
            stdin=subprocess.DEVNULL,
        )
    run = _parsed(ConnectorRun(proc.returncode, proc.stdout, proc.stderr, state_in=state))
    assert_no_secret(run.stdout + run.stderr, *secrets_of(config))
    return run


def run_connector_killed_at(
    stop: Callable[[dict[str, Any]], bool],
    config: dict[str, Any],
    catalog: dict[str, Any],
    state: list[dict[str, Any]] | None = None,
    timeout: float = 600,
) -> ConnectorRun:
    """`read`, killed with SIGKILL as soon as it prints a message for which `stop` is true (a crash, an OOM kill).

    The run holds everything the process printed before it died, as the platform would have received it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        args = _arguments(tmp, "read", config, catalog, state)
        with open(Path(tmp) / "stderr", "w+") as stderr:
            proc = subprocess.Popen(
                args,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env=_connector_env(),
            )
            assert proc.stdout is not None
            deadline = time.monotonic() + timeout
            lines = []
            for line in proc.stdout:
                lines.append(line)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if stop(message) or time.monotonic() > deadline:
                    proc.send_signal(signal.SIGKILL)
                    break
            lines += proc.stdout.readlines()  # what it printed before the signal landed
            proc.wait()
            stderr.seek(0)
            run = _parsed(ConnectorRun(proc.returncode, "".join(lines), stderr.read(), state_in=state))
    assert_no_secret(run.stdout + run.stderr, *secrets_of(config))
    return run


@dataclass
class StreamedRun:
    """A run whose stdout went to a file (the load test: too many records to hold as dicts)."""

    returncode: int
    stdout_path: Path
    stderr: str
    state_in: list[dict[str, Any]] | None = None

    def iter_messages(self) -> Iterator[dict[str, Any]]:
        with open(self.stdout_path, "rb") as stdout:
            for line in stdout:
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue


def run_connector_to_file(
    stdout_path: Path,
    config: dict[str, Any],
    catalog: dict[str, Any],
    state: list[dict[str, Any]] | None = None,
    timeout: float = 1800,
) -> StreamedRun:
    """`read` with stdout written to `stdout_path`; scanned for the key in 8 MiB steps, never held whole."""
    with tempfile.TemporaryDirectory() as tmp:
        args = _arguments(tmp, "read", config, catalog, state)
        with open(stdout_path, "wb") as stdout:
            proc = subprocess.run(
                args,
                stdout=stdout,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                env=_connector_env(),
            )
    secrets = secrets_of(config)
    overlap = max(len(s) for s in secrets)
    with open(stdout_path, "rb") as stdout:
        tail = b""
        while chunk := stdout.read(8 << 20):
            assert_no_secret((tail + chunk).decode(errors="replace"), *secrets)
            tail = chunk[-overlap:]
    stderr = proc.stderr.decode(errors="replace")
    assert_no_secret(stderr, *secrets)
    return StreamedRun(proc.returncode, stdout_path, stderr, state_in=state)


def secrets_of(config: dict[str, Any] | None) -> list[str]:
    """The keys a run must never print: the emulator's, and the one in its config (as typed, and trimmed)."""
    key = (config or {}).get("api_key")
    forms = {API_KEY}
    if isinstance(key, str):
        forms |= {form for form in (key, key.strip()) if len(form.strip()) >= 6}
    return sorted(forms)


def assert_no_secret(output: str, *secrets: str) -> None:
    for secret in secrets or (API_KEY,):
        assert secret not in output, "the integration key appeared in the connector's output"


def catalog_for(
    streams: list[str], sync_mode: str = "incremental", discovered: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A configured catalog selecting `streams`, incremental where the stream supports it."""
    by_name = {s["name"]: s for s in (discovered or {}).get("streams", [])}
    configured = []
    for name in streams:
        stream = by_name.get(
            name, {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]}
        )
        mode = (
            sync_mode if sync_mode in stream.get("supported_sync_modes", ["full_refresh"]) else "full_refresh"
        )
        configured.append(
            {
                "stream": stream,
                "sync_mode": mode,
                "destination_sync_mode": "append_dedup"
                if mode == "incremental" and stream.get("source_defined_primary_key")
                else ("append" if mode == "incremental" else "overwrite"),
                **({"cursor_field": stream.get("default_cursor_field", [])} if mode == "incremental" else {}),
                **(
                    {"primary_key": stream["source_defined_primary_key"]}
                    if stream.get("source_defined_primary_key")
                    else {}
                ),
            }
        )
    return {"streams": configured}


@pytest.fixture(scope="session")
def emulator_now(test_now_ms: int) -> int:
    """The emulator's clock: the session's pinned instant (`PENDO_TEST_NOW`, see the root conftest.py), never
    the wall clock. Its data ends there; the connector's clock (`SOURCE_PENDO_NOW_MS`, set for the session)
    is a little after it, in the same hour. Start every emulator of a test with `now_ms=emulator_now`."""
    return test_now_ms


@pytest.fixture(scope="session")
def emulator(emulator_now: int) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        assert process.now_ms == emulator_now
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


# ----------------------------------------------------------------------------------------------- worlds
# The main sync tests run in two worlds: the emulator's default reading of Pendo's API, and `pessimistic`,
# every least convenient reading the public evidence allows at once (BEHAVIOR.md §R-1 … §R-20). The ground
# truth is the same records in both; only the answers differ. In the pessimistic world the activity reader
# pages in pages of a few rows (SOURCE_PENDO_TEST_PAGE_SIZE), so per-period pipelines truncate periods.
WORLDS = {"default": (), "pessimistic": ("pessimistic",)}
PESSIMISTIC_PAGE_SIZE = "7"


@dataclass
class World:
    name: str
    emulator: EmulatorProcess
    truth: GroundTruth
    config: dict[str, Any]
    discovered: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    def expected(self, stream: str, config: dict[str, Any]) -> list[dict[str, Any]]:
        """What a sync of `stream` must emit here: the truth, except visitor history where Pendo refuses
        every history call (`history_unavailable`: the stream is skipped with a warning)."""
        if stream == "visitor_history" and "history_unavailable" in expand(self.emulator.readings):
            return []
        return self.truth.records(stream, config)

    def read(
        self, config: dict[str, Any], catalog: dict[str, Any], state: list[dict[str, Any]] | None = None
    ) -> ConnectorRun:
        return run_connector("read", config, catalog, state=state, env=self.env or None)


@pytest.fixture(scope="session")
def pessimistic_emulator(emulator_now: int) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(
        scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ, readings=WORLDS["pessimistic"]
    ) as process:
        yield process


@pytest.fixture(scope="session", params=list(WORLDS))
def world(
    request: pytest.FixtureRequest,
    emulator: EmulatorProcess,
    truth: GroundTruth,
    base_config: dict[str, Any],
    discovered: dict[str, Any],
) -> World:
    """One world per parameter: the session emulator (default reading) or a pessimistic one beside it."""
    if request.param == "default":
        return World("default", emulator, truth, base_config, discovered)
    process: EmulatorProcess = request.getfixturevalue("pessimistic_emulator")
    config = dict(base_config, base_url=process.base_url)
    run = run_connector("discover", config)
    assert run.returncode == 0, run.stderr[-3000:]
    return World(
        "pessimistic",
        process,
        GroundTruth(process.dataset()),
        config,
        run.of_type("CATALOG")[0]["catalog"],
        env={"SOURCE_PENDO_TEST_PAGE_SIZE": PESSIMISTIC_PAGE_SIZE},
    )


def is_read_on(request: dict[str, Any]) -> bool:
    """Whether an emulator-logged activity read continues an answer (a keyset or `t > B` request after a full
    page) rather than opening a window."""
    condition = request.get("filter") or ""
    return not request.get("count") and (" == " in condition or " > " in condition)


def is_count(request: dict[str, Any]) -> bool:
    """Whether an emulator-logged aggregation is a count (`{"count": null}`, BEHAVIOR.md §B-22), not a read."""
    return bool(request.get("count"))
