"""The catalogue changes between two syncs: a new tag's history reaches feature_events/page_events (backfill.py).

Each test starts an emulator whose subscription has two features and a page not tagged yet (their events exist,
as raw events do in Pendo before anyone tags them), syncs, tags them (catalogue_changes.py), and syncs again
from the saved state, as the platform would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal
from integration_tests.conftest import (
    CONNECTOR_NOW_ENV,
    EMULATOR_TZ,
    PESSIMISTIC_PAGE_SIZE,
    catalog_for,
    is_count,
    is_read_on,
    run_connector,
    run_connector_killed_at,
)
from integration_tests.invariant import KILLED, Ledger
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import DAY_MS, SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth, parse_start_ms, record_key

STREAMS = ["feature_events", "page_events", "features", "pages"]
OBJECT_FIELD = {"feature_events": "featureId", "page_events": "pageId"}


def _busiest(ds: Dataset, source: str, field: str, start: int, count: int) -> list[str]:
    """The objects with the most day rows since `start`: their history is what a backfill must find."""
    rows: dict[str, int] = {}
    for row in ds.rollup_rows(source, "dayRange"):
        if row["day"] >= start:
            rows[row[field]] = rows.get(row[field], 0) + 1
    return sorted(rows, key=lambda oid: (-rows[oid], oid))[:count]


@pytest.fixture
def world(
    emulator_now: int, base_config: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[tuple[EmulatorProcess, list[str], list[str]]]:
    """`readings` by indirect parametrization (the default reading of Pendo's API otherwise)."""
    ds = Dataset(SCALES["tiny"], 7, emulator_now, EMULATOR_TZ)
    start = parse_start_ms(base_config["start_date"])
    features = _busiest(ds, "featureEvents", "featureId", start, 2)
    pages = _busiest(ds, "pageEvents", "pageId", start, 1)
    readings = getattr(request, "param", ())
    with EmulatorProcess(
        scale="tiny",
        seed=7,
        now_ms=emulator_now,
        tz=EMULATOR_TZ,
        untagged=features + pages,
        readings=readings,
    ) as process:
        yield process, features, pages


def _config(base_config: dict[str, Any], process: EmulatorProcess, **extra: Any) -> dict[str, Any]:
    return dict(base_config, base_url=process.base_url, **extra)


def _of(records: list[dict[str, Any]], stream: str, ids: list[str]) -> list[dict[str, Any]]:
    return [r for r in records if r.get(OBJECT_FIELD[stream]) in ids]


def _dedup(stream: str, *runs: Any) -> list[dict[str, Any]]:
    """What an append_dedup table holds after these syncs: the last record of each primary key."""
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        for record in run.records(stream):
            table[record_key(stream, record)] = record
    return list(table.values())


@pytest.mark.parametrize(
    ("world", "period"),
    [((), "DAY"), ((), "HOUR"), (("pessimistic",), "DAY")],
    ids=["default-DAY", "default-HOUR", "pessimistic-DAY"],
    indirect=["world"],
)
def test_new_tags_history_is_read_on_the_next_sync(world, period, base_config, discovered):
    process, features, pages = world
    config = _config(base_config, process, period=period)
    catalog = catalog_for(STREAMS, discovered=discovered)
    # in the pessimistic world, pages of a few rows (per-period pipelines truncate periods), as conftest's World
    env = {"SOURCE_PENDO_TEST_PAGE_SIZE": PESSIMISTIC_PAGE_SIZE} if process.readings else None
    first = run_connector("read", config, catalog, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert not _of(first.records("feature_events"), "feature_events", features)
    assert not {f["id"] for f in first.records("features")} & set(features)

    process.change_catalogue({"op": "tag", "ids": features + pages})
    truth = GroundTruth(process.dataset())
    second = run_connector("read", config, catalog, state=first.final_state(), env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    for stream, ids in (("feature_events", features), ("page_events", pages)):
        want = _of(truth.records(stream, config), stream, ids)
        start, frontier = parse_start_ms(config["start_date"]), _frontier(first, stream)
        assert any(r["periodStart"] < frontier - 2 * DAY_MS for r in want), (
            "history the forward read cannot see"
        )
        assert min(r["periodStart"] for r in want) < start + 2 * DAY_MS
        assert_records_equal(stream, _of(second.records(stream), stream, ids), want)
        assert_records_equal(stream, _dedup(stream, first, second), truth.records(stream, config))
    # cost: one catalogue request per stream, and per new tag one request per 30 days of history (4 days here)
    # and per page of rows (the default world's pages hold them all)
    # (objects the emulator's catalogue changed less than tag_settle_days ago are read again too)
    now = int(os.environ[CONNECTOR_NOW_ENV])
    due = {
        o["id"]
        for kind in ("features", "pages")
        for o in process.dataset().catalogue(kind)
        if max(o["createdAt"], o["lastUpdatedAt"]) > now - 2 * DAY_MS
    }
    assert due > set(features + pages)
    lane_requests = [r for r in process.stats()["requests"] if r.get("object_id")]
    lanes = [r["object_id"] for r in lane_requests]
    if not process.readings:  # each lane's window: Pendo's count, then a read that holds it unless it is 0
        assert sorted(r["object_id"] for r in lane_requests if is_count(r)) == sorted(due)
        reads = [r["object_id"] for r in lane_requests if not is_count(r)]
        assert set(reads) <= due and len(reads) == len(set(reads))
        assert not any(is_read_on(r) for r in lane_requests)
    assert set(lanes) == due
    # the catalogue streams list the new tags (client-side lastUpdatedAt cursor)
    assert {f["id"] for f in second.records("features")} >= set(features)


def test_reprocessing_over_time_is_completed_by_the_following_sync(world, base_config, discovered):
    process, features, pages = world
    config = _config(base_config, process)
    catalog = catalog_for(["feature_events", "page_events"], discovered=discovered)
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]

    processed_from = process.now_ms - 2 * DAY_MS  # newest first: the last two days so far
    process.change_catalogue({"op": "tag", "ids": features + pages, "processed_from": processed_from})
    partly = GroundTruth(process.dataset())
    second = run_connector("read", config, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]

    process.change_catalogue({"op": "reprocess", "ids": features + pages, "processed_from": None})
    done = GroundTruth(process.dataset())
    third = run_connector("read", config, catalog, state=second.final_state())
    assert third.returncode == 0, third.stderr[-3000:]
    for stream, ids in (("feature_events", features), ("page_events", pages)):
        seen = _of(second.records(stream), stream, ids)
        assert_records_equal(stream, seen, _of(partly.records(stream, config), stream, ids))
        want = _of(done.records(stream, config), stream, ids)
        assert len(want) > len(seen), "the test needs history the second sync could not see yet"
        assert_records_equal(stream, _of(third.records(stream), stream, ids), want)
        assert_records_equal(stream, _dedup(stream, first, second, third), done.records(stream, config))


def test_a_rule_edit_rereads_the_objects_history(world, base_config, discovered):
    process, features, pages = world
    config = _config(base_config, process)
    catalog = catalog_for(["feature_events"], discovered=discovered)
    process.change_catalogue({"op": "tag", "ids": features + pages})
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    # tagged before the first sync and less than tag_settle_days ago: read again; with 0, never
    settled = run_connector("read", dict(config, tag_settle_days=0), catalog, state=first.final_state())
    assert settled.returncode == 0, settled.stderr[-3000:]
    old = [
        r
        for r in settled.records("feature_events")
        if r["periodStart"] < _frontier(first, "feature_events") - DAY_MS
    ]
    assert not old

    edited = sorted({r["featureId"] for r in first.records("feature_events")} - set(features))[0]
    before = _of(first.records("feature_events"), "feature_events", [edited])
    gone_visitor = sorted(r["visitorId"] for r in before)[0]  # the new rule no longer matches this visitor
    process.change_catalogue({"op": "change_rules", "ids": [edited], "unmatched_visitors": [gone_visitor]})
    truth = GroundTruth(process.dataset())
    second = run_connector("read", dict(config, tag_settle_days=0), catalog, state=settled.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    want = _of(truth.records("feature_events", config), "feature_events", [edited])
    assert_records_equal(
        "feature_events", _of(second.records("feature_events"), "feature_events", [edited]), want
    )
    # What the docs say the warehouse holds after a rule edit: the new rule's rows, plus the old rule's rows it
    # no longer matches (nothing tells the connector they are gone) until the user clears them.
    table = _of(_dedup("feature_events", first, settled, second), "feature_events", [edited])
    stale = [r for r in before if r["visitorId"] == gone_visitor]
    assert stale
    assert_records_equal("feature_events", table, want + stale)


def test_new_tags_history_after_end_date_is_read_up_to_end_date_only(world, base_config, discovered):
    """A stream whose frontier reached end_date reads no forward window again, but a tag created since has
    history inside [start_date, end_date]: the next sync reads exactly that (docs/pendo.md, "End date")."""
    process, features, pages = world
    end_ms = process.dataset().now_ms - process.dataset().now_ms % DAY_MS - 2 * DAY_MS  # after end_date's day
    end_date = time.strftime("%Y-%m-%d", time.gmtime((end_ms - DAY_MS) / 1000))
    config = _config(base_config, process, end_date=end_date)
    catalog = catalog_for(["feature_events", "page_events"], discovered=discovered)
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    assert all(_frontier(first, stream) == end_ms for stream in OBJECT_FIELD)

    process.change_catalogue({"op": "tag", "ids": features + pages})
    truth = GroundTruth(process.dataset())
    second = run_connector("read", config, catalog, state=first.final_state())

    assert second.returncode == 0, second.stderr[-3000:]
    for stream, ids in (("feature_events", features), ("page_events", pages)):
        want = _of(truth.records(stream, config), stream, ids)
        assert want and all(r["periodStart"] < end_ms for r in want)
        assert_records_equal(stream, _of(second.records(stream), stream, ids), want)
        assert all(r["periodStart"] < end_ms for r in second.records(stream))
        assert _frontier(second, stream) == end_ms


def test_backfill_switched_off_reads_only_from_the_cursor(world, base_config, discovered):
    process, features, pages = world
    config = _config(base_config, process, backfill_new_tags=False)
    catalog = catalog_for(["feature_events"], discovered=discovered)
    first = run_connector("read", config, catalog)
    process.change_catalogue({"op": "tag", "ids": features + pages})
    second = run_connector("read", config, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    frontier = _frontier(first, "feature_events")
    assert min(r["periodStart"] for r in second.records("feature_events")) >= frontier - DAY_MS - DAY_MS
    assert not [r for r in process.stats()["requests"] if r["route"] == "feature"]


def test_a_backfill_killed_midway_resumes_without_loss(world, base_config, discovered):
    process, features, _pages = world
    config = _config(base_config, process, tag_settle_days=0)  # only the unfinished tag is read again
    catalog = catalog_for(["feature_events"], discovered=discovered)
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    process.change_catalogue({"op": "tag", "ids": features})
    truth = GroundTruth(process.dataset())

    def one_tag_left(message: dict[str, Any]) -> bool:
        if message["type"] != "STATE":
            return False
        apps = message["state"]["stream"]["stream_state"].get("apps", {})
        return any(len(a.get("backfill", {}).get("objects", {})) == 1 for a in apps.values())

    # the second tag's history answers slowly: the kill lands while it is being read, the first one done
    slow = {"kind": "slow", "route": "aggregation", "body_contains": features[1], "delay_s": 5, "times": None}
    process.set_faults([slow])
    killed = run_connector_killed_at(one_tag_left, config, catalog, state=first.final_state())
    process.set_faults([])
    assert killed.returncode == KILLED
    pending = [
        oid
        for a in killed.final_state()[0]["stream"]["stream_state"]["apps"].values()
        for oid in a.get("backfill", {}).get("objects", {})
    ]
    assert pending == [features[1]]
    resumed = run_connector("read", config, catalog, state=killed.final_state())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _of(resumed.records("feature_events"), "feature_events", pending)
    done = [oid for oid in features if oid not in pending]
    old = [
        r
        for r in resumed.records("feature_events")
        if r["periodStart"] < _frontier(first, "feature_events") - DAY_MS
    ]
    assert not _of(old, "feature_events", done), "a finished tag's history is not read again"
    want = truth.records("feature_events", config)
    assert_records_equal("feature_events", _dedup("feature_events", first, killed, resumed), want)
    ledger = Ledger(
        {"feature_events": want}, lookback_days=1
    )  # the fault matrix's invariant, backfill included
    ledger.seed(first)
    for sync in (killed, resumed):
        ledger.feed(sync)
    ledger.finish()
    final = resumed.final_state()[0]["stream"]["stream_state"]["apps"]
    assert all(a.get("backfill", {}).get("objects", {}) == {} for a in final.values())


def _frontier(run: Any, stream: str) -> int:
    state = next(s for s in run.final_state() if s["stream"]["stream_descriptor"]["name"] == stream)
    return min(a["periodStart"] for a in state["stream"]["stream_state"]["apps"].values())


# ----------------------------------------------------------------------------------------------- deletions
CATALOGUES = {  # stream -> Dataset.catalogue kind
    "features": "features",
    "pages": "pages",
    "guides": "guides",
    "track_types": "track_types",
    "reports": "reports",
    "segments": "segments",
}


def _deletions(run: Any, stream: str) -> list[dict[str, Any]]:
    return [r for r in run.records(stream) if r.get("_ab_cdc_deleted_at")]


def _dedup_applying_deletes(stream: str, *runs: Any) -> dict[Any, dict[str, Any]]:
    """An append_dedup table of a stream with `_ab_cdc_deleted_at`: a deletion removes the row."""
    table: dict[Any, dict[str, Any]] = {}
    for run in runs:
        for record in run.records(stream):
            if record.get("_ab_cdc_deleted_at"):
                table.pop(record["id"], None)
            else:
                table[record["id"]] = record
    return table


def test_deleted_catalogue_objects_produce_exactly_one_deletion_record_each(world, base_config, discovered):
    process, _features, _pages = world
    config = _config(base_config, process)
    catalog = catalog_for(list(CATALOGUES), discovered=discovered)
    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    ds = process.dataset()
    deleted = {stream: [ds.catalogue(kind)[0]["id"]] for stream, kind in CATALOGUES.items()}
    process.change_catalogue({"op": "delete", "ids": [i for ids in deleted.values() for i in ids]})
    truth = GroundTruth(process.dataset())

    second = run_connector("read", config, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    third = run_connector("read", config, catalog, state=second.final_state())
    assert third.returncode == 0, third.stderr[-3000:]
    for stream in CATALOGUES:
        gone = _deletions(second, stream)
        assert [r["id"] for r in gone] == deleted[stream], stream
        assert all(r["lastUpdatedAt"] >= max(o["lastUpdatedAt"] for o in first.records(stream)) for r in gone)
        assert not _deletions(third, stream), f"{stream}: a deletion is emitted once"
        table = _dedup_applying_deletes(stream, first, second, third)
        assert set(table) == {o["id"] for o in truth.records(stream, config)}, stream

    # a deleted object that comes back (with its old lastUpdatedAt) is an ordinary record again
    process.change_catalogue({"op": "restore", "ids": deleted["features"]})
    fourth = run_connector("read", config, catalog, state=third.final_state())
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    back = [r for r in fourth.records("features") if r["id"] in deleted["features"]]
    assert len(back) == 1 and not back[0].get("_ab_cdc_deleted_at")
    assert set(_dedup_applying_deletes("features", first, second, third, fourth)) == {
        o["id"] for o in GroundTruth(process.dataset()).records("features", config)
    }


def test_full_refresh_catalogues_emit_no_deletions(world, base_config, discovered):
    process, _features, _pages = world
    config = _config(base_config, process)
    catalog = catalog_for(list(CATALOGUES), sync_mode="full_refresh", discovered=discovered)
    first = run_connector("read", config, catalog)
    process.change_catalogue({"op": "delete", "ids": [process.dataset().features[0]["id"]]})
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_connector("read", config, catalog)  # full refresh: the platform passes no state
    assert second.returncode == 0, second.stderr[-3000:]
    assert not any(_deletions(second, s) for s in CATALOGUES)
    assert not any("listed_ids" in s["stream"]["stream_state"] for s in second.states())
    truth = GroundTruth(process.dataset())
    assert_records_equal("features", second.records("features"), truth.records("features", config))
