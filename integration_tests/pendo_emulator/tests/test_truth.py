"""Ground truth (truth.py) against what the server actually answers: the records a connector must yield."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integration_tests.pendo_emulator.dataset import ANONYMOUS_PREFIX, DAY_MS
from integration_tests.pendo_emulator.truth import PRIMARY_KEYS, GroundTruth, parse_start_ms, record_key

from .conftest import NOW_MS, Served, day_range, hour_range, source

ALL_APPS = 'expandAppIds("*")'
APP_2 = 5629499534213120
ALL_TIME = {"start_date": "2020-01-01"}


@pytest.fixture(scope="module")
def truth(served: Served) -> GroundTruth:
    return GroundTruth(served.dataset)


def canonical(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def served_rollup(
    served: Served, name: str, period: str, start_ms: int, apps: Any, anonymous: bool
) -> list[dict[str, Any]]:
    """The server's rows for a connector-style query from `start_ms`, with `periodStart` added."""
    field = "day" if period == "dayRange" else "hour"
    ts = day_range(start_ms, last="now()") if period == "dayRange" else hour_range(start_ms, last="now()")
    params = {} if apps is None else {"appId": apps}
    pipeline = [source(name, params, ts), {"filter": f"{field} >= {start_ms}"}]
    if not anonymous:
        pipeline.append({"identified": "visitorId"})
    stream = {
        "events": "events",
        "featureEvents": "feature_events",
        "pageEvents": "page_events",
        "trackEvents": "track_events",
    }[name]
    return [key_fields_filled(stream, dict(r, periodStart=r[field])) for r in served.rows(pipeline)]


def key_fields_filled(stream: str, row: dict[str, Any]) -> dict[str, Any]:
    """The row as a record: its key's text fields (all but appId, periodStart, browserTime) "" when absent."""
    for name in PRIMARY_KEYS[stream]:
        if name not in ("appId", "periodStart", "browserTime"):
            row.setdefault(name, "")
    return row


def test_truth_events_day_all_apps_equals_server_all_time_day_range(
    served: Served, truth: GroundTruth
) -> None:
    expected = truth.records("events", dict(ALL_TIME, period="DAY", app_ids=[]))
    actual = served_rollup(
        served, "events", "dayRange", parse_start_ms("2020-01-01"), ALL_APPS, anonymous=False
    )
    assert expected and canonical(expected) == canonical(actual)
    assert all(r["periodStart"] == r["day"] for r in expected)


def test_truth_events_day_one_app_equals_server_app_query(served: Served, truth: GroundTruth) -> None:
    expected = truth.records("events", dict(ALL_TIME, app_ids=[str(APP_2)]))
    actual = served_rollup(served, "events", "dayRange", parse_start_ms("2020-01-01"), APP_2, anonymous=False)
    assert expected and canonical(expected) == canonical(actual)
    assert {r["appId"] for r in expected} == {APP_2}


def test_truth_events_day_with_anonymous_visitors_equals_server_without_identified(
    served: Served, truth: GroundTruth
) -> None:
    expected = truth.records("events", dict(ALL_TIME, include_anonymous_visitors=True))
    actual = served_rollup(
        served, "events", "dayRange", parse_start_ms("2020-01-01"), ALL_APPS, anonymous=True
    )
    assert canonical(expected) == canonical(actual)
    assert any(r["visitorId"].startswith(ANONYMOUS_PREFIX) for r in expected)
    without = truth.records("events", ALL_TIME)
    assert len(without) < len(expected)
    assert not any(r["visitorId"].startswith(ANONYMOUS_PREFIX) for r in without)


@pytest.mark.parametrize("stream", ["feature_events", "page_events", "track_events"])
def test_truth_other_rollups_hour_equal_server_hour_range(
    served: Served, truth: GroundTruth, stream: str
) -> None:
    name = {"feature_events": "featureEvents", "page_events": "pageEvents", "track_events": "trackEvents"}[
        stream
    ]
    expected = truth.records(stream, dict(ALL_TIME, period="HOUR"))
    actual = served_rollup(served, name, "hourRange", parse_start_ms("2020-01-01"), ALL_APPS, anonymous=False)
    assert expected and canonical(expected) == canonical(actual)


def test_truth_start_date_keeps_buckets_from_start(served: Served, truth: GroundTruth) -> None:
    start_date = "2026-11-15"
    start = parse_start_ms(start_date)
    expected = truth.records("events", {"start_date": start_date})
    assert expected and all(r["day"] >= start for r in expected)
    assert len(expected) < len(truth.records("events", ALL_TIME))
    assert canonical(expected) == canonical(
        served_rollup(served, "events", "dayRange", start, ALL_APPS, anonymous=False)
    )


def test_truth_guide_events_equal_server_raw_rows(served: Served, truth: GroundTruth) -> None:
    start = parse_start_ms("2026-11-14")
    expected = truth.records("guide_events", {"start_date": "2026-11-14"})
    rows = served.rows(
        [
            source("guideEvents", {"appId": ALL_APPS}, day_range(start, last="now()")),
            {"filter": f"browserTime >= {start}"},
            {"identified": "visitorId"},
        ]
    )
    assert expected and canonical(expected) == canonical([key_fields_filled("guide_events", r) for r in rows])


@pytest.mark.parametrize(
    "stream", ["events", "feature_events", "page_events", "track_events", "guide_events", "poll_events"]
)
def test_truth_activity_key_fields_are_never_null(truth: GroundTruth, stream: str) -> None:
    records = truth.records(stream, dict(ALL_TIME, include_anonymous_visitors=True))
    assert records and all(r.get(f) is not None for r in records for f in PRIMARY_KEYS[stream])


def test_truth_events_of_an_app_without_addresses_have_an_empty_remote_ip(truth: GroundTruth) -> None:
    records = truth.records("events", ALL_TIME)
    assert any(r["remoteIp"] == "" for r in records) and any(r["remoteIp"] for r in records)


def test_truth_visitors_have_lastupdated_and_promoted_metadata_columns(
    truth: GroundTruth, served: Served
) -> None:
    records = truth.records("visitors", ALL_TIME)
    assert len(records) == len([r for r in served.rows([source("visitors", {"identified": True})])])
    with_plan = [r for r in records if "plan" in r["metadata"].get("custom", {})]
    assert with_plan
    for record in records:
        assert record["lastupdated"] == record["metadata"]["auto"]["lastupdated"]
        assert not record["visitorId"].startswith(ANONYMOUS_PREFIX)
        assert not any(k.startswith("metadata_auto__") for k in record), "per-app groups are not promoted"
    for record in with_plan:
        assert record["metadata_custom_plan"] == record["metadata"]["custom"]["plan"]
        assert record["metadata_auto_lastupdated"] == record["lastupdated"]
        assert "metadata_pendo_donotprocess" in record
    anonymous = truth.records("visitors", dict(ALL_TIME, include_anonymous_visitors=True))
    assert len(anonymous) == len(served.dataset.visitor_rows)


def test_truth_accounts_have_lastupdated_and_promoted_metadata(truth: GroundTruth, served: Served) -> None:
    records = truth.records("accounts", ALL_TIME)
    server_rows = served.rows([source("accounts")])
    assert [r["accountId"] for r in records] == [r["accountId"] for r in server_rows]
    for record in records:
        assert record["lastupdated"] == record["metadata"]["auto"]["lastupdated"]
        assert record["metadata_custom_tier"] == record["metadata"]["custom"]["tier"]


def test_truth_report_results_carry_report_id(truth: GroundTruth, served: Served) -> None:
    records = truth.records("report_results", ALL_TIME)
    reports = served.get("/api/v1/report").json()
    exportable = {r["id"] for r in reports if r["type"] == "Saved Reports"}
    assert records and {r["reportId"] for r in records} == exportable
    for report_id in exportable:
        rows = served.get(f"/api/v1/report/{report_id}/results.json").json()
        assert [dict(r, reportId=report_id) for r in rows] == [
            r for r in records if r["reportId"] == report_id
        ]


@pytest.mark.parametrize(
    ("stream", "kind"), [("metadata_visitors", "visitor"), ("metadata_accounts", "account")]
)
def test_truth_metadata_has_one_record_per_group_and_field(
    truth: GroundTruth, served: Served, stream: str, kind: str
) -> None:
    records = truth.records(stream, ALL_TIME)
    schema = served.get(f"/api/v1/metadata/schema/{kind}").json()
    pairs = [(group, name) for group, fields in schema.items() for name in fields]
    assert sorted((r["group"], r["field"]) for r in records) == sorted(pairs)
    for record in records:
        descriptor = {k: v for k, v in record.items() if k not in ("group", "field")}
        assert descriptor == schema[record["group"]][record["field"]]


def test_truth_catalogues_equal_rest_lists(truth: GroundTruth, served: Served) -> None:
    for stream, rest in (
        ("pages", "page"),
        ("features", "feature"),
        ("guides", "guide"),
        ("track_types", "tracktype"),
    ):
        everything = served.get(f"/api/v1/{rest}", params={"expand": "*"}).json()
        assert truth.records(stream, ALL_TIME) == everything
        assert truth.records(stream, dict(ALL_TIME, app_ids=[str(APP_2)])) == [
            o for o in everything if o["appId"] == APP_2
        ]


def test_truth_child_streams_hold_every_child_the_rest_lists_show(truth: GroundTruth, served: Served) -> None:
    """§B-23: one record per step, poll, page rule and feature rule the listings hold, each with its parent's id,
    app and lastUpdatedAt; the cases the connector must meet are in the data: a guide without steps, one without
    a `polls` key, a free-text poll without choices, a pick list's choices, a rule without `designerHint`, a
    feature listing no element rule."""
    guides = served.get("/api/v1/guide", params={"expand": "*"}).json()
    pages = served.get("/api/v1/page", params={"expand": "*"}).json()
    features = served.get("/api/v1/feature", params={"expand": "*"}).json()
    steps = truth.records("guide_steps", ALL_TIME)
    assert sorted((s["guideId"], s["id"]) for s in steps) == sorted(
        (g["id"], s["id"]) for g in guides for s in g["steps"]
    )
    polls = truth.records("polls", ALL_TIME)
    assert sorted((p["guideId"], p["id"]) for p in polls) == sorted(
        (g["id"], p["id"]) for g in guides for p in g.get("polls", [])
    )
    by_id = {g["id"]: g for g in guides}
    for record in steps + polls:
        guide = by_id[record["guideId"]]
        assert (record["appId"], record["guideLastUpdatedAt"]) == (guide["appId"], guide["lastUpdatedAt"])
    assert any(not g["steps"] for g in guides) and any("polls" not in g for g in guides)
    assert any(p["type"] == "FreeForm" and p["choices"] == [] for p in polls)
    assert any(p["guideStepId"] is None for p in polls), "a poll of a guide without steps"
    choices = truth.records("poll_choices", ALL_TIME)
    picks = {p["id"]: p for g in guides for p in g.get("polls", []) if "idResponses" in p}
    assert picks and {(c["pollId"], c["choiceId"], c["label"]) for c in choices if c["pollId"] in picks} == {
        (pid, k, v) for pid, p in picks.items() for k, v in p["idResponses"].items()
    }
    rules = truth.records("page_rules", ALL_TIME)
    assert sorted((r["pageId"], r["rule"]) for r in rules) == sorted(
        (p["id"], r["rule"]) for p in pages for r in p["rules"]
    )
    assert any("designerHint" not in r for r in rules)
    element_rules = truth.records("feature_rules", ALL_TIME)
    assert sorted((r["featureId"], r["elementPathRule"]) for r in element_rules) == sorted(
        (f["id"], r) for f in features for r in f.get("elementPathRules", [])
    )
    assert any("elementPathRules" not in f for f in features)
    one_app = dict(ALL_TIME, app_ids=[str(APP_2)])
    for stream in ("guide_steps", "polls", "poll_choices", "page_rules", "feature_rules"):
        assert {r["appId"] for r in truth.records(stream, one_app)} == {APP_2}, stream


def test_truth_reports_and_segments_equal_rest_lists(truth: GroundTruth, served: Served) -> None:
    assert truth.records("reports", ALL_TIME) == served.get("/api/v1/report").json()
    assert truth.records("segments", ALL_TIME) == served.get("/api/v1/segment").json()


def test_truth_visitor_history_within_179_days_and_without_donotprocess(
    truth: GroundTruth, served: Served
) -> None:
    records = truth.records("visitor_history", ALL_TIME)
    assert records
    first = truth.history_start(parse_start_ms("2020-01-01"))
    assert first == NOW_MS - NOW_MS % DAY_MS - 179 * DAY_MS
    flagged = {r["visitorId"] for r in served.dataset.visitor_rows if r["metadata"]["pendo"]["donotprocess"]}
    for record in records:
        assert record["ts"] >= first and record["visitorId"] not in flagged
        assert not record["visitorId"].startswith(ANONYMOUS_PREFIX)
    vid = records[0]["visitorId"]
    served_items = served.get(
        f"/api/v1/visitor/{vid}/history", params={"starttime": str(records[0]["ts"])}
    ).json()
    mine = [
        {k: v for k, v in r.items() if k != "visitorId"}
        for r in records
        if r["visitorId"] == vid and records[0]["ts"] <= r["ts"] < records[0]["ts"] + DAY_MS
    ]
    assert served_items == mine


@pytest.mark.parametrize("stream", GroundTruth.streams())
def test_truth_records_are_unique_on_their_primary_key(truth: GroundTruth, stream: str) -> None:
    records = truth.records(stream, dict(ALL_TIME, include_anonymous_visitors=True))
    if stream == "report_results":
        keys = [(r["reportId"], r.get("visitorId"), r.get("accountId")) for r in records]
    else:
        assert stream in PRIMARY_KEYS
        keys = [record_key(stream, r) for r in records]
    assert records and len(set(keys)) == len(keys), stream


def test_truth_unknown_stream_raises(truth: GroundTruth) -> None:
    with pytest.raises(KeyError):
        truth.records("nope", ALL_TIME)
