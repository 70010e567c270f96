"""Catalogue changes between syncs (catalogue_changes.py): what the dataset, and so the API and the ground truth,
show after a tag, a rule edit, reprocessing, a deletion and a restore."""

from __future__ import annotations

import contextlib

import pytest

from integration_tests.pendo_emulator.dataset import SCALES, Dataset
from integration_tests.pendo_emulator.server import EmulatorSettings
from integration_tests.pendo_emulator.tests.conftest import (
    DAY_MS,
    NOW_MS,
    SEED,
    TZ,
    _start,
    day_range,
    source,
)

EVERY_APP = 'expandAppIds("*")'


def _dataset(untagged: list[str] | None = None) -> Dataset:
    ds = Dataset(SCALES["tiny"], SEED, NOW_MS, TZ)
    ds.changes.untagged.update(untagged or [])
    return ds


def _busiest_feature(ds: Dataset) -> str:
    counts: dict[str, int] = {}
    for row in ds.day_rows("featureEvents"):
        counts[row["featureId"]] = counts.get(row["featureId"], 0) + 1
    return max(counts, key=lambda oid: (counts[oid], oid))


def _rows_of(ds: Dataset, oid: str) -> list[dict]:
    return [r for r in ds.rollup_rows("featureEvents", "dayRange") if r["featureId"] == oid]


def test_an_untagged_object_and_its_events_are_absent_until_tagged():
    oid = _busiest_feature(_dataset())
    ds = _dataset([oid])
    assert oid not in {f["id"] for f in ds.catalogue("features")}
    assert not _rows_of(ds, oid)
    newest = max(f["lastUpdatedAt"] for f in ds.catalogue("features"))

    ds.changes.apply({"op": "tag", "ids": [oid]}, NOW_MS)

    tagged = next(f for f in ds.catalogue("features") if f["id"] == oid)
    assert newest < tagged["lastUpdatedAt"] == tagged["createdAt"] <= NOW_MS
    assert _rows_of(ds, oid) == _rows_of(_dataset(), oid)  # the whole history, as if always tagged


def test_reprocessing_shows_the_newest_buckets_first_then_everything():
    oid = _busiest_feature(_dataset())
    ds = _dataset([oid])
    since = NOW_MS - 2 * DAY_MS
    ds.changes.apply({"op": "tag", "ids": [oid], "processed_from": since}, NOW_MS)
    partly = _rows_of(ds, oid)
    assert partly and all(r["day"] >= since for r in partly)
    assert len(partly) < len(_rows_of(_dataset(), oid))

    ds.changes.apply({"op": "reprocess", "ids": [oid], "processed_from": None}, NOW_MS)
    assert _rows_of(ds, oid) == _rows_of(_dataset(), oid)


def test_a_rule_edit_moves_lastupdatedat_and_changes_the_rule():
    ds = _dataset()
    feature, page = ds.features[0], ds.pages[0]
    ds.changes.apply({"op": "change_rules", "ids": [feature["id"], page["id"]]}, NOW_MS)
    listed = {o["id"]: o for o in ds.catalogue("features") + ds.catalogue("pages")}
    assert listed[feature["id"]]["elementPathRules"] != feature["elementPathRules"]
    assert listed[page["id"]]["rules"] != page["rules"]
    assert listed[feature["id"]]["createdAt"] == feature["createdAt"]
    assert (
        feature["lastUpdatedAt"]
        < listed[feature["id"]]["lastUpdatedAt"]
        < listed[page["id"]]["lastUpdatedAt"]
    )


def test_a_deleted_object_and_its_events_are_gone_until_restored():
    oid = _busiest_feature(_dataset())
    ds = _dataset()
    ds.changes.apply({"op": "delete", "ids": [oid, ds.segments[0]["id"]]}, NOW_MS)
    assert oid not in {f["id"] for f in ds.catalogue("features")}
    assert ds.segments[0]["id"] not in {s["id"] for s in ds.catalogue("segments")}
    assert not _rows_of(ds, oid)

    ds.changes.apply({"op": "restore", "ids": [oid]}, NOW_MS)
    assert next(f for f in ds.catalogue("features") if f["id"] == oid) == next(
        f for f in ds.features if f["id"] == oid
    )
    assert _rows_of(ds, oid) == _rows_of(_dataset(), oid)


def _guide_with(ds: Dataset, kind: str) -> dict:
    return next(g for g in ds.guides if any(p["attributes"]["type"] == kind for p in g.get("polls", [])))


@pytest.mark.parametrize(
    "reading", [(), ("poll_choices_in_attributes",)], ids=["default", "choices-in-attributes"]
)
def test_removing_a_child_leaves_its_parent_listed_without_it(reading):
    """remove_child (§B-23): a step, a poll (and its step's mention of it), a choice wherever the reading lists
    it, a page rule, a feature rule; the parent stamped unless `touch` is false; the truth's choices follow."""
    ds = Dataset(SCALES["tiny"], SEED, NOW_MS, TZ, reading)
    nps, picks = _guide_with(ds, "NPSRating"), _guide_with(ds, "PickList")
    multi = next(g for g in ds.guides if len(g["steps"]) > 1)
    page = next(p for p in ds.pages if len(p["rules"]) > 1)
    feature = next(f for f in ds.features if len(f.get("elementPathRules", [])) > 1)
    pick, scale = picks["polls"]
    choice = ds.poll_choices[(picks["id"], pick["id"])][1]["choiceId"]
    changes = [
        {"op": "remove_child", "ids": [multi["id"]], "field": "steps", "key": multi["steps"][-1]["id"]},
        {"op": "remove_child", "ids": [nps["id"]], "field": "polls", "key": nps["polls"][1]["id"]},
        {"op": "remove_child", "ids": [picks["id"]], "field": "choices", "key": [pick["id"], choice]},
        {
            "op": "remove_child",
            "ids": [picks["id"]],
            "field": "choices",
            "key": [scale["id"], "5"],
            "touch": False,
        },
        {"op": "remove_child", "ids": [page["id"]], "field": "rules", "key": page["rules"][1]["rule"]},
        {"op": "remove_child", "ids": [feature["id"]], "field": "elementPathRules", "key": "#button-1"},
    ]
    for change in changes:
        ds.changes.apply(change, NOW_MS)
    listed = {o["id"]: o for kind in ("guides", "pages", "features") for o in ds.catalogue(kind)}
    assert [s["id"] for s in listed[multi["id"]]["steps"]] == [s["id"] for s in multi["steps"][:-1]]
    assert [p["id"] for p in listed[nps["id"]]["polls"]] == [nps["polls"][0]["id"]]
    assert listed[nps["id"]]["steps"][0]["pollIds"] == [nps["polls"][0]["id"]]
    pick_now, scale_now = listed[picks["id"]]["polls"]
    if reading:
        assert [c["id"] for c in pick_now["attributes"]["choices"]] == [
            c["choiceId"] for c in ds.poll_choices[(picks["id"], pick["id"])] if c["choiceId"] != choice
        ]
        assert scale_now["attributes"]["choices"] == [1, 2, 3, 4]
    else:
        assert (
            choice not in pick_now["idResponses"]
            and len(pick_now["idResponses"]) == len(pick["idResponses"]) - 1
        )
        assert scale_now["numericResponses"] == [1, 2, 3, 4]
    assert [r["rule"] for r in listed[page["id"]]["rules"]] == [page["rules"][0]["rule"]]
    assert listed[feature["id"]]["elementPathRules"] == [".toolbar button.b1"]
    for parent in (multi, nps, picks, page, feature):
        assert listed[parent["id"]]["lastUpdatedAt"] > parent["lastUpdatedAt"]
    assert ds.changes.is_removed(picks["id"], "choices", scale["id"], "5")
    assert not ds.changes.is_removed(picks["id"], "choices", scale["id"], "4")


def test_a_child_removed_without_touch_leaves_lastupdatedat_alone():
    ds = _dataset()
    page = next(p for p in ds.pages if len(p["rules"]) > 1)
    ds.changes.apply(
        {
            "op": "remove_child",
            "ids": [page["id"]],
            "field": "rules",
            "key": page["rules"][1]["rule"],
            "touch": False,
        },
        NOW_MS,
    )
    listed = next(p for p in ds.catalogue("pages") if p["id"] == page["id"])
    assert listed["lastUpdatedAt"] == page["lastUpdatedAt"] and len(listed["rules"]) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"op": "rename", "ids": ["x"]},
        {"op": "tag", "ids": "x"},
        {"op": "tag", "ids": ["x"], "processed_from": "y"},
        {"op": "remove_child", "ids": ["x"], "field": "pages", "key": "y"},
        {"op": "remove_child", "ids": ["x"], "field": "choices", "key": "y"},
        {"op": "remove_child", "ids": ["x"], "field": "steps", "key": 3},
    ],
)
def test_a_malformed_change_is_refused(change):
    with pytest.raises(ValueError):
        _dataset().changes.apply(change, NOW_MS)


def test_the_control_route_changes_what_the_api_serves_and_refuses_a_bad_change():
    oid = _busiest_feature(_dataset())
    settings = EmulatorSettings(scale="tiny", seed=SEED, now_ms=NOW_MS, tz=TZ, untagged=(oid,))
    with contextlib.closing(_start(settings)) as servers:
        served = next(servers)
        listed = {f["id"] for f in served.get("/api/v1/feature", params={"expand": "*"}).json()}
        assert oid not in listed
        served.control("catalogue", [{"op": "tag", "ids": [oid]}])
        listed = {f["id"] for f in served.get("/api/v1/feature", params={"expand": "*"}).json()}
        assert oid in listed
        rows = served.rows(
            [
                source(
                    "featureEvents",
                    {"appId": EVERY_APP, "featureId": oid},
                    day_range(NOW_MS - 6 * DAY_MS, count=7),
                )
            ]
        )
        assert rows and {r["featureId"] for r in rows} == {oid}
        refused = served.session.post(
            served.base_url + "/_emulator/catalogue", json=[{"op": "tag"}], timeout=30
        )
        assert refused.status_code == 400
