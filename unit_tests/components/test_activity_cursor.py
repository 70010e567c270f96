"""The activity cursor: windows per app, a frontier that never passes an unfinished window, migrations."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_pendo.activity.cursor import DAY_MS, HOUR_MS, ActivityCursor, StateContext, WindowPolicy

NOW = 1_800_000_000_000 - 1_800_000_000_000 % DAY_MS + 5 * HOUR_MS
START = NOW - NOW % DAY_MS - 10 * DAY_MS


class _Partition:
    def __init__(self, stream_slice: StreamSlice) -> None:
        self._slice = stream_slice

    def to_slice(self) -> StreamSlice:
        return self._slice


def make_cursor(
    state: dict[str, Any] | None = None,
    partitions: list[str] | None = None,
    period: str = "DAY",
    start_date: str = "2027-01-05",
) -> tuple[ActivityCursor, InMemoryMessageRepository]:
    repo = InMemoryMessageRepository()
    cursor = ActivityCursor(
        stream_name="events",
        cursor_field="periodStart",
        partitions=partitions or ["*"],
        windows=WindowPolicy(
            period=period,
            start_ms=START,
            lookback_ms=DAY_MS,
            settle_ms=25 * HOUR_MS if period == "DAY" else HOUR_MS,
            initial_window_ms=DAY_MS,
            max_window_ms=30 * DAY_MS,
            target_rows=1000,
            max_windows_ahead=100,
        ),
        state_context=StateContext(
            stream_state=state or {},
            start_date=start_date,
            period_sensitive=True,
            message_repository=repo,
            connector_state_manager=ConnectorStateManager(),
        ),
        clock=lambda: NOW,
    )
    return cursor, repo


def test_activity_cursor_windows_cover_start_to_now_without_gaps_round_robin_over_apps():
    cursor, _ = make_cursor(partitions=["1", "2"])
    slices = list(cursor.stream_slices())
    for app in ("1", "2"):
        windows = [(int(s["start"]), int(s["end"])) for s in slices if s.partition["app_id"] == app]
        assert windows[0][0] == START and windows[-1][1] == NOW
        assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert [s.partition["app_id"] for s in slices[:2]] == ["1", "2"]


def test_activity_cursor_frontier_waits_for_the_earliest_unfinished_window():
    cursor, _ = make_cursor()
    slices = list(cursor.stream_slices())
    cursor.close_partition(_Partition(slices[1]))
    assert "*" not in cursor.state["apps"], "a later window finished first: the frontier must not move"
    cursor.close_partition(_Partition(slices[0]))
    assert cursor.state["apps"]["*"]["periodStart"] == int(slices[1]["end"])


def test_activity_cursor_frontier_stops_before_buckets_that_were_still_open():
    cursor, repo = make_cursor()
    for s in cursor.stream_slices():
        cursor.close_partition(_Partition(s))
    frontier = cursor.state["apps"]["*"]["periodStart"]
    assert frontier <= NOW - 25 * HOUR_MS
    assert len([m for m in repo.consume_queue()]) == len(list(make_cursor()[0].stream_slices())), (
        "one checkpoint per window"
    )


def test_activity_cursor_resumes_from_state_minus_lookback():
    saved = {
        "version": 1,
        "period": "DAY",
        "start_date": "2027-01-05",
        "apps": {"*": {"periodStart": NOW - 2 * DAY_MS}},
    }
    cursor, _ = make_cursor(saved)
    first = next(iter(cursor.stream_slices()))
    assert int(first["start"]) == NOW - 3 * DAY_MS


def test_activity_cursor_new_app_starts_from_the_all_apps_frontier():
    saved = {
        "version": 1,
        "period": "DAY",
        "start_date": "2027-01-05",
        "apps": {"*": {"periodStart": NOW - 2 * DAY_MS}},
    }
    cursor, _ = make_cursor(saved, partitions=["42"])
    first = next(iter(cursor.stream_slices()))
    assert first.partition["app_id"] == "42" and int(first["start"]) == NOW - 3 * DAY_MS


def test_activity_cursor_switch_from_app_list_to_all_apps_reads_from_start_date():
    saved = {
        "version": 1,
        "period": "DAY",
        "start_date": "2027-01-05",
        "apps": {"42": {"periodStart": NOW - 2 * DAY_MS}},
    }
    cursor, _ = make_cursor(saved, partitions=["*"])
    assert int(next(iter(cursor.stream_slices()))["start"]) == START
    assert cursor.state["apps"]["42"] == {"periodStart": NOW - 2 * DAY_MS}, (
        "progress of other partitions is kept"
    )


def test_activity_cursor_earlier_start_date_rereads_everything():
    saved = {
        "version": 1,
        "period": "DAY",
        "start_date": "2027-01-09",
        "apps": {"*": {"periodStart": NOW - 2 * DAY_MS}},
    }
    cursor, _ = make_cursor(saved, start_date="2027-01-05")
    assert int(next(iter(cursor.stream_slices()))["start"]) == START


def test_activity_cursor_period_change_is_a_config_error_naming_the_streams_to_reset():
    saved = {"version": 1, "period": "DAY", "start_date": "2027-01-05", "apps": {"*": {"periodStart": 1}}}
    with pytest.raises(AirbyteTracedException) as error:
        make_cursor(saved, period="HOUR")
    assert "period changed from DAY to HOUR" in error.value.message
    assert error.value.failure_type.value == "config_error"


def test_activity_cursor_grows_windows_after_sparse_ones_and_shrinks_after_dense_ones():
    cursor, _ = make_cursor()
    slices = cursor.stream_slices()
    first = next(slices)
    cursor.observe_window(first, 0)
    second = next(slices)
    assert int(second["end"]) - int(second["start"]) == 2 * DAY_MS
    cursor.observe_window(second, 100_000)
    third = next(slices)
    assert int(third["end"]) - int(third["start"]) == DAY_MS
