"""Aggregation envelope validation and row stages (BEHAVIOR.md §B-9-§B-17)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration_tests.pendo_emulator.pipeline import (
    FILTER_PARSE_ERROR,
    PIPELINE_REQUIRED_BODY,
    AggregationRequest,
    PipelineError,
    TimeSeries,
    apply_stages,
    parse_request,
    sort_key,
)

NOW = 1_709_305_390_000
DAY_MS = 86_400_000
TAP_REQUESTS = Path(__file__).parent / "reference" / "tap-pendo-requests.json"


def body(*stages: Any, source: Any = None) -> dict[str, Any]:
    source = {"visitors": None} if source is None else source
    return {
        "response": {"mimeType": "application/json"},
        "request": {"pipeline": [{"source": source}, *stages]},
    }


def request(*stages: Any, source: Any = None) -> AggregationRequest:
    return parse_request(body(*stages, source=source), now_ms=NOW)


def run(rows: list[dict[str, Any]], *stages: Any) -> list[dict[str, Any]]:
    return list(apply_stages(rows, request(*stages).stages, now_ms=NOW))


def rejected(raw: Any) -> PipelineError:
    with pytest.raises(PipelineError) as caught:
        parse_request(raw, now_ms=NOW)
    return caught.value


def assert_bad_request(raw: Any, body_text: str | None = None) -> None:
    error = rejected(raw)
    assert (error.status, error.content_type) == (400, "text/plain")
    if body_text is not None:
        assert error.body == body_text


# --- Envelope (§B-9) ------------------------------------------------------------------------------------------


def tap_bodies() -> list[tuple[str, dict[str, Any]]]:
    captured = json.loads(TAP_REQUESTS.read_text())["requests"]
    return [(name, entry["body"]) for name, entry in captured.items() if entry["method"] == "POST"]


@pytest.mark.parametrize(("name", "tap_body"), tap_bodies(), ids=[name for name, _ in tap_bodies()])
def test_every_tap_pendo_request_body_parses(name: str, tap_body: dict[str, Any]) -> None:
    parsed = parse_request(tap_body, now_ms=NOW)
    source = tap_body["request"]["pipeline"][0]["source"]
    assert parsed.source_name == next(key for key in source if key != "timeSeries")
    assert [stage.kind for stage in parsed.stages] == [
        next(iter(s)) for s in tap_body["request"]["pipeline"][1:]
    ]
    if "timeSeries" in source:
        assert parsed.time_series is not None
        assert parsed.time_series.last_ms == NOW


def test_tap_body_with_stray_request_sort_and_expand_app_ids() -> None:
    parsed = parse_request(dict(tap_bodies())["dayRange: accounts"], now_ms=NOW)
    assert parsed.source_name == "accounts"
    assert parsed.app_ids == "all"
    assert [stage.kind for stage in parsed.stages] == ["sort", "filter", "limit"]
    assert parsed.stages[0].keys == ("metadata.auto.lastupdated",)  # type: ignore[attr-defined]
    assert parsed.stages[2].n == 100000  # type: ignore[attr-defined]


def test_tap_body_with_string_app_id_list() -> None:
    parsed = parse_request(dict(tap_bodies())["eu_anonymous_appids: events"], now_ms=NOW)
    assert parsed.app_ids == frozenset({5629499534213120, -323232})


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"pipeline": [{"source": {"visitors": None}}]},
        {"response": {"mimeType": "application/json"}},
        {"request": {}},
        {"request": None},
        {"request": "pipeline"},
        {"request": {"pipeline": {"source": {"visitors": None}}}},
        {"request": {"pipeline": None}},
        {"request": {"requests": [{"pipeline": []}]}},
        [],
        [{"source": {"visitors": None}}],
        "body",
        None,
        42,
    ],
)
def test_missing_pipeline_returns_422(raw: Any) -> None:
    error = rejected(raw)
    assert error.status == 422
    assert error.body == '{"overall":{},"fields":{"pipeline":"Required"}}' == PIPELINE_REQUIRED_BODY
    assert error.content_type == "application/json"


def test_unknown_envelope_keys_are_ignored() -> None:
    raw = body({"limit": 1})
    raw["channelId"] = ""
    raw["response"]["location"] = "request"
    raw["request"].update({"requestId": "x", "name": "y", "sort": ["accountId"], "extra": {"a": 1}})
    assert parse_request(raw).stages[0].kind == "limit"


@pytest.mark.parametrize(
    "pipeline",
    [
        [],
        [{"limit": 1}],
        [{"filter": "true"}, {"source": {"visitors": None}}],
        [{"source": {"visitors": None}, "limit": 1}],
        ["source"],
    ],
)
def test_pipeline_not_starting_with_source_returns_400(pipeline: list[Any]) -> None:
    assert_bad_request({"request": {"pipeline": pipeline}})


# --- Source stage (§B-10) -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "visitors",
        "accounts",
        "events",
        "featureEvents",
        "pageEvents",
        "trackEvents",
        "guideEvents",
        "pollEvents",
        "features",
        "pages",
        "guides",
        "trackTypes",
    ],
)
def test_known_source_names_parse(name: str) -> None:
    assert request(source={name: {}}).source_name == name


@pytest.mark.parametrize(
    "source",
    [
        {"visitor": None},
        {"singleEvents": None},
        {"visitors": None, "accounts": None},
        {"timeSeries": {"period": "dayRange", "first": 0, "count": 1}},
        {},
        None,
        ["visitors"],
        {"visitors": []},
        {"visitors": "all"},
    ],
)
def test_invalid_source_returns_400(source: Any) -> None:
    assert_bad_request({"request": {"pipeline": [{"source": source}]}})


@pytest.mark.parametrize("params", [None, {}])
def test_null_or_empty_params_mean_default_app(params: Any) -> None:
    parsed = request(source={"pageEvents": params})
    assert (parsed.app_ids, parsed.params, parsed.time_series) == ("default", {}, None)


def test_source_params_are_kept_and_unknown_ones_ignored() -> None:
    params = {"pageId": "aRnno0-bo2WMPJ7HBIFzCuDtKfg", "blacklist": "apply", "startTime": 1, "appId": -323232}
    parsed = request(source={"pageEvents": params})
    assert parsed.params == {"pageId": "aRnno0-bo2WMPJ7HBIFzCuDtKfg", "blacklist": "apply", "startTime": 1}
    assert "appId" in params


@pytest.mark.parametrize(
    ("app_id", "expected"),
    [
        (-323232, frozenset({-323232})),
        ("-323232", frozenset({-323232})),
        ("6253630842798080", frozenset({6253630842798080})),
        (["-323232", "5678"], frozenset({-323232, 5678})),
        ([-323232, "5678"], frozenset({-323232, 5678})),
        ([], frozenset()),
        ('expandAppIds("*")', "all"),
        ("expandAppIds(`*`)", "all"),
    ],
)
def test_app_id_forms(app_id: Any, expected: Any) -> None:
    assert request(source={"events": {"appId": app_id}}).app_ids == expected


@pytest.mark.parametrize(
    "app_id",
    [
        None,
        True,
        1.5,
        "abc",
        "",
        ["x"],
        [None],
        [[1]],
        {"id": 1},
        'expandAppIds("x")',
        "expandAppIds('*')",
        "*",
    ],
)
def test_invalid_app_id_returns_400(app_id: Any) -> None:
    assert_bad_request(body(source={"events": {"appId": app_id}}))


# --- timeSeries (§B-11) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_series", "expected"),
    [
        ({"period": "dayRange", "first": "now()", "count": -1}, TimeSeries("dayRange", NOW, -1, None)),
        (
            {"period": "hourRange", "first": "1709301600000", "last": "1709388000000"},
            TimeSeries("hourRange", 1709301600000, None, 1709388000000),
        ),
        (
            {"period": "dayRange", "first": 1709269200000, "last": "now()"},
            TimeSeries("dayRange", 1709269200000, None, NOW),
        ),
        (
            {"period": "dayRange", "first": 'dateAdd(now(), -7, "days")', "count": 7},
            TimeSeries("dayRange", NOW - 7 * DAY_MS, 7, None),
        ),
        (
            {"period": "dayRange", "first": "now() - 30 * 1000*60*60*24", "count": 30},
            TimeSeries("dayRange", NOW - 30 * DAY_MS, 30, None),
        ),
        (
            {"period": "dayRange", "first": "date(2024, 3, 1)", "count": 1, "unknown": True},
            TimeSeries("dayRange", 1709251200000, 1, None),
        ),
    ],
)
def test_time_series_values_are_resolved_to_ms(time_series: dict[str, Any], expected: TimeSeries) -> None:
    parsed = request(source={"events": None, "timeSeries": time_series})
    assert parsed.time_series == expected


@pytest.mark.parametrize(
    "time_series",
    [
        None,
        [],
        {"period": "last30days", "first": 0, "count": 1},
        {"period": "weekRange", "first": 0, "count": 1},
        {"first": 0, "count": 1},
        {"period": "dayRange", "count": 1},
        {"period": "dayRange", "first": 0},
        {"period": "dayRange", "first": 0, "count": 1, "last": 5},
        {"period": "dayRange", "first": 0, "count": "1"},
        {"period": "dayRange", "first": 0, "count": 1.5},
        {"period": "dayRange", "first": 0, "count": True},
        {"period": "dayRange", "first": 0, "count": None},
        {"period": "dayRange", "first": "yesterday", "count": 1},
        {"period": "dayRange", "first": "now(", "count": 1},
        {"period": "dayRange", "first": 0, "last": None},
        {"period": "dayRange", "first": 0, "last": '"2024-03-01"'},
        {"period": "dayRange", "first": 0, "last": "day"},
    ],
)
def test_invalid_time_series_returns_400(time_series: Any) -> None:
    assert_bad_request(body(source={"events": None, "timeSeries": time_series}))


# --- Stage parsing (§F-2) -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage",
    [
        {"reduce": {"n": {"count": None}}},
        {"merge": {"fields": ["visitorId"], "pipeline": []}},
        {"bulkExpand": {"account": {"account": "accountId"}}},
        {"segment": {"id": "x"}},
        {"fields": ["a"]},
        {"bogus": 1},
        {"source": {"visitors": None}},
        {"limit": 1, "sort": ["a"]},
        {},
        "limit",
        None,
    ],
)
def test_unknown_operator_returns_400(stage: Any) -> None:
    assert_bad_request(body(stage))


@pytest.mark.parametrize(
    "text", ["x in [1,2]", "visitorId >", 'visitorId = "a"', "", "foo(x)", 5, None, ["a"]]
)
def test_unparseable_filter_returns_400_cannot_parse_filter_expression(text: Any) -> None:
    assert_bad_request(body({"filter": text}), "Cannot parse filter expression")
    assert FILTER_PARSE_ERROR == "Cannot parse filter expression"


@pytest.mark.parametrize(
    "stage",
    [
        {"sort": []},
        {"sort": "day"},
        {"sort": ["-"]},
        {"sort": [""]},
        {"sort": [1]},
        {"sort": ["a b"]},
        {"sort": ["--day"]},
        {"limit": -1},
        {"limit": "5"},
        {"limit": 1.5},
        {"limit": True},
        {"limit": None},
        {"select": {}},
        {"select": []},
        {"select": {"out": 1}},
        {"select": {"out": "a +"}},
        {"select": {"a.b": "x"}},
        {"select": {"": "x"}},
        {"eval": {}},
        {"eval": {"out": "in [1]"}},
        {"eval": {"a..b": "x"}},
        {"eval": {"out": None}},
        {"identified": ""},
        {"identified": "!"},
        {"identified": True},
        {"identified": ["visitorId"]},
        {"count": "visitorId"},
        {"count": {}},
        {"group": ["visitorId"]},
        {"group": {"group": "visitorId", "fields": {}}},
        {"group": {"group": ["visitorId"], "fields": {"n": {"median": "numEvents"}}}},
        {"group": {"group": ["visitorId"], "fields": {"n": {"sum": None}}}},
        {"group": {"group": ["visitorId"], "fields": {"n": {"sum": "a", "count": None}}}},
        {"group": {"group": ["visitorId"], "fields": {"a.b": {"count": None}}}},
        {"group": {"group": ["visitorId"], "fields": "n"}},
        {"group": {"group": ["visitorId"], "having": "n > 1"}},
        {"unwind": "list"},
        {"unwind": {"index": "i"}},
        {"unwind": {"field": "list", "keepEmpty": "yes"}},
        {"unwind": {"field": "a b"}},
    ],
)
def test_malformed_stage_argument_returns_400(stage: dict[str, Any]) -> None:
    assert_bad_request(body(stage))


def test_stages_expose_their_arguments() -> None:
    stages = request(
        {"filter": "day >= 5"},
        {"sort": ["day", "-visitorId"]},
        {"limit": 10},
        {"identified": "!visitorId"},
        {"count": None},
    ).stages
    assert [stage.kind for stage in stages] == ["filter", "sort", "limit", "identified", "count"]
    filter_stage, sort_stage, limit_stage, identified_stage, _ = stages
    assert filter_stage.text == "day >= 5"  # type: ignore[attr-defined]
    assert filter_stage.expr.evaluate({"day": 5})  # type: ignore[attr-defined]
    assert sort_stage.keys == ("day", "-visitorId")  # type: ignore[attr-defined]
    assert limit_stage.n == 10  # type: ignore[attr-defined]
    assert identified_stage.field == "!visitorId"  # type: ignore[attr-defined]
    assert (identified_stage.path, identified_stage.anonymous) == ("visitorId", True)  # type: ignore[attr-defined]


# --- Stage behaviour ------------------------------------------------------------------------------------------

VISITORS = [
    {"visitorId": "b", "day": 2, "metadata": {"auto": {"lastupdated": 20}}},
    {"visitorId": "a", "day": 1, "metadata": {"auto": {"lastupdated": 30}}},
    {"visitorId": "_PENDO_T_dPRrqg5DlCC", "day": 2, "metadata": {"auto": {"lastupdated": 10}}},
    {"visitorId": "c", "day": 1, "metadata": {"auto": {}}},
]


def ids(rows: list[dict[str, Any]]) -> list[Any]:
    return [row["visitorId"] for row in rows]


def test_filter_keeps_matching_rows_in_order() -> None:
    assert ids(run(VISITORS, {"filter": 'visitorId>"a"'})) == ["b", "c"]


def test_filter_with_backtick_string_matches() -> None:
    assert ids(run(VISITORS, {"filter": "visitorId==`c`"})) == ["c"]


def test_filter_uses_the_request_clock() -> None:
    rows = [{"visitorId": "old", "lastTime": NOW - 2000}, {"visitorId": "new", "lastTime": NOW - 500}]
    assert ids(run(rows, {"filter": "lastTime >= now() - 1000"})) == ["new"]


def test_sort_by_one_field_ascending() -> None:
    assert ids(run(VISITORS, {"sort": ["visitorId"]})) == ["_PENDO_T_dPRrqg5DlCC", "a", "b", "c"]


def test_sort_multi_key_with_descending_second_key() -> None:
    assert ids(run(VISITORS, {"sort": ["day", "-visitorId"]})) == ["c", "a", "b", "_PENDO_T_dPRrqg5DlCC"]


def test_sort_descending_first_key_then_ascending() -> None:
    assert ids(run(VISITORS, {"sort": ["-day", "visitorId"]})) == ["_PENDO_T_dPRrqg5DlCC", "b", "a", "c"]


def test_sort_by_dotted_path_puts_missing_values_first() -> None:
    assert ids(run(VISITORS, {"sort": ["metadata.auto.lastupdated"]})) == [
        "c",
        "_PENDO_T_dPRrqg5DlCC",
        "b",
        "a",
    ]


@pytest.mark.parametrize("direction", ["", "-"])
def test_sort_is_stable_for_ties_in_both_directions(direction: str) -> None:
    rows = [{"k": 1, "i": i} for i in range(5)] + [{"k": 0, "i": i} for i in range(5, 8)]
    ordered = run(rows, {"sort": [f"{direction}k"]})
    expected = [5, 6, 7, 0, 1, 2, 3, 4] if not direction else [0, 1, 2, 3, 4, 5, 6, 7]
    assert [row["i"] for row in ordered] == expected


def test_sort_orders_kinds_null_bool_number_string_then_structures() -> None:
    values: list[Any] = ["b", {"a": 1}, 2.5, None, True, [1], "a", False, -1, 3]
    ordered = [row["v"] for row in run([{"v": v} for v in values], {"sort": ["v"]})]
    assert ordered == [None, False, True, -1, 2.5, 3, "a", "b", [1], {"a": 1}]
    reverse = [row["v"] for row in run([{"v": v} for v in values], {"sort": ["-v"]})]
    assert reverse == ordered[::-1]


def test_sort_key_compares_numbers_numerically_and_strings_by_code_point() -> None:
    assert sort_key(10) > sort_key(9.5)
    assert sort_key("Z") < sort_key("a") < sort_key("é")
    assert sort_key(1) == sort_key(1.0)
    assert sort_key(True) < sort_key(0)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 10])
def test_limit_returns_exactly_n_rows(n: int) -> None:
    assert ids(run(VISITORS, {"limit": n})) == ids(VISITORS)[:n]


def test_limit_after_filter_streams_without_reading_everything() -> None:
    endless = ({"visitorId": str(i), "n": i} for i in itertools.count())
    request_ = request({"filter": "n % 2 == 0"}, {"limit": 3})
    assert [row["n"] for row in apply_stages(endless, request_.stages, NOW)] == [0, 2, 4]


def test_keyset_page_like_tap() -> None:
    """§B-17 (visitors): sort by visitorId, filter after the last id, limit."""
    rows = [{"visitorId": v} for v in ["43", "41", "5", "42", "40"]]
    assert ids(run(rows, {"sort": ["visitorId"]}, {"filter": 'visitorId>"41"'}, {"limit": 2})) == ["42", "43"]


def test_select_projects_and_renames() -> None:
    rows = run(
        VISITORS[:2], {"select": {"id": "visitorId", "updated": "metadata.auto.lastupdated", "x": "nope"}}
    )
    assert rows == [{"id": "b", "updated": 20, "x": None}, {"id": "a", "updated": 30, "x": None}]


def test_eval_adds_fields_and_keeps_the_rest() -> None:
    rows = run(VISITORS[:1], {"eval": {"next": "day + 1", "day": "day * 10"}})
    assert rows == [{**VISITORS[0], "next": 3, "day": 20}]


def test_eval_evaluates_every_expression_against_the_input_row() -> None:
    assert run([{"a": 1, "b": 2}], {"eval": {"a": "b", "b": "a"}}) == [{"a": 2, "b": 1}]


def test_eval_dotted_target_creates_nested_objects_without_mutating_input() -> None:
    original = {"visitorId": "a", "metadata": {"auto": {"lastupdated": 1}, "agent": {"x": 1}}}
    snapshot = json.loads(json.dumps(original))
    rows = run([original], {"eval": {"metadata.auto.flag": "true", "extra.deep.value": "1 + 1"}})
    assert rows == [
        {
            "visitorId": "a",
            "metadata": {"auto": {"lastupdated": 1, "flag": True}, "agent": {"x": 1}},
            "extra": {"deep": {"value": 2}},
        }
    ]
    assert original == snapshot


def test_eval_through_a_non_object_is_a_400() -> None:
    with pytest.raises(PipelineError) as caught:
        run([{"a": 5}], {"eval": {"a.b": "1"}})
    assert caught.value.status == 400


def test_identified_drops_anonymous_visitors() -> None:
    assert ids(run(VISITORS, {"identified": "visitorId"})) == ["b", "a", "c"]


def test_identified_with_bang_keeps_only_anonymous_visitors() -> None:
    assert ids(run(VISITORS, {"identified": "!visitorId"})) == ["_PENDO_T_dPRrqg5DlCC"]


def test_identified_keeps_rows_without_the_field() -> None:
    assert run([{"other": 1}], {"identified": "visitorId"}) == [{"other": 1}]


def test_count_replaces_the_stream_with_one_row() -> None:
    assert run(VISITORS, {"count": None}) == [{"count": 4}]
    assert run([], {"count": None}) == [{"count": 0}]


def test_count_after_filter_and_limit_like_tap_visitors_count() -> None:
    stages = ({"sort": ["visitorId"]}, {"filter": 'visitorId>""'}, {"limit": 2}, {"count": None})
    assert run(VISITORS, *stages) == [{"count": 2}]


def test_no_stages_passes_rows_through() -> None:
    assert run(VISITORS) == VISITORS


def test_expression_failing_on_a_row_is_a_400() -> None:
    with pytest.raises(PipelineError) as caught:
        run([{"name": "s"}], {"filter": "name - 1 > 0"})
    assert (caught.value.status, caught.value.content_type) == (400, "text/plain")


def test_apply_stages_is_lazy_until_iterated() -> None:
    consumed: list[int] = []

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(3):
            consumed.append(i)
            yield {"i": i}

    stream = apply_stages(rows(), request({"limit": 1}).stages, NOW)
    assert consumed == []
    assert list(stream) == [{"i": 0}]
    assert consumed == [0]


# --- group and unwind (BEHAVIOR.md §F-2) -------------------------------------------------------------------------

CLICKS = [
    {"accountId": "acme", "day": 1, "numEvents": 3, "visitorId": "a"},
    {"accountId": "acme", "day": 1, "numEvents": 4, "visitorId": "b"},
    {"accountId": "globex", "day": 1, "numEvents": 5, "visitorId": "a"},
    {"accountId": "acme", "day": 2, "numEvents": None, "visitorId": "a"},
]


def test_group_sums_and_counts_per_group_in_first_arrival_order() -> None:
    stage = {
        "group": {
            "group": ["accountId", "day"],
            "fields": {
                "clicks": {"sum": "numEvents"},
                "rows": {"count": None},
                "visitors": {"count": "visitorId"},
            },
        }
    }
    assert run(CLICKS, stage) == [
        {"accountId": "acme", "day": 1, "clicks": 7, "rows": 2, "visitors": 2},
        {"accountId": "globex", "day": 1, "clicks": 5, "rows": 1, "visitors": 1},
        {"accountId": "acme", "day": 2, "clicks": 0, "rows": 1, "visitors": 1},
    ]


def test_group_fields_as_a_list_and_first_min_max_list_aggregators() -> None:
    stage = {
        "group": {
            "group": ["accountId"],
            "fields": [
                {"first": {"first": "visitorId"}},
                {"least": {"min": "numEvents"}},
                {"most": {"max": "numEvents"}},
                {"all": {"list": "numEvents"}},
            ],
        }
    }
    assert run(CLICKS, stage) == [
        {"accountId": "acme", "first": "a", "least": 3, "most": 4, "all": [3, 4, None]},
        {"accountId": "globex", "first": "a", "least": 5, "most": 5, "all": [5]},
    ]


def test_group_without_group_fields_is_one_row() -> None:
    assert run(CLICKS, {"group": {"group": [], "fields": {"n": {"count": None}}}}) == [{"n": 4}]


def test_group_sum_of_text_is_a_400() -> None:
    with pytest.raises(PipelineError) as error:
        run(CLICKS, {"group": {"group": [], "fields": {"n": {"sum": "accountId"}}}})
    assert error.value.status == 400


def test_unwind_makes_one_row_per_element_with_its_index() -> None:
    rows = [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": []}, {"id": 3}, {"id": 4, "tags": "c"}]
    assert run(rows, {"unwind": {"field": "tags", "index": "i"}}) == [
        {"id": 1, "tags": "a", "i": 0},
        {"id": 1, "tags": "b", "i": 1},
        {"id": 4, "tags": "c", "i": 0},
    ]
    assert run(rows, {"unwind": {"field": "tags", "keepEmpty": True}}) == [
        {"id": 1, "tags": "a"},
        {"id": 1, "tags": "b"},
        {"id": 2, "tags": None},
        {"id": 3, "tags": None},
        {"id": 4, "tags": "c"},
    ]
