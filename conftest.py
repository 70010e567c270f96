"""One pinned instant for the whole test session: no test depends on the wall clock.

`PENDO_TEST_NOW` (ISO-8601 with `Z` or an offset, e.g. 2026-03-08T07:30:00Z, or epoch milliseconds) sets it;
without it, `DEFAULT_TEST_NOW`. The integration tests' emulator takes it as its clock (`--now`: its data ends
there), and every connector the tests run, in-process or as a process, reads `SOURCE_PENDO_NOW_MS` (the
connector's only clock, source_pendo/clock.py) set for the session to a moment a little after it, in the same
hour, as a real sync's clock is a little after the last data Pendo holds. `scripts/pinned_clock_runs.sh` runs
the suite at several instants (midnight UTC, the end of a month, both US DST changes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

import pytest

TEST_NOW_ENV = "PENDO_TEST_NOW"
DEFAULT_TEST_NOW = "2026-05-20T14:20:00Z"  # a Wednesday afternoon, no DST change or month end near
CONNECTOR_NOW_ENV = "SOURCE_PENDO_NOW_MS"  # read by source_pendo/clock.py
CONNECTOR_LAG_MS = 2 * 60_000  # how long after the emulator's data ends the connector's clock is
HOUR_MS = 3_600_000


def parse_instant(text: str) -> int:
    """Epoch milliseconds of `text`: digits are epoch ms; otherwise ISO-8601 with an explicit UTC offset."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(
            f"{TEST_NOW_ENV}={text!r} has no time zone: write it in UTC, e.g. 2026-03-08T07:30:00Z"
        )
    return int(moment.timestamp() * 1000)


def session_now_ms() -> int:
    """The session's instant: `PENDO_TEST_NOW`, or `DEFAULT_TEST_NOW`. Never the wall clock."""
    return parse_instant(os.environ.get(TEST_NOW_ENV) or DEFAULT_TEST_NOW)


def connector_now_ms(emulator_now_ms: int) -> int:
    """The connector's clock for an emulator whose data ends at `emulator_now_ms`: a little later, in the same
    hour (so the hour the emulator is in, and the day, are still open buckets to the connector too)."""
    hour_end = emulator_now_ms - emulator_now_ms % HOUR_MS + HOUR_MS
    return min(emulator_now_ms + CONNECTOR_LAG_MS, emulator_now_ms + (hour_end - emulator_now_ms) // 2)


@pytest.fixture(scope="session")
def test_now_ms() -> int:
    return session_now_ms()


@pytest.fixture(scope="session", autouse=True)
def _connector_clock_pinned(test_now_ms: int) -> Iterator[None]:
    """Every connector of the session (in-process, or a process inheriting this environment) reads the pinned
    clock. A test that needs another instant sets `SOURCE_PENDO_NOW_MS` itself (monkeypatch.setenv)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONNECTOR_NOW_ENV, str(connector_now_ms(test_now_ms)))
        yield


def _runs_processes(item: pytest.Item) -> bool:
    """An integration test of the connector (it starts connector and emulator processes), not the emulator's own."""
    path = item.nodeid.split("::")[0]
    return path.startswith("integration_tests/") and not path.startswith("integration_tests/pendo_emulator/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that run processes first, the fast in-process ones (unit tests, the emulator's own) last: on
    xdist workers the many short tests then fill the last minutes instead of one worker finishing a long sync
    alone. The order within each group is kept; the tests do not depend on it."""
    items.sort(key=lambda item: 0 if _runs_processes(item) else 1)
