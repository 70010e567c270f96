"""The activity cursor: windows per app, a frontier that never passes an unfinished window, migrations."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_pendo.activity.cursor import ActivityCursor
from source_pendo.activity.state import StateContext
from source_pendo.activity.windows import WindowPolicy
from source_pendo.pendo import DAY_MS, HOUR_MS

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
    anonymous: bool = False,
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
            include_anonymous=anonymous,
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
    assert "42" not in cursor.state["apps"], "an app this sync does not read is not saved again (issue 24)"


def _stale_state(apps: list[str], frontier: int = NOW - 2 * DAY_MS) -> dict[str, Any]:
    return {
        "version": 1,
        "period": "DAY",
        "start_date": "2027-01-05",
        "apps": {app: {"periodStart": frontier} for app in apps},
    }


def _saved_back(cursor: ActivityCursor, repo: InMemoryMessageRepository) -> dict[str, Any]:
    for s in cursor.stream_slices():
        cursor.close_partition(_Partition(s))
    cursor.ensure_at_least_one_state_emitted()
    *_, last = list(repo.consume_queue())
    apps: dict[str, Any] = last.state.stream.stream_state.apps
    return {app: dict(entry) for app, entry in apps.items()}


def test_activity_state_all_apps_saves_back_only_the_all_apps_lane_of_1000_stale_apps(
    caplog: pytest.LogCaptureFixture,
):
    """`app_ids` empty (lane `*`): the 1000 app entries of an earlier state are not saved back (issue 24)."""
    stale = [str(n) for n in range(1000, 2000)]
    cursor, repo = make_cursor(_stale_state([*stale, "*"]), partitions=["*"])
    apps = _saved_back(cursor, repo)
    assert list(apps) == ["*"]
    assert apps["*"]["periodStart"] <= NOW - 25 * HOUR_MS
    [info] = [r for r in caplog.records if "does not read" in r.getMessage()]
    assert info.getMessage() == (
        'events: the saved state holds 1000 app(s) this sync does not read (not in app_ids, e.g. "1000"); '
        "their progress is not saved again."
    )


def test_activity_state_changed_app_ids_save_back_the_current_apps_and_the_all_apps_frontier():
    """app_ids changed to [42, 7]: the 1000 others are dropped; `*` stays (an app added later starts from it)."""
    stale = [str(n) for n in range(1000, 2000)]
    cursor, repo = make_cursor(_stale_state([*stale, "42", "*"]), partitions=["42", "7"])
    apps = _saved_back(cursor, repo)
    assert sorted(apps) == ["*", "42", "7"]
    assert apps["*"] == {"periodStart": NOW - 2 * DAY_MS}


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
    cursor, _ = make_cursor(
        saved, period="HOUR"
    )  # built: the error fails the stream's read, not the sync's start
    with pytest.raises(AirbyteTracedException) as error:
        list(cursor.stream_slices())
    assert "period changed from DAY to HOUR" in error.value.message
    assert error.value.failure_type.value == "config_error"


def test_activity_cursor_grows_windows_after_sparse_ones_and_shrinks_after_dense_ones():
    cursor, _ = make_cursor()
    slices = cursor.stream_slices()
    first = next(slices)
    cursor.observe_window(first, 0, 0)
    second = next(slices)
    assert int(second["end"]) - int(second["start"]) == 2 * DAY_MS
    cursor.observe_window(second, 100_000, 100_000)
    third = next(slices)
    assert int(third["end"]) - int(third["start"]) == DAY_MS


def _saved(frontier: Any, app: Any = "*", **fields: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "period": "DAY",
        "start_date": "2027-01-05",
        "apps": {app: {"periodStart": frontier}},
        **fields,
    }


def _first_start(cursor: ActivityCursor) -> int:
    return int(next(iter(cursor.stream_slices()))["start"])


@pytest.mark.parametrize(
    ("frontier", "said"),
    [
        (None, 'apps["*"].periodStart is null, not a time in epoch milliseconds'),
        ("last tuesday", 'apps["*"].periodStart is "last tuesday", not a time in epoch milliseconds'),
        (True, 'apps["*"].periodStart is true'),
        (
            1e300,
            'apps["*"].periodStart is not a time in epoch milliseconds (a whole number from 0 to year 9999)',
        ),
        (-1, "is not a time in epoch milliseconds"),
        (1.5, "is not a time in epoch milliseconds"),
    ],
)
def test_activity_cursor_an_invalid_saved_frontier_is_a_config_error_naming_stream_and_key(
    frontier: Any, said: str
):
    cursor, repo = make_cursor(_saved(frontier))  # building the stream does not fail: reading it does
    with pytest.raises(AirbyteTracedException) as raised:
        list(cursor.stream_slices())
    message = raised.value.message or ""
    assert raised.value.failure_type == FailureType.config_error
    assert "The saved state of stream events is invalid" in message and said in message
    assert "reset events" in message and "1e+300" not in message
    cursor.ensure_at_least_one_state_emitted()  # what the CDK calls when the stream ends, failed or not
    assert list(repo.consume_queue()) == [], "a state that cannot be used is never written back"
    assert cursor.state == _saved(frontier), "the saved state stays as it was"


def test_activity_cursor_a_frontier_after_now_reads_nothing_and_keeps_the_state_as_saved(
    caplog: pytest.LogCaptureFixture,
):
    """Airbyte's rule for a state from the future (its acceptance tests' abnormal state): nothing is read, the
    state is saved again as it was, and the stream succeeds; one WARNING says why nothing is read."""
    future = NOW + DAY_MS
    cursor, repo = make_cursor(
        _saved(future, app="42") | {"apps": {"42": {"periodStart": future}}}, ["42", "7"]
    )
    slices = list(cursor.stream_slices())
    assert {s.partition["app_id"] for s in slices} == {"7"}, "the app saved after now has nothing to read"
    assert cursor.state["apps"]["42"] == {"periodStart": future}
    cursor.ensure_at_least_one_state_emitted()
    [message] = list(repo.consume_queue())
    assert message.state.stream.stream_state.apps["42"] == {"periodStart": future}
    [warning] = [r for r in caplog.records if "after now" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "events: app 42: the saved state is at 2027-01-16T05:00Z, after now (2027-01-15T05:00Z)" in (
        warning.getMessage()
    )
    assert "kept as saved" in warning.getMessage()


def test_activity_cursor_a_frontier_that_is_a_whole_float_is_read_as_ms():
    assert _first_start(make_cursor(_saved(float(NOW - 2 * DAY_MS)))[0]) == NOW - 3 * DAY_MS


@pytest.mark.parametrize("app", ["abc", "", "9" * 30])
def test_activity_cursor_an_app_key_that_is_not_an_app_id_is_a_config_error(app: str):
    cursor, _ = make_cursor(_saved(NOW - 2 * DAY_MS, app=app))
    with pytest.raises(AirbyteTracedException, match="is not an app id"):
        list(cursor.stream_slices())


def test_activity_cursor_app_keys_with_whitespace_are_trimmed_to_one_partition_at_the_earlier_frontier():
    saved = _saved(NOW - 2 * DAY_MS, app="42\n")
    saved["apps"][" 42"] = {"periodStart": NOW - 4 * DAY_MS}
    cursor, _ = make_cursor(saved, partitions=["42"])
    assert _first_start(cursor) == NOW - 5 * DAY_MS
    assert list(cursor.state["apps"]) == ["42"]


def test_activity_cursor_the_same_start_date_written_as_a_timestamp_changes_nothing():
    saved = _saved(NOW - 2 * DAY_MS, start_date="2027-01-05T00:00:00Z")
    assert _first_start(make_cursor(saved, start_date="2027-01-05")[0]) == NOW - 3 * DAY_MS
    assert _first_start(make_cursor(saved, start_date="2027-01-04T23:59:59Z")[0]) == START, (
        "an earlier instant re-reads"
    )


def test_activity_cursor_a_saved_start_date_that_is_not_a_date_is_a_config_error():
    cursor, _ = make_cursor(_saved(NOW - 2 * DAY_MS, start_date="yesterday"))
    with pytest.raises(AirbyteTracedException, match='start_date is "yesterday", not a date'):
        list(cursor.stream_slices())


def test_activity_cursor_anonymous_visitors_turned_on_re_reads_from_start_date(
    caplog: pytest.LogCaptureFixture,
):
    off = _saved(NOW - 2 * DAY_MS, include_anonymous_visitors=False)
    cursor, _ = make_cursor(off, anonymous=True)
    assert _first_start(cursor) == START
    assert cursor.state["include_anonymous_visitors"] is True
    assert "include_anonymous_visitors was turned on since the last sync" in caplog.text
    # on -> off, on -> on, and a state saved before the setting was recorded: resume as before
    for saved, anonymous in [
        (dict(off, include_anonymous_visitors=True), False),
        (dict(off, include_anonymous_visitors=True), True),
        (_saved(NOW - 2 * DAY_MS), True),
    ]:
        assert _first_start(make_cursor(saved, anonymous=anonymous)[0]) == NOW - 3 * DAY_MS


def test_activity_cursor_hands_out_no_window_after_one_failed():
    cursor, _ = make_cursor()
    slices = iter(cursor.stream_slices())
    first = next(slices)
    assert first is not None
    cursor.stop_windows()  # the retriever's window raised: the stream fails
    cursor.release_window()
    assert list(slices) == []
