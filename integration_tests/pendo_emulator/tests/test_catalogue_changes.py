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


@pytest.mark.parametrize(
    "change",
    [
        {"op": "rename", "ids": ["x"]},
        {"op": "tag", "ids": "x"},
        {"op": "tag", "ids": ["x"], "processed_from": "y"},
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
