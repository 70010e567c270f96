"""Each reading of BEHAVIOR.md §R-1 … §R-20 (readings.py) bites: the same request is answered differently with the
switch on than off, so a connector test can never pass because a switch did nothing. Plus `--reading` on
the command line and `EmulatorProcess(readings=...)`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from integration_tests.pendo_emulator import EmulatorProcess, readings
from integration_tests.pendo_emulator.dataset import SCALES, Dataset
from integration_tests.pendo_emulator.server import EmulatorSettings
from integration_tests.pendo_emulator.truth import GroundTruth

from .conftest import (
    DAY_MS,
    DEFAULT_APP,
    HOUR_MS,
    KEY_EU,
    KEY_US,
    NOW_MS,
    SEED,
    TZ,
    Served,
    _start,
    aggregation_body,
    day_range,
    hour_range,
    source,
)
from .test_cli import MODULE, REPO, serve

ALL_APPS = 'expandAppIds("*")'
REFERENCE = Path(__file__).parent / "reference" / "tap-pendo-requests.json"
World = Callable[..., Served]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """`world(*names)`: an in-process tiny server (the `served` subscription) with these readings on; one
    per set of names, shared by the module. `world()` is the default world."""
    servers: dict[frozenset[str], Served] = {}
    with ExitStack() as stack:

        def get(*names: str) -> Served:
            key = frozenset(names)
            if key not in servers:
                settings = EmulatorSettings(scale="tiny", seed=SEED, now_ms=NOW_MS, tz=TZ, readings=names)
                servers[key] = stack.enter_context(contextmanager(_start)(settings))
            return servers[key]

        yield get


def both(world: World, name: str, ask: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """The answer to the same request, `ask(served, *args)`, without and with reading `name`."""
    return ask(world(), *args), ask(world(name), *args)


# --------------------------------------------------------------------------------------------- the names


def test_pessimistic_is_every_reading_of_section_11_and_unknown_names_fail() -> None:
    assert readings.expand(["pessimistic"]) == frozenset(readings.READINGS)
    assert set(readings.READINGS) == {
        "per_period_pipeline",
        "visitors_by_app",
        "missing_lastupdated",
        "receive_time_buckets",
        "null_results",
        "bad_request_400",
        "history_unavailable",
        "no_tracktype_rest",
        "report_errors",
        "strict_value_forms",
        "strict_filters",
        "spaced_json",
        "rate_limit_403",
        "read_only_key",
        "exclusive_last",
        "limit_before_sort",
        "sort_first_key_only",
        "poll_choices_in_attributes",
        "lowercase_poll_types",
        "rows_without_browsertime",
    }
    assert readings.expand(None) == frozenset()
    with pytest.raises(ValueError, match="unknown reading 'optimistic'"):
        readings.expand(["optimistic"])
    with pytest.raises(ValueError):
        EmulatorProcess(readings=["optimistic"])


# ---------------------------------------------------------------------------------------------


def test_per_period_pipeline_runs_sort_and_limit_in_every_period(world: World) -> None:
    """R-1: limit 5 over three days is 5 rows in all; per period it is 5 rows of each day, days in order."""
    ds = world().dataset
    first = ds.day_start(ds.start_ms + 2 * DAY_MS)
    pipeline = [
        source("pageEvents", {"appId": ALL_APPS}, day_range(first, count=3)),
        {"sort": ["day"]},
        {"limit": 5},
    ]
    default, per_period = both(world, "per_period_pipeline", Served.rows, pipeline)
    assert len(default) == 5 and {r["day"] for r in default} == {first}
    days = [r["day"] for r in per_period]
    assert len(per_period) == 15 and days == sorted(days) and len(set(days)) == 3
    assert all(days.count(d) == 5 for d in set(days))
    # The generic path too (a select stage), and count: one row per period.
    generic = [*pipeline[:1], {"select": {"d": "day"}}, {"limit": 2}]
    assert len(world("per_period_pipeline").rows(generic)) == 6 and len(world().rows(generic)) == 2
    counted = [pipeline[0], {"count": None}]
    assert len(world().rows(counted)) == 1 and len(world("per_period_pipeline").rows(counted)) == 3


# ---------------------------------------------------------------------------------------------


def test_visitors_by_app_without_appid_gives_only_default_app_visitors(world: World) -> None:
    pipeline = [source("visitors", {"identified": True}), {"sort": ["visitorId"]}]
    default, scoped = both(world, "visitors_by_app", lambda s: [r["visitorId"] for r in s.rows(pipeline)])
    members = world().dataset.visitor_apps
    assert scoped == [v for v in default if DEFAULT_APP in members[v]]
    assert len(scoped) < len(default)
    everyone = [source("visitors", {"identified": True, "appId": ALL_APPS}), {"sort": ["visitorId"]}]
    assert [r["visitorId"] for r in world("visitors_by_app").rows(everyone)] == default


# ---------------------------------------------------------------------------------------------


def test_missing_lastupdated_drops_rows_from_a_lastupdated_filter_and_the_truth_follows(world: World) -> None:
    for name, source_name in (("visitorId", "visitors"), ("accountId", "accounts")):
        pipeline = [source(source_name, {"appId": ALL_APPS}), {"filter": "metadata.auto.lastupdated >= 0"}]
        default, missing = both(world, "missing_lastupdated", Served.rows, pipeline)
        everything = world("missing_lastupdated").rows(pipeline[:1])
        assert len(default) == len(everything) > len(missing) > 0, source_name
        lacking = {r[name] for r in everything} - {r[name] for r in missing}
        assert all("lastupdated" not in r["metadata"]["auto"] for r in everything if r[name] in lacking)
    truth = GroundTruth(Dataset(SCALES["tiny"], SEED, NOW_MS, TZ, readings=("missing_lastupdated",)))
    records = truth.records("visitors", {"start_date": "2020-01-01"})
    assert len(records) == len(GroundTruth(world().dataset).records("visitors", {"start_date": "2020-01-01"}))
    assert any(r["lastupdated"] is None and "metadata_auto_lastupdated" not in r for r in records)


# ---------------------------------------------------------------------------------------------


def test_receive_time_buckets_select_guide_events_by_receive_time(world: World) -> None:
    ds = world().dataset
    events = ds.raw_events("guideEvents") + ds.raw_events("pollEvents")
    skew = [e["receivedTime"] - e["browserTime"] for e in events]
    assert min(skew) < -DAY_MS and max(skew) > DAY_MS, "hours off either way, some by more than a day"
    assert world("receive_time_buckets").dataset.raw_events("guideEvents") == ds.raw_events("guideEvents")
    first = ds.start_ms + 3 * DAY_MS
    window = hour_range(first, last=str(first + 23 * HOUR_MS))  # 24 hours
    pipeline = [source("guideEvents", {"appId": ALL_APPS}, window), {"sort": ["browserTime"]}]
    default, received = both(world, "receive_time_buckets", Served.rows, pipeline)
    assert all(first <= r["browserTime"] < first + DAY_MS for r in default)
    assert all(first <= r["receivedTime"] < first + DAY_MS for r in received)
    assert any(not first <= r["browserTime"] < first + DAY_MS for r in received)
    assert default != received


# ---------------------------------------------------------------------------------------------


def test_null_results_makes_an_empty_result_null(world: World) -> None:
    future = NOW_MS + 5 * DAY_MS
    body = aggregation_body([source("pageEvents", {"appId": ALL_APPS}, day_range(future, count=1))])
    default, null = both(world, "null_results", lambda s: s.post("/api/v1/aggregation", body).text)
    assert json.loads(default)["results"] == [] and default.endswith('"results":[]}')
    assert json.loads(null)["results"] is None and null.endswith('"results":null}')
    some = world("null_results").rows([source("pages", {"appId": ALL_APPS})])
    assert some, "a non-empty result stays a list"


# ---------------------------------------------------------------------------------------------


def test_bad_request_400_rejects_with_400_and_noagg_key_lacks_aggregation(world: World) -> None:
    no_pipeline = {"response": {"mimeType": "application/json"}, "request": {"requestId": "x"}}
    default, strict = both(world, "bad_request_400", lambda s: s.post("/api/v1/aggregation", no_pipeline))
    assert default.status_code == 422 and default.json() == {
        "overall": {},
        "fields": {"pipeline": "Required"},
    }
    assert strict.status_code == 400 and strict.headers["Content-Type"].startswith("text/plain")
    pipeline = [source("pages", {"appId": ALL_APPS})]
    key = readings.NO_AGGREGATION_PREFIX + KEY_US
    default, noagg = both(world, "bad_request_400", lambda s: s.aggregate_raw(pipeline, key=key))
    assert default.status_code == 403, "an unknown key while the reading is off"
    assert noagg.status_code == 400 and noagg.text == "Bad Request"
    assert world("bad_request_400").get("/api/v1/page", key=key).status_code == 200
    assert world("bad_request_400").aggregate_raw(pipeline).status_code == 200


# ---------------------------------------------------------------------------------------------


def test_history_unavailable_answers_422_and_logs_the_content_type(world: World) -> None:
    ds = world().dataset
    visitor = next(r["visitorId"] for r in ds.visitor_rows if ds.visitor_history.get(r["visitorId"]))
    path = f"/api/v1/visitor/{visitor}/history"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    params = {"starttime": str(NOW_MS - 3 * DAY_MS)}
    default, gone = both(world, "history_unavailable", lambda s: s.get(path, params=params, headers=form))
    assert default.status_code == 200 and gone.status_code == 422
    entry = world("history_unavailable").stats()["requests"][-1]
    assert entry["route"] == "visitor_history" and entry["form_urlencoded"] is True
    assert entry["content_type"] == "application/x-www-form-urlencoded"
    world("history_unavailable").get(path, params=params)
    assert world("history_unavailable").stats()["requests"][-1]["form_urlencoded"] is False
    assert world("history_unavailable_400").get(path, params=params).status_code == 400


# ---------------------------------------------------------------------------------------------


def test_no_tracktype_rest_404s_while_the_tracktypes_source_works(world: World) -> None:
    default, gone = both(
        world, "no_tracktype_rest", lambda s: s.get("/api/v1/tracktype", params={"expand": "*"})
    )
    assert default.status_code == 200 and gone.status_code == 404
    pipeline = [source("trackTypes", {"appId": ALL_APPS}), {"sort": ["lastUpdatedAt"]}, {"limit": 100000}]
    rows = world("no_tracktype_rest").rows(pipeline)
    assert sorted(rows, key=lambda r: r["id"]) == sorted(default.json(), key=lambda r: r["id"])


# ---------------------------------------------------------------------------------------------


def test_report_errors_spread_unexportable_reports_over_400_402_422_and_object_bodies(world: World) -> None:
    reports = world().get("/api/v1/report").json()
    unexportable = [r for r in reports if r["type"] != "Saved Reports"]
    answers = {}
    for report in unexportable:
        path = f"/api/v1/report/{report['id']}/results.json"
        default, errors = both(world, "report_errors", Served.get, path)
        assert default.status_code == 404, report["type"]
        answers[report["type"]] = errors.status_code
        if errors.status_code == 200:
            assert isinstance(errors.json(), dict), "a 200 whose body is an object, not rows"
    assert sorted(answers.values()) == [200, 200, 400, 402, 422]
    saved = next(r for r in reports if r["type"] == "Saved Reports")
    path = f"/api/v1/report/{saved['id']}/results.json"
    assert world("report_errors").get(path).json() == world().get(path).json()


# ---------------------------------------------------------------------------------------------


def test_strict_value_forms_reject_integer_appid_and_last_but_take_tap_bodies(world: World) -> None:
    ds = world().dataset
    integer_app = [source("pages", {"appId": DEFAULT_APP})]
    default, strict = both(world, "strict_value_forms", lambda s: s.aggregate_raw(integer_app))
    assert default.status_code == 200 and strict.status_code == 422
    assert strict.json() == {"overall": {}, "fields": {"appId": "Invalid appId"}}
    integer_last = [source("events", {"appId": ALL_APPS}, day_range(str(ds.start_ms), last=NOW_MS))]
    default, strict = both(world, "strict_value_forms", lambda s: s.aggregate_raw(integer_last))
    assert default.status_code == 200 and strict.status_code == 422
    as_400 = world("strict_value_forms", "bad_request_400").aggregate_raw(integer_app)
    assert as_400.status_code == 400 and as_400.headers["Content-Type"].startswith("text/plain")
    accepted = [
        [source("pages", {"appId": str(DEFAULT_APP)})],
        [source("pages", {"appId": [str(DEFAULT_APP), "5629499534213120"]})],
        [source("events", {"appId": ALL_APPS}, day_range(str(ds.start_ms), last=str(NOW_MS)))],
        [source("events", {"appId": ALL_APPS}, day_range("now()", count=-1))],
    ]
    for pipeline in accepted:
        assert world("strict_value_forms").aggregate_raw(pipeline).status_code == 200, pipeline
    for name, request in json.loads(REFERENCE.read_text())["requests"].items():
        if request["method"] == "POST":  # the eu_ captures went to the EU host
            key = KEY_EU if request["path"].startswith("/eu/") else KEY_US
            strict = world("strict_value_forms", "strict_filters").post(
                request["path"], request["body"], key=key
            )
            assert strict.status_code == 200, (name, strict.text)


# ---------------------------------------------------------------------------------------------


def test_strict_filters_reject_or_parentheses_not_and_functions(world: World) -> None:
    base = [source("visitors", {"identified": True}), {"sort": ["visitorId"]}]
    refused = [
        'visitorId > "a" || visitorId == "b"',
        '(visitorId > "a")',
        '!(visitorId == "a")',
        "!isNull(visitorId)",
        'startsWith(visitorId, "user")',
        'metadata.auto.lastupdated >= 1 && visitorId != "x"',  # no public body sends `!=` (§B-12)
        "metadata.auto.nid > -1",  # nor a negative literal
        'contains(visitorId, "user")',
    ]
    for text in refused:
        default, strict = both(world, "strict_filters", Served.aggregate_raw, [*base, {"filter": text}])
        assert default.status_code == 200 and strict.status_code == 422, text
    accepted = [
        'visitorId>""',
        'metadata.auto.lastupdated >= 1 && visitorId == "x"',
        "1 <= metadata.auto.nid",
    ]
    for text in accepted:
        assert world("strict_filters").rows([*base, {"filter": text}]) == world().rows(
            [*base, {"filter": text}]
        )


# ---------------------------------------------------------------------------------------------


def test_spaced_json_uses_spaced_separators_and_shuffled_keys(world: World) -> None:
    pipeline = [source("pageEvents", {"appId": ALL_APPS}, day_range(world().dataset.start_ms, count=2))]
    body = aggregation_body(pipeline)
    default, spaced = both(world, "spaced_json", lambda s: s.post("/api/v1/aggregation", body).text)
    assert json.loads(default) == json.loads(spaced) and default != spaced
    assert '", "' not in default and '": ' not in default
    assert '": ' in spaced and ', "' in spaced
    rows = json.loads(spaced)["results"]  # json.loads keeps the keys in the order sent
    assert len({tuple(r) for r in rows}) > 1, "each row's keys in its own order"
    assert {tuple(r) for r in rows} != {tuple(r) for r in json.loads(default)["results"]}
    assert world("spaced_json").post("/api/v1/aggregation", body).text == spaced, "seeded: repeatable"
    default, spaced = both(world, "spaced_json", lambda s: s.get("/api/v1/page").text)
    assert json.loads(default) == json.loads(spaced) and '": ' in spaced and '": ' not in default


# ---------------------------------------------------------------------------------------------


def test_rate_limit_403_throttles_some_requests_once_each(world: World) -> None:
    def statuses(served: Served) -> list[tuple[int, str]]:
        served.control("reset", {})
        out = []
        for n in range(13):
            response = served.get("/api/v1/page", params={"n": str(n)})
            out.append((response.status_code, response.text))
        return out

    default, limited = both(world, "rate_limit_403", statuses)
    assert {status for status, _ in default} == {200}
    throttled = [n for n, (status, _) in enumerate(limited) if status == 403]
    assert len(throttled) == 2 and throttled[1] - throttled[0] == readings.RATE_LIMIT_EVERY
    assert json.loads(limited[throttled[0]][1])["error"] == "rateLimitExceeded"
    served = world("rate_limit_403")
    for n in throttled:  # the retry of a throttled request succeeds, even when it lands on a throttle turn
        assert served.get("/api/v1/page", params={"n": str(n)}).status_code == 200
    served.control("reset", {})
    answers = [served.get("/api/v1/page", params={"n": str(n)}).status_code for n in range(200)]
    assert answers.count(403) == readings.RATE_LIMIT_MAX, "bounded, so a sync can complete"


# ---------------------------------------------------------------------------------------------


def test_read_only_key_reads_everything_but_cannot_aggregate(world: World) -> None:
    key = readings.READ_ONLY_PREFIX + KEY_US
    default, read_only = both(world, "read_only_key", lambda s: s.get("/api/v1/page", key=key).status_code)
    assert default == 403 and read_only == 200
    served = world("read_only_key")
    for path in ("/api/v1/report", "/api/v1/metadata/schema/account", "/api/v1/guide"):
        assert served.get(path, key=key).status_code == 200, path
    refused = served.aggregate_raw([source("pages", {"appId": ALL_APPS})], key=key)
    assert refused.status_code == 403 and refused.text == "Forbidden"
    assert served.aggregate_raw([source("pages", {"appId": ALL_APPS})]).status_code == 200


# ---------------------------------------------------------------------------------------------


def _polls(served: Served) -> dict[str, dict[str, Any]]:
    guides = served.get("/api/v1/guide", params={"expand": "*"}).json()
    return {p["id"]: p for g in guides for p in g.get("polls") or []}


def test_poll_choices_in_attributes_moves_every_choice_list_into_attributes(world: World) -> None:
    """R-18: the same polls; their choices in `attributes.choices` instead of `idResponses`/`numericResponses`,
    and the ground truth's choices (`Dataset.poll_choices`) the same records."""
    default, moved = both(world, "poll_choices_in_attributes", _polls)
    assert default.keys() == moved.keys()
    listed = {
        pid: ([{"id": k, "label": v} for k, v in p["idResponses"].items()] if "idResponses" in p else None)
        or p.get("numericResponses")
        for pid, p in default.items()
        if "idResponses" in p or "numericResponses" in p
    }
    assert listed and any(isinstance(c[0], dict) for c in listed.values())
    assert any(isinstance(c[0], int) for c in listed.values())
    for pid, poll in moved.items():
        assert "idResponses" not in poll and "numericResponses" not in poll
        assert poll["attributes"].get("choices") == listed.get(pid)
    config = {"start_date": "2026-11-14"}
    truths = [
        GroundTruth(Dataset(SCALES["tiny"], SEED, NOW_MS, TZ, r))
        for r in ((), ("poll_choices_in_attributes",))
    ]
    assert truths[0].records("poll_choices", config) == truths[1].records("poll_choices", config)


def test_lowercase_poll_types_lower_cases_the_guide_listings_poll_types(world: World) -> None:
    """R-19: `NPSRating` is listed `npsrating`; pollEvents rows keep their `pollType`."""
    default, lower = both(world, "lowercase_poll_types", _polls)
    types = {pid: p["attributes"]["type"] for pid, p in default.items()}
    assert {"NPSRating", "FreeForm", "PickList", "NumberScale"} <= set(types.values())
    assert {pid: p["attributes"]["type"] for pid, p in lower.items()} == {
        k: v.lower() for k, v in types.items()
    }


def test_rows_without_browsertime_answers_some_raw_events_without_it_selected_all_the_same(
    world: World,
) -> None:
    """R-20: the same guide events of a day, some without `browserTime` (sorted first, never matched by a filter
    on it); the count of the day is the same; the ground truth's records lack it too."""
    first = world().dataset.start_ms + 3 * DAY_MS
    window = hour_range(first, last=str(first + 23 * HOUR_MS))
    selection = [source("guideEvents", {"appId": ALL_APPS}, window)]
    default, stripped = both(
        world, "rows_without_browsertime", Served.rows, [*selection, {"sort": ["browserTime"]}]
    )
    missing = [r for r in stripped if "browserTime" not in r]
    assert missing and len(missing) < len(stripped) / 4
    assert stripped[: len(missing)] == missing  # a missing browserTime sorts first
    assert sorted(map(canonical_row, stripped)) == sorted(map(canonical_row, default))  # the same events
    counted = both(world, "rows_without_browsertime", Served.rows, [*selection, {"count": None}])
    assert counted[0] == counted[1]
    after = [*selection, {"filter": f"browserTime > {first - 1}"}]
    assert len(world("rows_without_browsertime").rows(after)) == len(stripped) - len(missing)
    truth = GroundTruth(world("rows_without_browsertime").dataset)
    config = {"start_date": "2000-01-01", "period": "DAY", "app_ids": []}
    assert any("browserTime" not in r for r in truth.records("guide_events", config))


def canonical_row(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "browserTime"}, sort_keys=True)


# --------------------------------------------------------------------------------------------- CLI and process


def test_cli_reading_flags_reach_the_server_and_unknown_names_fail() -> None:
    with serve("--now", str(NOW_MS), "--reading", "null_results", "--reading", "read_only_key") as (_, info):
        got = requests.get(f"{info['base_url']}/_emulator/info", timeout=30).json()
        assert got["readings"] == ["null_results", "read_only_key"]
        headers = {"x-pendo-integration-key": "readonly-" + KEY_US, "Connection": "close"}
        assert requests.get(f"{info['base_url']}/api/v1/page", headers=headers, timeout=30).status_code == 200
    with serve("--reading", "pessimistic") as (_, info):
        got = requests.get(f"{info['base_url']}/_emulator/info", timeout=30).json()
        assert got["readings"] == sorted(readings.READINGS)
    bad = subprocess.run(
        [*MODULE, "serve", "--reading", "optimistic"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--reading" in bad.stderr
    help_text = subprocess.run(
        [*MODULE, "serve", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert all(name in help_text.stdout for name in readings.READINGS)


def test_cli_truth_takes_readings() -> None:
    args = ["truth", "--config", '{"start_date":"2020-01-01"}', "--stream", "visitors", "--now", str(NOW_MS)]
    result = subprocess.run(
        [*MODULE, *args, "--tz", TZ, "--reading", "missing_lastupdated"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    records = [json.loads(line)["data"] for line in result.stdout.splitlines()]
    truth = GroundTruth(Dataset(SCALES["tiny"], SEED, NOW_MS, TZ, readings=("missing_lastupdated",)))
    assert records == truth.records("visitors", {"start_date": "2020-01-01"})
    assert any(r["lastupdated"] is None for r in records)


def test_emulator_process_readings_parameter() -> None:
    with EmulatorProcess(now_ms=NOW_MS, tz=TZ, readings=["pessimistic"]) as process:
        info = requests.get(process.base_url + "/_emulator/info", timeout=30).json()
        assert info["readings"] == sorted(readings.READINGS)
        dataset = process.dataset()
        assert dataset.readings == frozenset(readings.READINGS) and dataset.now_ms == NOW_MS
    assert "--reading" not in EmulatorProcess().args


# --------------------------------------------------------------------------------------------- R-15 … R-17


def test_exclusive_last_ends_the_time_series_before_last_on_the_rows_own_times(world: World) -> None:
    """R-15: `first` == `last` == a bucket's start selects nothing; up to the bucket's last millisecond selects
    it whole under both readings (what the connector sends)."""
    ds = world().dataset
    bucket = ds.day_start(ds.start_ms + 2 * DAY_MS)
    one_bucket = [source("pageEvents", {"appId": ALL_APPS}, day_range(bucket, last=str(bucket)))]
    default, exclusive = both(world, "exclusive_last", Served.rows, one_bucket)
    assert default and {r["day"] for r in default} == {bucket} and exclusive == []
    whole = [source("pageEvents", {"appId": ALL_APPS}, day_range(bucket, last=str(bucket + DAY_MS - 1)))]
    assert both(world, "exclusive_last", Served.rows, whole)[1] == default


def _keyset_pages(served: Served, pipeline: list[dict[str, Any]], t: str, limit: int) -> list[dict[str, Any]]:
    """Every row of one bucket read by the (t, visitorId) keyset the connector sends, pages of `limit`."""
    out: list[dict[str, Any]] = []
    keyset: str | None = None
    while True:
        condition = [{"filter": f"visitorId >= {json.dumps(keyset)}"}] if keyset is not None else []
        page = served.rows([*pipeline, *condition, {"sort": [t, "visitorId"]}, {"limit": limit}])
        new = [r for r in page if r not in out]
        out += new
        if len(page) < limit or not new:
            return out
        keyset = page[-1]["visitorId"]


@pytest.mark.parametrize("name", ["limit_before_sort", "sort_first_key_only"])
def test_storage_order_readings_make_a_keyset_skip_rows_that_one_big_request_reads(
    world: World, name: str
) -> None:
    """R-16, R-17: paging one bucket on (t, visitorId) loses rows with the switch on, none without; one request
    whose `limit` holds every row (the connector's read of one period again, after Pendo's count) reads them all
    under every reading."""
    ds = world().dataset
    bucket = ds.day_start(ds.start_ms + 2 * DAY_MS)
    pipeline = [source("pageEvents", {"appId": ALL_APPS}, day_range(bucket, last=str(bucket + DAY_MS - 1)))]
    everything = world().rows([*pipeline, {"sort": ["day", "visitorId"]}])
    visitors = [r["visitorId"] for r in everything]
    limit = max(map(visitors.count, set(visitors))) + 2  # a page holds any one visitor's rows
    assert len(everything) > 3 * limit
    assert len(_keyset_pages(world(), pipeline, "day", limit)) == len(everything)
    assert len(_keyset_pages(world(name), pipeline, "day", limit)) < len(everything)
    whole = [*pipeline, {"sort": ["day", "visitorId"]}, {"limit": len(everything) + 1}]
    assert sorted(map(json.dumps, world(name).rows(whole))) == sorted(map(json.dumps, everything))
    counted = [*pipeline, {"count": None}]
    assert world(name).rows(counted) == [{"count": len(everything)}]
