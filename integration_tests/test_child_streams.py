"""The child streams (guide_steps, polls, poll_choices, page_rules, feature_rules; BEHAVIOR.md §B-23), the
installed connector as a process against the emulator process: full and incremental syncs equal the ground truth
in both worlds (the default reading and `pessimistic`, which lists poll choices in `attributes.choices` and poll
types in lower case: §R-18, §R-19), and a child removed between two syncs, its parent edited or not, is one
deletion record."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal, assert_unique_keys
from integration_tests.conftest import (
    CONNECTOR_NOW_ENV,
    EMULATOR_TZ,
    ONE_APP,
    catalog_for,
    run_connector,
)
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.truth import PRIMARY_KEYS, GroundTruth, record_key

CHILDREN = ["guide_steps", "polls", "poll_choices", "page_rules", "feature_rules"]
CURSOR = {
    "guide_steps": "guideLastUpdatedAt",
    "polls": "guideLastUpdatedAt",
    "poll_choices": "guideLastUpdatedAt",
    "page_rules": "pageLastUpdatedAt",
    "feature_rules": "featureLastUpdatedAt",
}
DELETED_AT = "_ab_cdc_deleted_at"


def _deletions(run: Any, stream: str) -> list[dict[str, Any]]:
    return [r for r in run.records(stream) if r.get(DELETED_AT)]


def _table(stream: str, *runs: Any) -> list[dict[str, Any]]:
    """An append_dedup table after these syncs: the last record of each primary key, a deletion removing it."""
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        for record in run.records(stream):
            if record.get(DELETED_AT):
                table.pop(record_key(stream, record), None)
            else:
                table[record_key(stream, record)] = record
    return list(table.values())


@pytest.mark.parametrize("variant", [{"app_ids": []}, {"app_ids": [ONE_APP]}], ids=["all-apps", "one-app"])
def test_child_streams_full_refresh_equals_the_truth_with_unique_keys(world, variant):
    config = dict(world.config, **variant)
    run = world.read(config, catalog_for(CHILDREN, sync_mode="full_refresh", discovered=world.discovered))
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in CHILDREN:
        records = run.records(stream)
        assert records, f"{stream}: the subscription has children of this kind"
        assert_unique_keys(stream, records)
        assert_records_equal(stream, records, world.expected(stream, config))
    assert not any(_deletions(run, s) for s in CHILDREN)
    assert not any("listed_ids" in s["stream"]["stream_state"] for s in run.states())


def test_child_streams_incremental_syncs_equal_the_truth_then_read_the_children_of_changed_parents(world):
    config = world.config
    catalog = catalog_for(CHILDREN, discovered=world.discovered)
    first = world.read(config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    second = world.read(config, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    for stream in CHILDREN:
        want = world.expected(stream, config)
        assert_unique_keys(stream, first.records(stream))
        assert_records_equal(stream, first.records(stream), want)
        state = next(s for s in first.final_state() if s["stream"]["stream_descriptor"]["name"] == stream)
        newest = max(r[CURSOR[stream]] for r in want)
        assert state["stream"]["stream_state"] == {
            CURSOR[stream]: newest,
            "listed_ids": sorted(_saved_key(stream, r) for r in want),
        }
        # the client-side cursor lets the children of the newest parent through again, nothing else
        assert_records_equal(stream, second.records(stream), [r for r in want if r[CURSOR[stream]] >= newest])
        assert_records_equal(stream, _table(stream, first, second), want)


def _saved_key(stream: str, record: dict[str, Any]) -> str:
    """A composite key as the state's `listed_ids` holds it: the JSON list of the key's values."""
    return json.dumps([record[f] for f in PRIMARY_KEYS[stream]], ensure_ascii=False, separators=(",", ":"))


def test_children_gone_between_syncs_are_one_deletion_record_each_whether_or_not_the_parent_moved(
    emulator_now, base_config, discovered
):
    """Each kind of child removed from a parent that stays (some parents stamped, some not: deletions must not
    depend on lastUpdatedAt), and a guide deleted with its steps, polls and choices."""
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        config = dict(base_config, base_url=process.base_url)
        catalog = catalog_for(CHILDREN, discovered=discovered)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-3000:]
        before = GroundTruth(process.dataset())

        ds = process.dataset()
        # parents left unstamped: older than the newest of their kind, so the cursor lets none of their children
        # through; only the deletion says the child is gone
        newest = {kind: max(o["lastUpdatedAt"] for o in getattr(ds, kind)) for kind in ("guides", "pages")}
        picks = next(
            g for g in ds.guides if g["steps"] and any(p.get("idResponses") for p in g.get("polls", []))
        )
        pick, scale = picks["polls"]
        multi = next(
            g
            for g in ds.guides
            if len(g["steps"]) > 1 and g["id"] != picks["id"] and g["lastUpdatedAt"] < newest["guides"]
        )
        gone_guide = next(
            g for g in ds.guides if g.get("polls") and g["id"] not in (multi["id"], picks["id"])
        )
        page = next(p for p in ds.pages if len(p["rules"]) > 1 and p["lastUpdatedAt"] < newest["pages"])
        feature = next(f for f in ds.features if len(f.get("elementPathRules", [])) > 1)
        process.change_catalogue(
            {
                "op": "remove_child",
                "ids": [multi["id"]],
                "field": "steps",
                "key": multi["steps"][1]["id"],
                "touch": False,
            },
            {"op": "remove_child", "ids": [picks["id"]], "field": "polls", "key": scale["id"]},
            {
                "op": "remove_child",
                "ids": [picks["id"]],
                "field": "choices",
                "key": [pick["id"], next(iter(pick["idResponses"]))],
            },
            {
                "op": "remove_child",
                "ids": [page["id"]],
                "field": "rules",
                "key": page["rules"][1]["rule"],
                "touch": False,
            },
            {
                "op": "remove_child",
                "ids": [feature["id"]],
                "field": "elementPathRules",
                "key": feature["elementPathRules"][1],
            },
            {"op": "delete", "ids": [gone_guide["id"]]},
        )
        after = GroundTruth(process.dataset())
        second = run_connector("read", config, catalog, state=first.final_state())
        assert second.returncode == 0, second.stderr[-3000:]
        third = run_connector("read", config, catalog, state=second.final_state())
        assert third.returncode == 0, third.stderr[-3000:]
        full = run_connector(
            "read", config, catalog_for(CHILDREN, sync_mode="full_refresh", discovered=discovered)
        )
        assert full.returncode == 0, full.stderr[-3000:]

    now = int(os.environ[CONNECTOR_NOW_ENV])
    for stream in CHILDREN:
        was = {record_key(stream, r) for r in before.records(stream, config)}
        now_listed = {record_key(stream, r) for r in after.records(stream, config)}
        gone = was - now_listed
        assert gone, f"{stream}: the test removes a child of this kind"
        deleted = _deletions(second, stream)
        assert sorted(record_key(stream, r) for r in deleted) == sorted(gone), stream
        for record in deleted:  # the key fields, the cursor (the sync's time) and the deletion time only
            assert set(record) == {*PRIMARY_KEYS[stream], CURSOR[stream], DELETED_AT}, record
            assert record[CURSOR[stream]] == now
        assert not _deletions(third, stream), f"{stream}: a deletion is emitted once"
        assert_records_equal(stream, _table(stream, first, second, third), after.records(stream, config))
        assert not _deletions(full, stream)
        assert_records_equal(stream, full.records(stream), after.records(stream, config))
        # ordinary records: only children of parents at or after the saved cursor (an unstamped parent's children
        # are not read again for a removal; its deletion record is enough)
        saved = next(s for s in first.final_state() if s["stream"]["stream_descriptor"]["name"] == stream)
        cursor = int(saved["stream"]["stream_state"][CURSOR[stream]])
        assert all(r[CURSOR[stream]] >= cursor for r in second.records(stream) if not r.get(DELETED_AT))
    unstamped = [
        r
        for stream, parent in (("guide_steps", "guideId"), ("page_rules", "pageId"))
        for r in second.records(stream)
        if r[parent] in (multi["id"], page["id"])
    ]
    assert [set(r) for r in unstamped] == [
        {*PRIMARY_KEYS[s], CURSOR[s], DELETED_AT} for s in ("guide_steps", "page_rules")
    ]
