"""`filters` and `end_date` on the activity streams: the exact filter clause Pendo gets, the conditions kept
client side, the end of the windows and of the state, and a filter change seen by the cursor.

"Now" is pinned to 2024-03-03T00:00Z; start_date 2024-03-01 gives two DAY windows (MAR_1, MAR_2).
"""

from __future__ import annotations

import logging

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ACTIVITY_STREAMS,
    DAY_MS,
    MAR_1,
    MAR_2,
    NOW_ENV,
    NOW_MS,
    ActivityStream,
    ConfigBuilder,
    activity_state,
    count_response,
    in_order,
    read_stream,
    record_data,
    state,
)

_START_DATE = "2024-03-01"
_BY_NAME = {s.name: s for s in ACTIVITY_STREAMS}
PAGE_EVENTS, GUIDE_EVENTS = _BY_NAME["page_events"], _BY_NAME["guide_events"]


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


def _read(stream: ActivityStream, config: dict, stream_state: dict | None = None):
    saved = state(stream.name, stream_state) if stream_state else None
    return read_stream(stream.name, config, SyncMode.incremental, saved)


def _config(**fields) -> dict:
    return ConfigBuilder().with_(start_date=_START_DATE, **fields).build()


def _when(stream: str, field: str, operator: str, value) -> dict:
    return {"stream": stream, "field": field, "operator": operator, "value": value}


# ------------------------------------------------------------------------------------------ server side
def test_page_events_confirmed_conditions_are_anded_into_every_window_filter_with_escaped_literals(
    http_mocker: HttpMocker,
) -> None:
    filters = [
        _when("page_events", "server", "EQUAL_TO", 'app."x"\\y'),
        _when("page_events", "numEvents", "GREATER_THAN_OR_EQUAL_TO", 9),
        _when("page_events", "periodStart", "BETWEEN", ["2024-03-01", "2024-03-02"]),
        _when("events", "server", "EQUAL_TO", "other stream"),  # not this stream's
    ]
    sent = [
        'server == "app.\\"x\\"\\\\y"',
        "numEvents >= 9",
        f"day >= {MAR_1}",
        f"day <= {MAR_1 + 2 * DAY_MS - 1}",  # BETWEEN's second date includes its whole day
    ]
    rows = PAGE_EVENTS.rows(at=MAR_1)
    PAGE_EVENTS.mock_window(http_mocker, MAR_1, MAR_2, rows, filters=sent)
    PAGE_EVENTS.mock_window(http_mocker, MAR_2, NOW_MS, [], filters=sent)

    output = _read(PAGE_EVENTS, _config(filters=filters))

    assert record_data(output) == in_order(PAGE_EVENTS.records(rows))
    assert "filters" in output.most_recent_state.stream_state.__dict__
    assert not output.errors


def test_guide_events_confirmed_condition_is_the_filter_of_a_request_over_several_periods(
    http_mocker: HttpMocker,
) -> None:
    filters = [
        _when("guide_events", "type", "EQUAL_TO", "guideSeen"),
        _when("guide_events", "loadTime", "LESS_THAN", 500),
    ]
    sent = ['type == "guideSeen"', "loadTime < 500"]
    rows = GUIDE_EVENTS.rows(at=MAR_1)
    GUIDE_EVENTS.mock_window(http_mocker, MAR_1, MAR_2, rows, filters=sent)
    GUIDE_EVENTS.mock_window(http_mocker, MAR_2, NOW_MS, [], filters=sent)

    output = _read(GUIDE_EVENTS, _config(filters=filters))

    assert record_data(output) == in_order(rows)


# ------------------------------------------------------------------------------------------ client side
def test_page_events_unconfirmed_conditions_are_not_sent_and_drop_the_rows_that_fail_them(
    http_mocker: HttpMocker,
) -> None:
    filters = [
        _when("page_events", "visitorId", "NOT_EQUAL_TO", "43"),  # `!=`: unconfirmed
        _when("page_events", "remoteIp", "CONTAINS", "203.0.113."),  # a function: unconfirmed
        _when("page_events", "numEvents", "LESS_THAN", 11.5),  # a decimal literal: unconfirmed
    ]
    rows = PAGE_EVENTS.rows(at=MAR_1)
    PAGE_EVENTS.mock_window(http_mocker, MAR_1, MAR_2, rows)
    PAGE_EVENTS.mock_window(http_mocker, MAR_2, NOW_MS, [])

    output = _read(PAGE_EVENTS, _config(filters=filters))

    kept = [row for row in rows if row["visitorId"] != "43" and row["numEvents"] < 11.5]
    assert [r["visitorId"] for r in kept] == ["jane@example.com"]
    assert record_data(output) == in_order(PAGE_EVENTS.records(kept))


def test_guide_events_contains_on_a_field_some_rows_lack_keeps_only_rows_that_have_it(
    http_mocker: HttpMocker,
) -> None:
    rows = GUIDE_EVENTS.rows(at=MAR_1)
    rows[0]["url"] = "https://app.example.com/settings"
    rows[1].pop("url", None)
    GUIDE_EVENTS.mock_window(http_mocker, MAR_1, MAR_2, rows)
    GUIDE_EVENTS.mock_window(http_mocker, MAR_2, NOW_MS, [])

    output = _read(GUIDE_EVENTS, _config(filters=[_when("guide_events", "url", "CONTAINS", "/settings")]))

    assert record_data(output) == [rows[0]]


# ------------------------------------------------------------------------------------------ end_date
@pytest.mark.parametrize("stream", [PAGE_EVENTS, GUIDE_EVENTS], ids=repr)
def test_activity_stream_end_date_clips_the_windows_and_the_state_at_its_day(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    rows = stream.rows(at=MAR_1)
    stream.mock_window(http_mocker, MAR_1, MAR_2, rows)  # no request after MAR_2

    output = _read(stream, _config(end_date="2024-03-01"))

    assert record_data(output) == in_order(stream.records(rows))
    frontier = output.most_recent_state.stream_state.__dict__["apps"]["*"][stream.cursor_field]
    assert MAR_1 < frontier <= MAR_2


@pytest.mark.parametrize("stream", [PAGE_EVENTS, GUIDE_EVENTS], ids=repr)
def test_activity_stream_after_its_end_date_reads_nothing_and_keeps_its_state(
    http_mocker: HttpMocker, stream: ActivityStream
) -> None:
    saved = activity_state("DAY", _START_DATE, {"*": {stream.cursor_field: MAR_2}})

    output = _read(stream, _config(end_date="2024-03-01"), saved)  # no request at all: the mocker has none

    assert record_data(output) == []
    assert output.most_recent_state.stream_state.__dict__ == saved
    assert not output.errors


# ------------------------------------------------------------------------------------------ filter change
def test_page_events_changed_filters_re_read_from_start_date_with_a_warning(
    http_mocker: HttpMocker, caplog: pytest.LogCaptureFixture
) -> None:
    filters = [_when("page_events", "server", "EQUAL_TO", "app.example.com")]
    sent = ['server == "app.example.com"']
    saved = activity_state("DAY", _START_DATE, {"*": {"periodStart": MAR_2}})  # read without filters
    PAGE_EVENTS.mock_window(http_mocker, MAR_1, MAR_2, PAGE_EVENTS.rows(at=MAR_1), filters=sent)
    PAGE_EVENTS.mock_window(http_mocker, MAR_2, NOW_MS, [], filters=sent)

    with caplog.at_level(logging.WARNING):
        output = _read(PAGE_EVENTS, _config(filters=filters, lookback_window_days=0), saved)

    assert len(record_data(output)) == len(PAGE_EVENTS.rows())
    assert any("filters changed since the last sync" in r.getMessage() for r in caplog.records)
    fingerprint = output.most_recent_state.stream_state.__dict__["filters"]
    assert isinstance(fingerprint, str) and fingerprint


def test_page_events_same_filters_as_the_saved_state_continue_from_the_frontier(
    http_mocker: HttpMocker,
) -> None:
    filters = [
        _when("page_events", "server", "EQUAL_TO", "app.example.com"),
        _when("page_events", "numEvents", "GREATER_THAN", 1),
    ]
    sent = ['server == "app.example.com"', "numEvents > 1"]
    first_window = PAGE_EVENTS.count_request(MAR_1, MAR_2, filters=sent)  # counted empty: not read
    second_window = PAGE_EVENTS.count_request(MAR_2, NOW_MS, filters=sent)
    http_mocker.post(first_window, count_response(0))
    http_mocker.post(second_window, count_response(0))
    first = _read(PAGE_EVENTS, _config(filters=filters, lookback_window_days=0))
    saved = {**first.most_recent_state.stream_state.__dict__, "apps": {"*": {"periodStart": MAR_2}}}

    # the same conditions in another order are the same filters: no re-read, only the window after the frontier
    reordered = PAGE_EVENTS.count_request(MAR_2, NOW_MS, filters=list(reversed(sent)))
    http_mocker.post(reordered, count_response(0))
    output = _read(PAGE_EVENTS, _config(filters=list(reversed(filters)), lookback_window_days=0), saved)

    http_mocker.assert_number_of_calls(first_window, 1)
    http_mocker.assert_number_of_calls(reordered, 1)
    assert output.most_recent_state.stream_state.__dict__["filters"] == saved["filters"]


def test_page_events_filters_removed_since_the_last_sync_re_read_from_start_date(
    http_mocker: HttpMocker, caplog: pytest.LogCaptureFixture
) -> None:
    saved = {
        **activity_state("DAY", _START_DATE, {"*": {"periodStart": MAR_2}}),
        "filters": "0123456789abcdef",
    }
    PAGE_EVENTS.mock_window(http_mocker, MAR_1, MAR_2, PAGE_EVENTS.rows(at=MAR_1))
    PAGE_EVENTS.mock_window(http_mocker, MAR_2, NOW_MS, [])

    with caplog.at_level(logging.WARNING):
        output = _read(PAGE_EVENTS, _config(lookback_window_days=0), saved)

    assert len(record_data(output)) == len(PAGE_EVENTS.rows())
    assert any("filters changed since the last sync (now none)" in r.getMessage() for r in caplog.records)
    assert "filters" not in output.most_recent_state.stream_state.__dict__
