"""Activity streams under the readings of Pendo's aggregation API (BEHAVIOR.md R-1, R-4, R-5, R-10, R-11, R-12,
R-20, and R-15 … R-17, the readings no document lists that only the count check of §B-22 can catch).

Each test runs the installed connector against an emulator process switched to one reading (or all of them,
`pessimistic`) and checks its output against the ground truth under the invariant (integration_tests/invariant.py),
plus the request log proving the reading was exercised. Pages of a few rows (`SOURCE_PENDO_TEST_PAGE_SIZE`, below
the spec's minimum) make one period's rows fill many pages, which is where per-period pipelines bite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal
from integration_tests.conftest import EMULATOR_TZ, catalog_for, run_connector
from integration_tests.hostile_proxy import HostileProxy
from integration_tests.invariant import assert_never_lost
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.readings import READINGS
from integration_tests.pendo_emulator.truth import GroundTruth, parse_start_ms, raw_selection_time

SMALL_PAGES = {"SOURCE_PENDO_TEST_PAGE_SIZE": "7"}
# Every reading but R-13 (403 rateLimitExceeded), which is error handling, not the read path: its retries wait out
# the backoff (seconds each). The pessimistic world of test_activity_streams.py runs R-13 with the rest.
PESSIMISTIC_READ_PATH = tuple(name for name in READINGS if name != "rate_limit_403")
PAGE = 7
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def emulators(emulator_now: int) -> Iterator[dict[tuple[str, ...], EmulatorProcess]]:
    """One emulator per set of readings, started when a test first asks for it."""
    started: dict[tuple[str, ...], EmulatorProcess] = {}
    yield started
    for process in started.values():
        process.stop()


def emulator_with(
    emulators: dict[tuple[str, ...], EmulatorProcess], now: int, *readings: str
) -> EmulatorProcess:
    if readings not in emulators:
        emulators[readings] = EmulatorProcess(
            scale="tiny", seed=7, now_ms=now, tz=EMULATOR_TZ, readings=list(readings)
        ).start()
    process = emulators[readings]
    process.reset()
    return process


def sync(
    process: EmulatorProcess,
    base_config: dict[str, Any],
    discovered: dict[str, Any],
    streams: list[str],
    period: str,
    env: dict[str, str] | None = None,
    base_url: str | None = None,
) -> tuple[Any, GroundTruth, dict[str, Any]]:
    """One sync of `streams` from `process` (through `base_url`, a proxy of it, when given), checked."""
    config = dict(base_config, base_url=base_url or process.base_url, period=period)
    run = run_connector("read", config, catalog_for(streams, discovered=discovered), env=env)
    truth = GroundTruth(process.dataset())
    readings = process.dataset().readings
    positions = {s: raw_selection_time(readings) for s in ("guide_events", "poll_events")}
    expected = {s: truth.records(s, config) for s in streams}
    assert_never_lost([run], expected, lookback_days=int(config["lookback_window_days"]), positions=positions)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, truth, config


def aggregations(process: EmulatorProcess) -> list[dict[str, Any]]:
    return [r for r in process.stats()["requests"] if r.get("route") == "aggregation"]


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
def test_per_period_pipelines_with_pages_far_below_one_periods_rows(
    emulators, emulator_now, base_config, discovered, period
):
    process = emulator_with(emulators, emulator_now, "per_period_pipeline")
    run, _, _ = sync(
        process, base_config, discovered, ["events", "feature_events", "guide_events"], period, SMALL_PAGES
    )
    served = aggregations(process)
    assert any(r.get("rows", 0) > PAGE for r in served), (
        "no answer held more rows than the limit: R-1 not exercised"
    )
    if period == "HOUR":  # a day window of 24 hourly periods (DAY windows start as one local day: one bucket)
        assert sum("runs the pipeline on its own" in line for line in run.logs()) == 2, (
            "logged once per stream"
        )


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
def test_receive_time_buckets_lose_no_guide_or_poll_event(
    emulators, emulator_now, base_config, discovered, period
):
    process = emulator_with(emulators, emulator_now, "receive_time_buckets")
    run, truth, config = sync(process, base_config, discovered, ["guide_events", "poll_events"], period)
    start = parse_start_ms(config["start_date"])
    events = truth.records("guide_events", config) + truth.records("poll_events", config)
    assert any(abs(r["receivedTime"] - r["browserTime"]) > 24 * 3_600_000 for r in events), (
        "skewed events exist"
    )
    emitted = run.records("guide_events") + run.records("poll_events")
    assert any(r["browserTime"] < start for r in emitted), (
        "an event the server selected by receive time is kept"
    )


@pytest.mark.parametrize("pages", ["default", "small"])
def test_guide_and_poll_events_rows_without_browsertime_are_emitted_as_pendo_sends_them(
    emulators, emulator_now, base_config, discovered, pages
):
    """R-20: some raw events come without `browserTime`. Each is emitted once, as Pendo sent it (no invented
    time), the sync completes, and the records equal the truth exactly, over a first sync and an incremental one;
    with pages of 7 rows the keyset inside a period (on browserTime) neither loops nor skips them (§B-22)."""
    process = emulator_with(emulators, emulator_now, "rows_without_browsertime")
    config = dict(base_config, base_url=process.base_url)
    streams = ["guide_events", "poll_events"]
    catalog = catalog_for(streams, discovered=discovered)
    env = SMALL_PAGES if pages == "small" else None
    truth = GroundTruth(process.dataset())
    first = run_connector("read", config, catalog, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_connector("read", config, catalog, state=first.final_state(), env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    for stream in streams:
        expected = truth.records(stream, config)
        assert any("browserTime" not in r for r in expected), f"{stream}: no row without browserTime"
        assert_records_equal(stream, first.records(stream), expected)
        again = second.records(stream)  # the lookback read again: rows of the truth, each once
        assert again
        assert_records_equal(stream, again, [r for r in expected if r in again])
    assert not [line for line in first.logs() + second.logs() if "reading the window again" in line]


def test_results_null_is_an_empty_window(emulators, emulator_now, base_config, discovered):
    process = emulator_with(emulators, emulator_now, "null_results")
    sync(
        process, base_config, discovered, ["events", "guide_events", "poll_events", "visitor_history"], "HOUR"
    )
    # A window known to be empty whatever the clock: the hour the emulator's clock is in holds no rows yet.
    hour = emulator_now - emulator_now % HOUR_MS
    config = dict(base_config, base_url=process.base_url, period="HOUR", lookback_window_days=0)
    saved = {
        "version": 1,
        "period": "HOUR",
        "start_date": config["start_date"],
        "apps": {"*": {"periodStart": hour}},
    }
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"}, "stream_state": saved}}]
    process.reset()
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered), state=state)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.records("events") == []
    served = aggregations(process)
    # Pendo counts no rows in it (BEHAVIOR.md §B-22; a count answer with no row is `results: null` here): not read
    assert served and all(r.get("count") and r.get("status") == 200 for r in served), served[:3]


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
def test_strict_filters_and_value_forms(emulators, emulator_now, base_config, discovered, period):
    process = emulator_with(emulators, emulator_now, "strict_filters", "strict_value_forms")
    streams = ["events", "feature_events", "guide_events", "visitor_history"]
    sync(process, base_config, discovered, streams, period, SMALL_PAGES)
    served = aggregations(process)
    assert served and all(r.get("status") == 200 for r in served), [
        r for r in served if r.get("status") != 200
    ][:3]
    assert sum(1 for r in served if r.get("rows") == PAGE) > 3, "keyset pages were asked for"


def test_spaced_json(emulators, emulator_now, base_config, discovered):
    process = emulator_with(emulators, emulator_now, "spaced_json")
    sync(
        process, base_config, discovered, ["events", "feature_events", "guide_events", "poll_events"], "HOUR"
    )


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
def test_pessimistic_every_reading_at_once(emulators, emulator_now, base_config, discovered, period):
    process = emulator_with(emulators, emulator_now, *PESSIMISTIC_READ_PATH)
    streams = ["events", "feature_events", "page_events", "track_events", "guide_events", "poll_events"]
    sync(process, base_config, discovered, streams, period, SMALL_PAGES)
    assert any(r.get("rows", 0) > PAGE for r in aggregations(process))


# ------------------------------------------------------------------------------------- readings no document lists
READ_AGAIN = "reading the window again in smaller parts"


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
@pytest.mark.parametrize("reading", ["limit_before_sort", "sort_first_key_only"])
def test_a_sort_or_limit_read_differently_is_caught_by_the_count_and_read_again_exactly(
    emulators, emulator_now, base_config, discovered, reading, period
):
    """R-16, R-17: pages of 7 rows lose rows under the reading; the count catches each short window, which is
    read again by parts (one period in one request whose limit holds its count): the exact truth, exit 0."""
    process = emulator_with(emulators, emulator_now, reading)
    run, _, _ = sync(process, base_config, discovered, ["events", "page_events"], period, SMALL_PAGES)
    caught = [line for line in run.logs() if READ_AGAIN in line]
    assert caught, "no window came up short: the reading was not exercised"
    assert all(" rows where Pendo counts " in line for line in caught)


def test_last_as_an_exclusive_instant_needs_no_repair_and_the_count_catches_the_old_single_bucket_form(
    emulators, emulator_now, base_config, discovered
):
    """R-15: every request asks up to its last millisecond, right under both readings, so a sync with pages of 7
    is exact and reads nothing again. Sent in 0.3.x's single-bucket form (`last` = `first`, rewritten by a
    proxy), the rest of each bucket is lost, which 0.3.x emitted with exit 0: the count catches it, and the
    windows read again give the exact truth."""
    process = emulator_with(emulators, emulator_now, "exclusive_last")
    run, _, _ = sync(process, base_config, discovered, ["events"], "DAY", SMALL_PAGES)
    assert not any(READ_AGAIN in line for line in run.logs())
    with HostileProxy(process.base_url, modes=[{"kind": "old_bucket_form", "route": "aggregation"}]) as proxy:
        run, _, _ = sync(process, base_config, discovered, ["events"], "DAY", SMALL_PAGES, proxy.base_url)
        assert any(r.get("changed") for r in proxy.fired("old_bucket_form")), (
            "no single-bucket request was sent"
        )
    assert any(READ_AGAIN in line for line in run.logs())


def test_a_loss_the_parts_cannot_repair_stops_the_stream_naming_window_and_both_numbers(
    emulators, emulator_now, base_config, discovered
):
    """R-16 and a server capping answers at 3 rows (below one period's rows): even one period read again needs
    keyset pages, which the reading breaks. The stream stops with one error naming the stream, the period and
    both numbers; its state never passes the window (the invariant); exit 1, never 0 with rows missing."""
    process = emulator_with(emulators, emulator_now, "limit_before_sort")
    with HostileProxy(
        process.base_url, modes=[{"kind": "cap", "max_rows": 3, "route": "aggregation"}]
    ) as proxy:
        config = dict(base_config, base_url=proxy.base_url, period="DAY")
        run = run_connector("read", config, catalog_for(["events"], discovered=discovered), env=SMALL_PAGES)
    truth = GroundTruth(process.dataset())
    assert_never_lost([run], {"events": truth.records("events", config)}, lookback_days=1, complete=False)
    assert run.returncode == 1
    errors = run.errors()
    assert len(errors) == 1, errors
    message = errors[0]["message"]
    assert message.startswith("events: Pendo counts ") and " but its answers held " in message
    assert "progress is saved up to the last complete window" in message
