"""`filters` and `end_date` against the emulator process: the records equal the ground truth, in both worlds.

Each filter case is one sync of the six filterable streams, every stream with conditions of one field type
(text, number, time), so that each operator meets each type on the server path (a confirmed form, §B-12) and on
the client path (`!=`, CONTAINS, a negative or decimal number). Condition values are picked from the truth's
unfiltered records, and each case checks that its conditions keep some rows of every stream and drop others,
so a filter that did nothing (or everything) fails. The truth applies the conditions on its own (truth.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal
from integration_tests.conftest import catalog_for, run_connector
from integration_tests.pendo_emulator.dataset import DAY_MS

STREAMS = ["events", "feature_events", "page_events", "track_events", "guide_events", "poll_events"]
Records = dict[str, list[dict[str, Any]]]


def _when(stream: str, field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"stream": stream, "field": field, "operator": operator, "value": value}


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def _buckets(records: list[dict[str, Any]]) -> list[int]:
    return sorted({r["periodStart"] for r in records})


def _text_conditions(r: Records) -> list[dict[str, Any]]:
    return [
        _when("events", "accountId", "EQUAL_TO", 'Umbrella "Corp"'),  # server, a quote escaped
        _when("feature_events", "accountId", "EQUAL_TO", "back\\slash & Co"),  # server, a backslash escaped
        _when("page_events", "server", "NOT_EQUAL_TO", r["page_events"][0]["server"]),  # client
        _when("page_events", "userAgent", "CONTAINS", "Mozilla"),  # client
        _when("track_events", "remoteIp", "CONTAINS", "203.0."),  # client; rows without remoteIp fail it
        _when("guide_events", "type", "EQUAL_TO", "guideSeen"),  # server
        _when(
            "guide_events",
            "remoteIp",
            "NOT_EQUAL_TO",
            next(x["remoteIp"] for x in r["guide_events"] if x.get("remoteIp")),
        ),  # client
        _when("poll_events", "url", "CONTAINS", "section9"),  # client
    ]


def _number_conditions(r: Records) -> list[dict[str, Any]]:
    return [
        _when(
            "events", "numEvents", "GREATER_THAN", int(median(x["numEvents"] for x in r["events"]))
        ),  # server
        _when("events", "numMinutes", "LESS_THAN_OR_EQUAL_TO", 10),  # server
        _when("feature_events", "numEvents", "EQUAL_TO", r["feature_events"][0]["numEvents"]),  # server
        _when("page_events", "numMinutes", "NOT_EQUAL_TO", r["page_events"][0]["numMinutes"]),  # client
        _when("page_events", "numEvents", "GREATER_THAN_OR_EQUAL_TO", 20),  # server
        _when("track_events", "numEvents", "LESS_THAN", 24.5),  # client: a decimal literal
        _when("guide_events", "appId", "EQUAL_TO", -323232),  # client: a negative literal
        _when("guide_events", "loadTime", "LESS_THAN", 800),  # server
        _when(
            "poll_events",
            "loadTime",
            "GREATER_THAN_OR_EQUAL_TO",
            int(median(x["loadTime"] for x in r["poll_events"])),
        ),
    ]


def _time_conditions(r: Records) -> list[dict[str, Any]]:
    events, features, pages, tracks = (_buckets(r[s]) for s in STREAMS[:4])
    # events without browserTime (BEHAVIOR.md §R-20, pessimistic) meet no condition on it
    guide_times = sorted(x["browserTime"] for x in r["guide_events"] if "browserTime" in x)
    poll_times = sorted(x["browserTime"] for x in r["poll_events"] if "browserTime" in x)
    return [
        _when("events", "periodStart", "BETWEEN", [events[1], events[1]]),  # server, epoch ms
        _when(
            "feature_events", "periodStart", "GREATER_THAN_OR_EQUAL_TO", _day(features[-2])
        ),  # server, a date
        _when("page_events", "periodStart", "NOT_EQUAL_TO", pages[0]),  # client
        _when("track_events", "periodStart", "LESS_THAN", tracks[-1]),  # server
        _when(
            "guide_events", "browserTime", "BETWEEN", [_day(guide_times[0]), _day(guide_times[0])]
        ),  # whole day
        _when(
            "poll_events", "browserTime", "LESS_THAN_OR_EQUAL_TO", poll_times[len(poll_times) // 2]
        ),  # server
    ]


CASES: dict[str, Callable[[Records], list[dict[str, Any]]]] = {
    "text": _text_conditions,
    "number": _number_conditions,
    "time": _time_conditions,
}


@pytest.mark.parametrize("case", list(CASES))
def test_filters_of_each_field_type_equal_the_truth_server_and_client_side(world, case):
    unfiltered = {stream: world.truth.records(stream, world.config) for stream in STREAMS}
    config = dict(world.config, filters=CASES[case](unfiltered))
    for stream in STREAMS:
        kept = len(world.expected(stream, config))
        assert 0 < kept < len(unfiltered[stream]), f"{case}: the conditions on {stream} keep {kept} rows"

    run = world.read(config, catalog_for(STREAMS, discovered=world.discovered))

    assert run.returncode == 0, run.stderr[-3000:]
    for stream in STREAMS:
        assert_records_equal(stream, run.records(stream), world.expected(stream, config))


def test_end_date_records_and_state_stop_there_and_the_next_sync_emits_nothing(world):
    streams = ["events", "page_events", "guide_events", "poll_events"]
    end_date = _day(world.truth.ds.now_ms - 3 * DAY_MS)
    end = world.truth.ds.now_ms - world.truth.ds.now_ms % DAY_MS - 2 * DAY_MS  # the midnight after end_date
    # without a new tag's history: it would read again, up to end_date, the objects the emulator's catalogue
    # changed within tag_settle_days (docs/pendo.md, "End date"); tested in test_catalogue_changes.py
    config = dict(world.config, end_date=end_date, backfill_new_tags=False)
    catalog = catalog_for(streams, discovered=world.discovered)

    first = world.read(config, catalog)

    assert first.returncode == 0, first.stderr[-3000:]
    for stream in streams:
        expected = world.expected(stream, config)
        assert 0 < len(expected) < len(world.expected(stream, world.config)), stream
        assert_records_equal(stream, first.records(stream), expected)
    frontiers = [
        frontier
        for state in first.final_state()
        for app in state["stream"]["stream_state"]["apps"].values()
        for key, frontier in app.items()
        if key != "backfill"
    ]
    assert len(frontiers) == len(streams) and all(f == end for f in frontiers), frontiers

    second = world.read(config, catalog, state=first.final_state())

    assert second.returncode == 0, second.stderr[-3000:]
    assert second.records() == []
    by_stream = lambda run: {s["stream"]["stream_descriptor"]["name"]: s["stream"] for s in run.final_state()}  # noqa: E731
    assert by_stream(second) == by_stream(first)


def test_end_date_stops_visitor_history_and_its_state_there(base_config, discovered, truth):
    end_date = _day(truth.ds.now_ms - 3 * DAY_MS)
    end = truth.ds.now_ms - truth.ds.now_ms % DAY_MS - 2 * DAY_MS
    config = dict(base_config, end_date=end_date)
    catalog = catalog_for(["visitor_history"], discovered=discovered)

    first = run_connector("read", config, catalog)

    assert first.returncode == 0, first.stderr[-3000:]
    expected = truth.records("visitor_history", config)
    assert 0 < len(expected) < len(truth.records("visitor_history", base_config))
    assert_records_equal("visitor_history", first.records("visitor_history"), expected)
    [state] = first.final_state()
    assert state["stream"]["stream_state"]["apps"] == {"*": {"ts": end}}
    second = run_connector("read", config, catalog, state=first.final_state())
    assert second.returncode == 0 and second.records() == [], second.stderr[-3000:]


def test_filter_change_re_reads_the_stream_from_start_date_with_a_warning(base_config, discovered, truth):
    catalog = catalog_for(["page_events"], discovered=discovered)
    before = dict(base_config, filters=[_when("page_events", "server", "EQUAL_TO", "app0.example.com")])
    after = dict(base_config, filters=[_when("page_events", "server", "EQUAL_TO", "app1.example.com")])
    first = run_connector("read", before, catalog)
    assert first.returncode == 0, first.stderr[-3000:]

    second = run_connector("read", after, catalog, state=first.final_state())

    assert second.returncode == 0, second.stderr[-3000:]
    assert_records_equal("page_events", second.records("page_events"), truth.records("page_events", after))
    warnings = [line for line in second.logs() if "filters changed since the last sync" in line]
    assert len(warnings) == 1 and "server EQUAL_TO" in warnings[0], second.logs()[-20:]
