"""The seeded subscription itself (dataset.py): determinism, sizes, keys, tricky ids, schema conformance."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest

from integration_tests.pendo_emulator.dataset import (
    ANONYMOUS_PREFIX,
    APP_IDS,
    DAY_MS,
    DEFAULT_APP_ID,
    HOUR_MS,
    OBJECT_FIELD,
    RAW_EVENT_SOURCES,
    ROLLUP_SOURCES,
    SCALES,
    Dataset,
    metadata_group_for_app,
    object_id,
)

from .conftest import NOW_MS, TZ

ID_RE = re.compile(r"^[A-Za-z0-9_-]{27}$")
ANON_RE = re.compile(r"^_PENDO_T_[A-Za-z0-9_-]{11}$")


@cache
def dataset(scale: str = "tiny", seed: int = 7, now_ms: int = NOW_MS, tz: str = TZ) -> Dataset:
    return Dataset(SCALES[scale], seed, now_ms, tz)


def fresh(scale: str = "tiny", seed: int = 7) -> Dataset:
    return Dataset(SCALES[scale], seed, NOW_MS, TZ)


def snapshot(ds: Dataset) -> dict[str, Any]:
    return {
        "visitors": ds.visitor_rows,
        "accounts": ds.account_rows,
        "pages": ds.pages,
        "features": ds.features,
        "guides": ds.guides,
        "track_types": ds.track_types,
        "reports": ds.reports,
        "segments": ds.segments,
        **{f"hour:{s}": ds.hour_rows(s) for s in ROLLUP_SOURCES},
        **{f"day:{s}": ds.day_rows(s) for s in ROLLUP_SOURCES},
        **{s: ds.raw_events(s) for s in RAW_EVENT_SOURCES},
        "history": ds.visitor_history,
    }


# --------------------------------------------------------------------------------------------- determinism


def test_dataset_same_seed_gives_identical_data() -> None:
    assert snapshot(fresh(seed=7)) == snapshot(fresh(seed=7))


def test_dataset_different_seed_gives_different_data() -> None:
    a, b = snapshot(fresh(seed=7)), snapshot(fresh(seed=8))
    for name in ("visitors", "pages", "hour:events", "hour:featureEvents", "guideEvents"):
        assert a[name] != b[name], name
    assert {p["id"] for p in a["pages"]}.isdisjoint({p["id"] for p in b["pages"]})


def test_dataset_same_seed_other_clock_keeps_catalogue_ids() -> None:
    later = Dataset(SCALES["tiny"], 7, NOW_MS + 5 * DAY_MS, TZ)
    assert [p["id"] for p in later.pages] == [p["id"] for p in dataset().pages]


def test_object_id_is_27_url_safe_chars_and_stable() -> None:
    ids = {object_id(7, "Page", a, i) for a in APP_IDS for i in range(200)}
    assert len(ids) == 800
    assert all(ID_RE.match(i) for i in ids)
    assert any(i.startswith("-") for i in ids), "a leading '-' is possible (BEHAVIOR.md §B-0)"
    assert object_id(1, "x") == object_id(1, "x")


# --------------------------------------------------------------------------------------------- scale sizes


@pytest.mark.parametrize("scale", ["tiny", "small"])
def test_scale_sizes_people_apps_and_catalogues(scale: str) -> None:
    ds = fresh(scale)  # people and catalogues only: no activity is generated here
    sc = SCALES[scale]
    assert ds.app_ids == list(APP_IDS[: sc.apps]) and ds.app_ids[0] == DEFAULT_APP_ID == -323232
    anonymous = [v for v in ds.visitors if v.anonymous]
    assert len(ds.visitors) == sc.identified_visitors + sc.anonymous_visitors
    assert len(anonymous) == sc.anonymous_visitors
    assert len(ds.account_ids) == len(set(ds.account_ids)) == sc.accounts
    assert len({v.visitor_id for v in ds.visitors}) == len(ds.visitors)
    assert len(ds.pages) == sc.apps * sc.pages_per_app
    assert len(ds.features) == sc.apps * sc.features_per_app
    assert len(ds.guides) == sc.apps * sc.guides_per_app
    assert len(ds.track_types) == sc.apps * sc.track_types_per_app


def test_scale_tiny_activity_spans_its_days_and_stops_before_the_current_hour() -> None:
    ds = dataset()
    hours = sorted({r["hour"] for r in ds.hour_rows("events")})
    assert ds.start_ms == (NOW_MS // DAY_MS - SCALES["tiny"].days) * DAY_MS
    assert hours[0] >= ds.start_ms and hours[0] < ds.start_ms + DAY_MS
    assert hours[-1] == NOW_MS - HOUR_MS, "the current hour has no data yet"
    assert all(h % HOUR_MS == 0 for h in hours)
    assert {r["appId"] for r in ds.hour_rows("events")} == set(ds.app_ids)


def test_scale_tiny_is_smaller_than_small() -> None:
    tiny, small = SCALES["tiny"], SCALES["small"]
    assert tiny.identified_visitors < small.identified_visitors and tiny.days < small.days
    assert 100 < len(dataset().hour_rows("events")) < 2000


# --------------------------------------------------------------------------------------------- rollup keys (§B-15)


def rollup_key(row: dict[str, Any], source: str, field: str) -> tuple[Any, ...]:
    obj = OBJECT_FIELD[source]
    return (
        row["appId"],
        row["visitorId"],
        row["accountId"],
        row["server"],
        row.get("remoteIp"),
        row["userAgent"],
        row[field],
        row.get(obj) if obj else None,
    )


@pytest.mark.parametrize("period", ["dayRange", "hourRange"])
@pytest.mark.parametrize("source", ROLLUP_SOURCES)
def test_rollup_primary_key_is_unique(source: str, period: str) -> None:
    field = "day" if period == "dayRange" else "hour"
    rows = dataset().rollup_rows(source, period)
    keys = [rollup_key(r, source, field) for r in rows]
    assert rows and len(set(keys)) == len(keys)
    other = "hour" if field == "day" else "day"
    assert all(other not in r for r in rows), "day and hour are never both present (§B-15)"


@pytest.mark.parametrize("source", ROLLUP_SOURCES)
def test_rollup_day_rows_are_local_midnights_and_sum_the_hours(source: str) -> None:
    ds = dataset()
    days = ds.day_rows(source)
    assert all(ds.day_start(r["day"]) == r["day"] for r in days)
    assert sum(r["numEvents"] for r in days) == sum(r["numEvents"] for r in ds.hour_rows(source))
    assert sum(r["numMinutes"] for r in days) == sum(r["numMinutes"] for r in ds.hour_rows(source))


def test_rollup_object_ids_point_into_the_catalogue_of_the_rows_app() -> None:
    ds = dataset()
    for source, catalogue in (
        ("featureEvents", ds.features),
        ("pageEvents", ds.pages),
        ("trackEvents", ds.track_types),
    ):
        app_of = {o["id"]: o["appId"] for o in catalogue}
        field = OBJECT_FIELD[source]
        assert field is not None
        assert all(app_of[r[field]] == r["appId"] for r in ds.hour_rows(source)), source
    guide_app = {g["id"]: g["appId"] for g in ds.guides}
    assert all(guide_app[e["guideId"]] == e["appId"] for e in ds.guide_events + ds.poll_events)


def test_late_rows_are_new_keys_with_late_user_agent() -> None:
    ds = dataset()
    for source in ROLLUP_SOURCES:
        late = ds.late_hour_rows(source)
        assert late and all(r["userAgent"].startswith("LateArrival/1.0") for r in late)
        existing = {rollup_key(r, source, "hour") for r in ds.hour_rows(source)}
        assert not existing & {rollup_key(r, source, "hour") for r in late}


# --------------------------------------------------------------------------------------------- tricky ids (§B-0, §B-12)


def test_tricky_ids_are_present_and_active() -> None:
    ds = dataset()
    visitor_ids = {v.visitor_id for v in ds.visitors}
    tricky_visitors = [v for v in visitor_ids if '"' in v and "\\" in v]
    assert tricky_visitors, 'a visitor id with `"` and `\\`'
    assert any('"' in a for a in ds.account_ids), 'an account id with `"`'
    assert any("\\" in a for a in ds.account_ids)
    assert any(v.isdigit() for v in visitor_ids), "numeric-looking ids (sort as strings)"
    events = ds.hour_rows("events")
    assert {r["visitorId"] for r in events} & set(tricky_visitors)
    assert any('"' in r["accountId"] for r in events)


def test_anonymous_visitors_have_pendo_t_ids_and_activity() -> None:
    ds = dataset()
    for v in ds.visitors:
        assert v.anonymous == v.visitor_id.startswith(ANONYMOUS_PREFIX)
        if v.anonymous:
            assert ANON_RE.match(v.visitor_id)
    for source in ROLLUP_SOURCES:
        assert any(r["visitorId"].startswith(ANONYMOUS_PREFIX) for r in ds.hour_rows(source)), source


def test_donotprocess_visitor_exists_and_is_flagged() -> None:
    flagged = [r for r in dataset().visitor_rows if r["metadata"]["pendo"]["donotprocess"]]
    assert len(flagged) == 1


def test_third_app_does_not_log_remote_ip() -> None:
    ds = dataset()
    for source in ROLLUP_SOURCES:
        for row in ds.hour_rows(source):
            assert ("remoteIp" in row) == (row["appId"] != ds.app_ids[2])


# --------------------------------------------------------------------------------------------- metadata (§B-8, §B-14)

PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (float, int),
    "boolean": (bool,),
    "time": (int,),
    "list": (list,),
}


def conforms(value: Any, type_: str) -> bool:
    if type_ == "":
        return True  # unknown / mixed
    if type_ in ("integer", "float", "time") and isinstance(value, bool):
        return False
    return isinstance(value, PY_TYPES[type_])


@pytest.mark.parametrize("kind", ["visitor", "account"])
def test_metadata_values_match_schema_type(kind: str) -> None:
    ds = dataset()
    schema = ds.metadata_schema(kind)
    rows = ds.visitor_rows if kind == "visitor" else ds.account_rows
    checked = 0
    for row in rows:
        for group in ("agent", "custom", "pendo"):
            for name, value in (row["metadata"].get(group) or {}).items():
                assert name in schema[group], f"{group}.{name} is declared in the schema"
                assert conforms(value, schema[group][name]["Type"]), (group, name, value)
                checked += 1
        for name, descriptor in schema["auto"].items():
            if name in row["metadata"]["auto"]:
                assert conforms(row["metadata"]["auto"][name], descriptor["Type"]), name
    assert checked > len(rows)


def test_metadata_custom_field_of_mixed_type_has_empty_schema_type() -> None:
    ds = dataset()
    notes = {
        type(r["metadata"]["custom"]["notes"])
        for r in ds.visitor_rows
        if "notes" in r["metadata"].get("custom", {})
    }
    assert ds.metadata_schema("visitor")["custom"]["notes"]["Type"] == ""
    assert notes


def test_metadata_per_app_group_names() -> None:
    """§B-0, §B-14: `auto_` + app id with `-` written as `_`."""
    assert metadata_group_for_app(-323232) == "auto__323232"
    assert metadata_group_for_app(6253630842798080) == "auto_6253630842798080"
    ds = dataset()
    for row in ds.visitor_rows:
        groups = {g for g in row["metadata"] if g.startswith("auto_")}
        assert groups <= {metadata_group_for_app(a) for a in ds.app_ids}
        for group in groups:
            assert {"firstvisit", "lastvisit", "lastupdated"} <= set(row["metadata"][group])


def test_visitor_first_and_last_visit_match_activity() -> None:
    ds = dataset()
    for row in ds.visitor_rows:
        times = [
            (r["firstTime"], r["lastTime"])
            for r in ds.hour_rows("events")
            if r["visitorId"] == row["visitorId"]
        ]
        if not times:
            continue
        auto = row["metadata"]["auto"]
        assert auto["firstvisit"] <= min(f for f, _ in times)
        assert auto["lastvisit"] >= max(last for _, last in times)
        assert auto["lastupdated"] >= auto["lastvisit"]


def test_unknown_schema_kind_is_empty() -> None:
    assert dataset().metadata_schema("guide") == {}


def test_visitor_history_items_are_sorted_and_typed() -> None:
    ds = dataset()
    assert ds.visitor_history
    for items in ds.visitor_history.values():
        assert [(i["ts"], i["type"]) for i in items] == sorted((i["ts"], i["type"]) for i in items)
        for item in items:
            assert item["type"] in ("page", "feature")
            assert ("pageId" in item) == (item["type"] == "page") and ("uri" in item) == (
                item["type"] == "page"
            )
            assert "visitorId" not in item
