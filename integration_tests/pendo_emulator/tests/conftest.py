"""Fixtures for the emulator's server-level tests: in-process servers on loopback and small HTTP helpers.

The servers run `server.make_server` in a daemon thread on port 0 with a fixed clock, so every test sees
the same seeded subscription (the emulator's data are deterministic for a seed and clock). Tests that change run-time state (faults,
late rows) reset it themselves, so the module-scoped servers can be shared.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from integration_tests.pendo_emulator.dataset import Dataset
from integration_tests.pendo_emulator.server import Emulator, EmulatorSettings, base_url, make_server

NOW_MS = 1_795_000_000_000 // 3_600_000 * 3_600_000  # 2026-11-18T11:00Z, floored to the hour
TZ = "America/New_York"
SEED = 7
KEY_US = "emulator-key.us"
KEY_EU = "emulator-key.eu"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_APP = -323232


@dataclass
class Served:
    """A running emulator: its base URL, the in-process `Emulator`, and request helpers."""

    base_url: str
    emulator: Emulator
    session: requests.Session  # kept-alive, like a connector's

    def __iter__(self) -> Iterator[Any]:  # allows `base, emulator = served`
        return iter((self.base_url, self.emulator))

    @property
    def dataset(self) -> Dataset:
        return self.emulator.dataset

    def get(self, path: str, key: str | None = KEY_US, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if key is not None:
            headers["x-pendo-integration-key"] = key
        return self.session.get(self.base_url + path, headers=headers, timeout=30, **kwargs)

    def post(self, path: str, body: Any, key: str | None = KEY_US, **kwargs: Any) -> requests.Response:
        headers = {"Content-Type": "application/json", **(kwargs.pop("headers", {}) or {})}
        if key is not None:
            headers["x-pendo-integration-key"] = key
        return self.session.post(self.base_url + path, json=body, headers=headers, timeout=30, **kwargs)

    def aggregate_raw(
        self, pipeline: list[Any], key: str | None = KEY_US, prefix: str = "", **kw: Any
    ) -> requests.Response:
        return self.post(prefix + "/api/v1/aggregation", aggregation_body(pipeline), key=key, **kw)

    def aggregate(self, pipeline: list[Any], **kw: Any) -> dict[str, Any]:
        """POST an aggregation and return its envelope, asserting 200."""
        response = self.aggregate_raw(pipeline, **kw)
        assert response.status_code == 200, (response.status_code, response.text[:500])
        return response.json()

    def rows(self, pipeline: list[Any], **kw: Any) -> list[dict[str, Any]]:
        return self.aggregate(pipeline, **kw)["results"]

    def control(self, path: str, payload: Any) -> requests.Response:
        response = self.session.post(self.base_url + "/_emulator/" + path, json=payload, timeout=30)
        assert response.status_code == 200, response.text
        return response

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self.control("faults", rules)

    def stats(self) -> dict[str, Any]:
        return self.session.get(self.base_url + "/_emulator/stats", timeout=30).json()


def aggregation_body(pipeline: list[Any]) -> dict[str, Any]:
    return {
        "response": {"mimeType": "application/json"},
        "request": {"requestId": "test", "pipeline": pipeline},
    }


def source(name: str, params: Any = None, time_series: dict[str, Any] | None = None) -> dict[str, Any]:
    """`{"source": {name: params, "timeSeries": ...}}` (BEHAVIOR.md §B-10)."""
    spec: dict[str, Any] = {name: params}
    if time_series is not None:
        spec["timeSeries"] = time_series
    return {"source": spec}


def day_range(first: Any, **rest: Any) -> dict[str, Any]:
    return {"period": "dayRange", "first": first, **rest}


def hour_range(first: Any, **rest: Any) -> dict[str, Any]:
    return {"period": "hourRange", "first": first, **rest}


def _start(settings: EmulatorSettings) -> Iterator[Served]:
    server, emulator = make_server(settings)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    session = requests.Session()
    try:
        yield Served(base_url(server), emulator, session)
    finally:
        session.close()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    """The tiny subscription (seed 7, New York time) on an in-process server; yields (base_url, emulator)."""
    yield from _start(EmulatorSettings(scale="tiny", seed=SEED, now_ms=NOW_MS, tz=TZ))


@pytest.fixture(scope="session")
def served_small() -> Iterator[Served]:
    """The small subscription: 30 days, which cross the end of US daylight saving time (2026-11-01)."""
    yield from _start(EmulatorSettings(scale="small", seed=SEED, now_ms=NOW_MS, tz=TZ))


@pytest.fixture
def faults(served: Served) -> Iterator[Served]:
    """The tiny server with its fault rules and late-row switch reset after the test."""
    served.set_faults([])
    try:
        yield served
    finally:
        served.set_faults([])
        served.control("late_rows", False)


@pytest.fixture
def fresh() -> Iterator[Served]:
    """A tiny server of its own, for tests whose state must start clean (late rows, request stats)."""
    yield from _start(EmulatorSettings(scale="tiny", seed=SEED, now_ms=NOW_MS, tz=TZ))
