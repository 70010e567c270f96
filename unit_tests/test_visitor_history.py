"""visitor_history: per day window, the visitors active in it (an `events` aggregation over every app), then
GET /visitor/{id}/history?starttime= for each; records are the items of the window plus `visitorId`.

"Now" is pinned to 2024-03-03T00:00Z and start_date is 2024-03-01: two day windows, a fixed state.
"""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest
from builders import (
    API_BASE,
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
    get_request,
    in_order,
    json_response,
    payload,
    read_stream,
    record_data,
    state,
    text_response,
)

_STREAM = "visitor_history"
_START_DATE = "2024-03-01"
_AWKWARD = 'jane "j" doe@example.com'  # in the active-visitors payload; quoted as one path segment
_AWKWARD_PATH = "jane%20%22j%22%20doe%40example.com"
_ANONYMOUS = "_PENDO_T_dPRrqg5DlCC"
_SETTLED = NOW_MS - HOUR_MS  # a window read at NOW_MS may save up to an hour before it


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


# Who had `events` rows in a window: every app, hourly buckets, paged on (hour, visitorId) as the events stream
# pages, under visitor_history's name: the events stream's requests (builders.ActivityStream).
_ACTIVE = ActivityStream("visitor_history", "events", rollup=True)


def _active_visitors_request(start: int, end: int, **keyset: Any) -> HttpRequest:
    return _ACTIVE.request(start, end, period="HOUR", **keyset)


def _mock_active(
    http_mocker: HttpMocker,
    start: int,
    end: int,
    rows: list[dict[str, Any]],
    anonymous: bool = False,
) -> int:
    """The active visitors of one window answered with `rows`: Pendo's count, then the read
    (builders.mock_window_reads); returns the count."""
    return _ACTIVE.mock_window(http_mocker, start, end, rows, period="HOUR", anonymous=anonymous)


def _history_request(visitor_path: str, start: int) -> HttpRequest:
    return get_request(f"visitor/{visitor_path}/history", starttime=str(start))


def _active(visitors: list[str], hour: int = MAR_1) -> list[dict[str, Any]]:
    """Rows of the active-visitors query: an hour inside the window asked for (rows outside it are dropped)."""
    return [
        {"visitorId": visitor, "appId": -323232, "accountId": f"account-{i}", "hour": hour, "numEvents": 1}
        for i, visitor in enumerate(visitors)
    ]


def _records(items: list[dict[str, Any]], visitor: str) -> list[dict[str, Any]]:
    return [{**item, "visitorId": visitor} for item in items]


def _read(config: dict, stream_state: dict | None = None, expecting_exception: bool = False):
    saved = state(_STREAM, stream_state) if stream_state else None
    return read_stream(_STREAM, config, SyncMode.incremental, saved, expecting_exception)


def test_visitor_history_first_window_body_is_the_whole_active_visitors_pipeline(
    http_mocker: HttpMocker,
) -> None:
    count = (
        HttpRequest(  # who was active: Pendo's count of the window's hourly rows, then (none here) no read
            "https://app.pendo.io/api/v1/aggregation",
            body={
                "response": {"mimeType": "application/json"},
                "request": {
                    "name": "source-pendo-visitor_history",
                    "pipeline": [
                        {
                            "source": {
                                "events": {"appId": 'expandAppIds("*")'},
                                "timeSeries": {
                                    "period": "hourRange",
                                    "first": 1709251200000,
                                    "last": "1709337599999",
                                },
                            }
                        },
                        {"identified": "visitorId"},
                        {"filter": "hour >= 1709251200000 && hour < 1709337600000"},
                        {"count": None},
                    ],
                },
            },
        )
    )
    http_mocker.post(count, count_response(0))
    _mock_active(http_mocker, MAR_2, NOW_MS, [])

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build())

    assert output.records == []
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {"*": {"ts": _SETTLED}}
    )


def test_visitor_history_reads_each_active_visitor_once_per_window_and_keeps_items_of_the_window(
    http_mocker: HttpMocker,
) -> None:
    items = payload(_STREAM)
    outside = [
        {**items[0], "ts": MAR_1 - HOUR_MS},
        {**items[0], "ts": MAR_2},
    ]  # history reaches past the window
    _mock_active(http_mocker, MAR_1, MAR_2, payload("visitor_history_active_visitors")["results"])
    http_mocker.get(_history_request("42", MAR_1), json_response(items + outside))
    http_mocker.get(_history_request(_AWKWARD_PATH, MAR_1), json_response(items[:1]))
    _mock_active(http_mocker, MAR_2, NOW_MS, _active(["43"], MAR_2))
    http_mocker.get(_history_request("43", MAR_2), json_response([{**items[2], "ts": MAR_2 + HOUR_MS}]))

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build())

    assert record_data(output) == in_order(
        _records(items, "42")
        + _records(items[:1], _AWKWARD)
        + _records([{**items[2], "ts": MAR_2 + HOUR_MS}], "43")
    )
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {"*": {"ts": _SETTLED}}
    )


def test_visitor_history_reads_by_day_whatever_the_period_and_the_app_ids(http_mocker: HttpMocker) -> None:
    # History is per visitor: it covers every app (docs/pendo.md) and has no HOUR grain.
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42"]))
    http_mocker.get(_history_request("42", MAR_1), json_response(payload(_STREAM)))
    _mock_active(http_mocker, MAR_2, NOW_MS, [])

    config = ConfigBuilder().with_(
        start_date=_START_DATE, period="HOUR", app_ids=["-323232", "5629499534213120"]
    )
    output = _read(config.build())

    assert record_data(output) == in_order(_records(payload(_STREAM), "42"))
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {"*": {"ts": _SETTLED}}
    )


@pytest.mark.parametrize("anonymous", [False, True], ids=["anonymous_off", "anonymous_on"])
def test_visitor_history_anonymous_setting_decides_the_identified_stage_and_whose_history_is_read(
    http_mocker: HttpMocker, anonymous: bool
) -> None:
    # With the toggle off Pendo should not send anonymous visitors; one that arrives anyway costs no call.
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42", _ANONYMOUS]), anonymous=anonymous)
    http_mocker.get(_history_request("42", MAR_1), json_response(payload(_STREAM)[:1]))
    if anonymous:
        http_mocker.get(_history_request(_ANONYMOUS, MAR_1), json_response(payload(_STREAM)[1:2]))
    _mock_active(http_mocker, MAR_2, NOW_MS, [], anonymous=anonymous)

    output = _read(
        ConfigBuilder().with_(start_date=_START_DATE, include_anonymous_visitors=anonymous).build()
    )

    expected = _records(payload(_STREAM)[:1], "42")
    if anonymous:
        expected += _records(payload(_STREAM)[1:2], _ANONYMOUS)
    assert record_data(output) == in_order(expected)


def test_visitor_history_full_page_of_active_visitors_is_followed_by_a_keyset_page(
    http_mocker: HttpMocker,
) -> None:
    page = 1_000
    first_page = _active(
        ["42"] * (page - 1) + ["43"]
    )  # one row per (visitor, account, hour): visitors repeat
    _ACTIVE.mock_count(http_mocker, MAR_1, MAR_2, page + 1, period="HOUR")
    http_mocker.post(_active_visitors_request(MAR_1, MAR_2, limit=page), aggregation_response(first_page))
    keyset_page = _active(["43", "44"])
    keyset_page[0] = first_page[-1]  # the rest of the last (hour, visitor) group: its row already read first
    http_mocker.post(
        _active_visitors_request(MAR_1, MAR_2, keyset=(MAR_1, "43"), limit=page),
        aggregation_response(keyset_page),
    )
    http_mocker.post(
        _active_visitors_request(MAR_1, MAR_2, after=MAR_1, limit=page), aggregation_response([])
    )
    for visitor in ("42", "43", "44"):
        http_mocker.get(_history_request(visitor, MAR_1), json_response(payload(_STREAM)[:1]))
    _ACTIVE.mock_count(http_mocker, MAR_2, NOW_MS, 0, period="HOUR")

    output = _read(ConfigBuilder().with_(start_date=_START_DATE, page_size=page).build())

    assert [r.record.data["visitorId"] for r in output.records] == ["42", "43", "44"]


def test_visitor_history_visitor_pendo_no_longer_knows_is_skipped(http_mocker: HttpMocker) -> None:
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42", "gone"]))
    http_mocker.get(_history_request("42", MAR_1), json_response(payload(_STREAM)))
    http_mocker.get(_history_request("gone", MAR_1), text_response("Not Found", 404))
    _mock_active(http_mocker, MAR_2, NOW_MS, [])

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build())

    assert record_data(output) == in_order(_records(payload(_STREAM), "42"))
    assert not output.errors


def test_visitor_history_with_state_starts_at_the_frontier_minus_the_lookback(
    http_mocker: HttpMocker,
) -> None:
    frontier = MAR_2 + 6 * HOUR_MS  # 2024-03-02T06:00Z; lookback_window_days 1 (the default)
    _mock_active(http_mocker, frontier - DAY_MS, frontier, _active(["42"], MAR_2))
    before = payload(_STREAM)  # 2024-03-01 from 02:00Z: before the window
    inside = [{**item, "ts": item["ts"] + DAY_MS} for item in before]  # 2024-03-02 from 02:00Z
    http_mocker.get(_history_request("42", frontier - DAY_MS), json_response(before + inside))
    _mock_active(http_mocker, frontier, NOW_MS, [])
    saved = activity_state("DAY", _START_DATE, {"*": {"ts": frontier}})

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build(), saved)

    assert record_data(output) == in_order(_records(inside, "42"))
    assert output.most_recent_state.stream_state.__dict__ == activity_state(
        "DAY", _START_DATE, {"*": {"ts": _SETTLED}}
    )


# ------------------------------------------------------------------------------------------ history refused
def test_visitor_history_get_sends_the_form_content_type_tap_pendo_sends(http_mocker: HttpMocker) -> None:
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42"]))
    http_mocker.get(
        HttpRequest(
            url=f"{API_BASE}/visitor/42/history",
            query_params={"starttime": str(MAR_1)},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        json_response(payload(_STREAM)),
    )
    _mock_active(http_mocker, MAR_2, NOW_MS, [])

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build())

    assert record_data(output) == in_order(_records(payload(_STREAM), "42"))


@pytest.mark.parametrize("status", [400, 422])
def test_visitor_history_refused_warns_once_stops_calling_and_keeps_the_state(
    http_mocker: HttpMocker, status: int
) -> None:
    # concurrency 1: one reader, so the second window starts after the refusal (no call for it at all)
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42", "43"]))
    refused = _history_request("42", MAR_1)
    http_mocker.get(refused, json_response({"overall": {}, "fields": {"starttime": "Invalid"}}, status))

    output = _read(ConfigBuilder().with_(start_date=_START_DATE, concurrency=1).build())

    assert output.records == []
    assert not output.errors
    warnings = [log.log.message for log in output.logs if log.log.level.value == "WARN"]
    assert warnings == [
        f"visitor_history: Pendo refused visitor history (HTTP {status} to GET /visitor/{{id}}/history); no more "
        "history calls in this sync, and visitor_history's state stays where it was. Other streams are not "
        "affected. Some Pendo subscriptions do not serve this endpoint."
    ]
    http_mocker.assert_number_of_calls(refused, 1)
    assert output.most_recent_state.stream_state.__dict__["apps"] == {}


@pytest.mark.parametrize("form", [float, str], ids=["float", "string"])
def test_visitor_history_ts_as_an_integral_float_or_a_numeric_string_is_that_time_as_an_integer(
    http_mocker: HttpMocker, form: Any
) -> None:
    items = payload(_STREAM)
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42"]))
    http_mocker.get(_history_request("42", MAR_1), json_response([{**i, "ts": form(i["ts"])} for i in items]))
    _mock_active(http_mocker, MAR_2, NOW_MS, [])

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build())

    assert record_data(output) == in_order(_records(items, "42"))
    assert all(type(r.record.data["ts"]) is int for r in output.records)


@pytest.mark.parametrize("ts", [None, "yesterday", 1709251200000.5], ids=["missing", "text", "non-integral"])
def test_visitor_history_ts_missing_or_not_an_integer_fails_naming_stream_field_and_window(
    http_mocker: HttpMocker, ts: Any
) -> None:
    items = payload(_STREAM)
    bad = {k: v for k, v in items[0].items() if k != "ts"} if ts is None else {**items[0], "ts": ts}
    _mock_active(http_mocker, MAR_1, MAR_2, _active(["42"]))
    http_mocker.get(_history_request("42", MAR_1), json_response([*items[1:], bad]))
    _mock_active(http_mocker, MAR_2, NOW_MS, [])

    output = _read(ConfigBuilder().with_(start_date=_START_DATE).build(), expecting_exception=True)

    error = output.errors[0].trace.error.message  # the stream's error (the sync's summary follows it)
    assert error.startswith("visitor_history: ") and "`ts`" in error and "2024-03-01T00:00" in error
