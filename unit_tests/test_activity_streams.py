"""events, feature_events, page_events, track_events, guide_events, poll_events: one aggregation pipeline per
(app, window) page, records spliced from the rows, and the per-app frontier state.

"Now" is pinned to 2024-03-03T00:00Z and start_date is two periods before it, so each read has two DAY
windows (or one window of two HOURs) and a fixed state. Every stream is a parametrized case; the first test
spells the whole events pipeline out, the others build it with builders.ActivityStream.request.
"""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.models import SyncMode, TraceType
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest
from builders import (
    ACTIVITY_STREAMS,
    DAY_MS,
    HOUR_MS,
    MAR_1,
    MAR_2,
    NOW_ENV,
    NOW_MS,
    ActivityStream,
    ConfigBuilder,
    activity_state,
    aggregation_response,
    count_response,
    in_order,
    in_pendo_order,
    read_stream,
    record_data,
    rows_like,
    state,
)

STREAMS = pytest.mark.parametrize("stream", ACTIVITY_STREAMS, ids=repr)
_START_DATE = "2024-03-01"
_TWO_APPS = ["-323232", "5629499534213120"]
_PAGE = 1_000
_ANONYMOUS = "_PENDO_T_dPRrqg5DlCC"


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


def _settled(stream: ActivityStream, period: str) -> int:
    """The frontier a window read at NOW_MS may save: a DAY rollup bucket settles 25 h after it opens, an
    HOUR one and a raw event 1 h after (source_pendo/activity_streams.py)."""
    return NOW_MS - (25 * HOUR_MS if stream.rollup and period == "DAY" else HOUR_MS)


def _read(stream: ActivityStream, config: dict, stream_state: dict | None = None):
    saved = state(stream.name, stream_state) if stream_state else None
    return read_stream(stream.name, config, SyncMode.incremental, saved)


# ------------------------------------------------------------------------------------------ first sync
def test_events_first_window_body_is_the_whole_pipeline(http_mocker: HttpMocker) -> None:
    events = ACTIVITY_STREAMS[0]
    selection = [
        {
            "source": {
                "events": {"appId": 'expandAppIds("*")'},
                "timeSeries": {"period": "dayRange", "first": 1709251200000, "last": "1709337599999"},
            }
        },
        {"identified": "visitorId"},
        {"filter": "day >= 1709251200000 && day < 1709337600000"},
    ]

    def aggregation(pipeline: list[dict[str, Any]]) -> HttpRequest:
        return HttpRequest(
            "https://app.pendo.io/api/v1/aggregation",
            body={
                "response": {"mimeType": "application/json"},
                "request": {"name": "source-pendo-events", "pipeline": pipeline},
            },
        )

    # Pendo's count of the window first: the same selection, ended by `{"count": null}` (BEHAVIOR.md §B-22)
    count = aggregation([*selection, {"count": None}])
    first_window = aggregation([*selection, {"sort": ["day", "visitorId"]}, {"limit": 50000}])
    http_mocker.post(count, count_response(len(events.rows())))
    # the answer holds the count: complete, nothing more is asked (BEHAVIOR.md §B-22)
    http_mocker.post(first_window, aggregation_response(events.rows()))
    events.mock_count(http_mocker, MAR_2, NOW_MS, 0)  # the next window: counted empty, not read

    output = _read(events, ConfigBuilder().with_(start_date=_START_DATE).build())

    assert record_data(output) == in_order(events.records(events.rows()))


@STREAMS
def test_activity_stream_day_windows_read_from_start_date_and_save_the_settled_frontier(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    stream.mock_window(http_mocker, MAR_1, MAR_2, stream.rows(at=MAR_1))
    stream.mock_window(http_mocker, MAR_2, NOW_MS, stream.rows(at=MAR_2))

    output = _read(stream, ConfigBuilder().with_(start_date=_START_DATE).build())

    assert record_data(output) == in_order(stream.records(stream.rows(at=MAR_1) + stream.rows(at=MAR_2)))
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {"*": {stream.cursor_field: _settled(stream, "DAY")}}
    )
    assert not output.errors


@STREAMS
def test_activity_stream_progress_comes_from_pendos_counts_and_the_stream_ends_with_one_line(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    """An ESTIMATE after each window (the rows counted so far and the time left at that density), and one INFO
    line when the stream is done: its rows against Pendo's count, its windows and apps."""
    first = stream.mock_window(http_mocker, MAR_1, MAR_2, stream.rows(at=MAR_1))
    second = stream.mock_window(http_mocker, MAR_2, NOW_MS, stream.rows(at=MAR_2))

    output = _read(stream, ConfigBuilder().with_(start_date=_START_DATE).build())

    estimates = [
        t.trace.estimate.row_estimate
        for t in output.trace_messages
        if t.trace.type == TraceType.ESTIMATE and t.trace.estimate.name == stream.name
    ]
    assert len(estimates) == 2 and estimates[-1] == first + second
    lines = [log.log.message for log in output.logs if log.log.message.startswith(f"{stream.name}: ")]
    assert f"{stream.name}: {first + second} rows = Pendo's count, 2 windows, 1 app" in lines


@STREAMS
def test_activity_stream_hour_period_asks_for_hour_buckets_and_saves_the_period(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    start_date, start = "2024-03-02T22:00:00Z", NOW_MS - 2 * HOUR_MS
    rows = stream.rows("HOUR", at=start) + stream.rows("HOUR", at=start + HOUR_MS)
    stream.mock_window(http_mocker, start, NOW_MS, rows, period="HOUR")

    output = _read(stream, ConfigBuilder().with_(start_date=start_date, period="HOUR").build())

    assert record_data(output) == in_order(stream.records(rows, "HOUR"))
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "HOUR", start_date, {"*": {stream.cursor_field: _settled(stream, "HOUR")}}
    )


@STREAMS
def test_activity_stream_two_app_ids_read_one_partition_per_app_each_with_its_frontier(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    for app in _TWO_APPS:
        stream.mock_window(http_mocker, MAR_1, MAR_2, stream.rows(app=app), app=app)
        stream.mock_window(http_mocker, MAR_2, NOW_MS, [], app=app)

    output = _read(stream, ConfigBuilder().with_(start_date=_START_DATE, app_ids=_TWO_APPS).build())

    assert record_data(output) == in_order(stream.records(stream.rows()))
    frontier = {stream.cursor_field: _settled(stream, "DAY")}
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {app: frontier for app in _TWO_APPS}
    )


@STREAMS
@pytest.mark.parametrize("anonymous", [False, True], ids=["anonymous_off", "anonymous_on"])
def test_activity_stream_anonymous_setting_decides_the_identified_stage_and_the_anonymous_rows(
    http_mocker: HttpMocker, stream: ActivityStream, anonymous: bool
) -> None:
    # With the toggle off Pendo should not send anonymous rows; one that arrives anyway is dropped.
    identified = stream.rows()
    anonymous_row = {**identified[0], "visitorId": _ANONYMOUS}
    rows = in_pendo_order([*identified, anonymous_row], stream.time_field("DAY"))
    stream.mock_window(http_mocker, MAR_1, MAR_2, rows, anonymous=anonymous)
    stream.mock_window(http_mocker, MAR_2, NOW_MS, [], anonymous=anonymous)

    output = _read(
        stream, ConfigBuilder().with_(start_date=_START_DATE, include_anonymous_visitors=anonymous).build()
    )

    expected = [*identified, anonymous_row] if anonymous else identified
    assert record_data(output) == in_order(stream.records(expected))


@pytest.mark.parametrize("stream", [s for s in ACTIVITY_STREAMS if s.rollup], ids=repr)
def test_activity_stream_full_page_is_followed_by_a_keyset_page_that_skips_the_rows_already_read(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    t = stream.time_field("DAY")
    bucket = stream.rows()[0][t]
    first_page = rows_like(stream.name, "visitorId", [f"v{i:04d}" for i in range(_PAGE)])
    for row in first_page:
        row[t] = bucket
    # The keyset asks again for the last (bucket, visitor) group: its row already read comes back first.
    second_page = [first_page[-1], {**first_page[-1], "visitorId": "w0000"}]
    stream.mock_count(http_mocker, MAR_1, MAR_2, _PAGE + 1)
    http_mocker.post(stream.request(MAR_1, MAR_2, limit=_PAGE), aggregation_response(first_page))
    http_mocker.post(
        stream.request(MAR_1, MAR_2, keyset=(bucket, "v0999"), limit=_PAGE), aggregation_response(second_page)
    )
    http_mocker.post(stream.request(MAR_1, MAR_2, after=bucket, limit=_PAGE), aggregation_response([]))
    stream.mock_count(http_mocker, MAR_2, NOW_MS, 0)

    output = _read(stream, ConfigBuilder().with_(start_date=_START_DATE, page_size=_PAGE).build())

    assert record_data(output) == in_order(stream.records(first_page + second_page[1:]))


def test_events_keyset_page_body_is_the_whole_pipeline(http_mocker: HttpMocker) -> None:
    events = ACTIVITY_STREAMS[0]
    first_page = rows_like("events", "visitorId", [f"v{i:04d}" for i in range(_PAGE)])
    keyset_page = HttpRequest(
        "https://app.pendo.io/api/v1/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {
                "name": "source-pendo-events",
                "pipeline": [
                    {
                        "source": {
                            "events": {"appId": 'expandAppIds("*")'},
                            "timeSeries": {  # the bucket alone, up to its last millisecond
                                "period": "dayRange",
                                "first": 1709251200000,
                                "last": "1709337599999",
                            },
                        }
                    },
                    {"identified": "visitorId"},
                    {
                        "filter": "day >= 1709251200000 && day < 1709337600000 && day == 1709251200000 && "
                        'visitorId >= "v0999"'
                    },
                    {"sort": ["day", "visitorId"]},
                    {"limit": 1000},
                ],
            },
        },
    )
    events.mock_count(http_mocker, MAR_1, MAR_2, _PAGE)
    http_mocker.post(events.request(MAR_1, MAR_2, limit=_PAGE), aggregation_response(first_page))
    http_mocker.post(keyset_page, aggregation_response(first_page[-1:]))
    http_mocker.post(events.request(MAR_1, MAR_2, after=MAR_1, limit=_PAGE), aggregation_response([]))
    events.mock_count(http_mocker, MAR_2, NOW_MS, 0)

    output = _read(events, ConfigBuilder().with_(start_date=_START_DATE, page_size=_PAGE).build())

    assert len(output.records) == _PAGE


# ------------------------------------------------------------------------------------------ incremental
@STREAMS
def test_activity_stream_with_state_starts_at_the_frontier_minus_the_lookback(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    frontier = MAR_2 + 6 * HOUR_MS  # 2024-03-02T06:00Z
    # lookback_window_days 1 (the default); track_events' own, 7 days by default, reaches back to start_date
    start = MAR_1 if stream.name == "track_events" else frontier - DAY_MS
    rows = stream.rows(at=MAR_2)
    # a resumed lane is counted whole (the lookback and what came since): one window
    stream.mock_window(http_mocker, start, NOW_MS, rows)
    saved = activity_state("DAY", _START_DATE, {"*": {stream.cursor_field: frontier}})

    output = _read(stream, ConfigBuilder().with_(start_date=_START_DATE).build(), saved)

    assert record_data(output) == in_order(stream.records(rows))
    # A frontier never moves back: a DAY rollup read now has settled only up to 2024-03-01T23:00Z.
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {"*": {stream.cursor_field: max(frontier, _settled(stream, "DAY"))}}
    )
