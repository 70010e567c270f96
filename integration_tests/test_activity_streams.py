"""Activity streams against the emulator process: records equal ground truth, stable keys, resumable state."""

from __future__ import annotations

import json
import os
import time

import pytest

from integration_tests.comparison import assert_records_equal, assert_unique_keys, canonical
from integration_tests.conftest import (
    CONNECTOR_NOW_ENV,
    EMULATOR_TZ,
    ONE_APP,
    catalog_for,
    is_count,
    is_read_on,
    run_connector,
)
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import DAY_MS, SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth, record_key

ACTIVITY = [
    "events",
    "feature_events",
    "page_events",
    "track_events",
    "guide_events",
    "poll_events",
    "visitor_history",
]
ROLLUPS = ["events", "feature_events", "page_events", "track_events"]


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
@pytest.mark.parametrize(
    "variant",
    [
        {"app_ids": [], "include_anonymous_visitors": False},
        {"app_ids": [ONE_APP], "include_anonymous_visitors": False},
        {"app_ids": [], "include_anonymous_visitors": True},
    ],
    ids=["all-apps", "one-app", "anonymous-on"],
)
def test_activity_streams_equal_ground_truth(world, period, variant):
    """In both worlds (the default reading of Pendo's API and `pessimistic`, conftest.py)."""
    config = dict(world.config, period=period, **variant)
    run = world.read(config, catalog_for(ACTIVITY, discovered=world.discovered))
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in ACTIVITY:
        records = run.records(stream)
        assert_unique_keys(stream, records)
        assert_records_equal(stream, records, world.expected(stream, config))
    assert {s["stream"]["stream_descriptor"]["name"] for s in run.states()} >= set(ACTIVITY)


def test_activity_discover_declares_incremental_cursor_and_full_primary_key(discovered):
    streams = {s["name"]: s for s in discovered["streams"]}
    assert streams["events"]["default_cursor_field"] == ["periodStart"]
    assert streams["guide_events"]["default_cursor_field"] == ["browserTime"]
    assert ["appId"] in streams["feature_events"]["source_defined_primary_key"]
    assert ["server"] in streams["feature_events"]["source_defined_primary_key"]
    for name in ACTIVITY:
        assert "incremental" in streams[name]["supported_sync_modes"]


def test_activity_primary_keys_are_unique_across_apps_where_tap_pendo_keys_collide(truth, base_config):
    config = dict(base_config, period="DAY", include_anonymous_visitors=True)
    for stream in ("events", "feature_events"):
        rows = truth.records(stream, config)
        assert len({record_key(stream, r) for r in rows}) == len(rows), f"{stream}: our key is not unique"
        assert len({r["appId"] for r in rows}) > 1
    events = truth.records("events", config)
    # tap-pendo's documented events key (Stitch: account_id, server, remote_ip) merges distinct rows
    tap = {(r["accountId"], r["server"], r.get("remoteIp")) for r in events}
    assert len(tap) < len(events)


@pytest.mark.parametrize("period", ["DAY", "HOUR"])
def test_activity_second_read_with_state_emits_only_the_lookback_window(world, period):
    config = dict(world.config, period=period)
    catalog = catalog_for(ROLLUPS, discovered=world.discovered)
    first = world.read(config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    second = world.read(config, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    newest = max(r["periodStart"] for r in first.records("events"))
    # A feature or page changed less than tag_settle_days (2) ago may still be reprocessed by Pendo: its history
    # is read again (activity/backfill.py); the emulator's catalogue has such objects.
    settling = {
        o["id"]
        for kind in ("features", "pages")
        for o in world.truth.ds.catalogue(kind)
        if max(o["createdAt"], o["lastUpdatedAt"]) > int(os.environ[CONNECTOR_NOW_ENV]) - 2 * DAY_MS
    }
    assert settling
    for stream in ROLLUPS:
        again = second.records(stream)
        # lookback (1 day; track_events 7, track_events_lookback_window_days) + the bucket still open at the first
        # read (1 period) + hour alignment of the frontier
        lookback = 7 if stream == "track_events" else config["lookback_window_days"]
        old = [r for r in again if r["periodStart"] < newest - (lookback + 1) * DAY_MS - 3_600_000]
        assert all(r.get("featureId", r.get("pageId")) in settling for r in old), (
            f"{stream} re-read more than the lookback"
        )
        union = {canonical(r) for r in first.records(stream) + again}
        assert union == {canonical(r) for r in world.expected(stream, config)}


def test_activity_state_in_the_future_reads_nothing_keeps_the_state_and_says_so(base_config, discovered):
    """A frontier after now (a state edited by hand, or saved by a machine whose clock was ahead): Airbyte's rule
    for a state from the future, nothing read and the state saved again as it was; one WARNING names the
    stream (it used to skip everything silently before issue 15, then to fail the whole sync)."""
    config = dict(base_config, period="DAY", lookback_window_days=0)
    future = {
        "version": 1,
        "period": "DAY",
        "start_date": config["start_date"],
        "apps": {"*": {"periodStart": 4102444800000}},
    }
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"}, "stream_state": future}}]
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered), state=state)
    assert run.returncode == 0, run.errors()
    assert run.records("events") == []
    [last] = run.final_state()
    assert last["stream"]["stream_state"]["apps"] == future["apps"]
    assert any(
        "events: app *: the saved state is at 2100-01-01T00:00Z, after now" in line for line in run.logs()
    )


def test_activity_period_change_fails_with_what_to_reset(base_config, discovered):
    saved = {
        "version": 1,
        "period": "DAY",
        "start_date": base_config["start_date"],
        "apps": {"*": {"periodStart": 1}},
    }
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"}, "stream_state": saved}}]
    run = run_connector(
        "read", dict(base_config, period="HOUR"), catalog_for(["events"], discovered=discovered), state=state
    )
    assert run.returncode != 0
    messages = " ".join(e["message"] for e in run.errors())
    assert "period changed from DAY to HOUR" in messages and "clear the data" in messages


def test_activity_app_added_to_app_ids_reads_its_history_from_the_all_apps_frontier(
    base_config, truth, discovered
):
    config = dict(base_config, period="DAY", app_ids=[])
    catalog = catalog_for(["events"], discovered=discovered)
    first = run_connector("read", config, catalog)
    narrowed = dict(config, app_ids=[ONE_APP])
    second = run_connector("read", narrowed, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    state = second.final_state()[0]["stream"]["stream_state"]
    assert ONE_APP in state["apps"]
    assert all(r["appId"] == int(ONE_APP) for r in second.records("events"))


def test_activity_feature_events_cost_one_request_per_window_not_per_feature(
    base_config, discovered, emulator_now
):
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as emulator:
        config = dict(base_config, base_url=emulator.base_url, period="DAY")
        run = run_connector("read", config, catalog_for(["feature_events"], discovered=discovered))
        assert run.returncode == 0, run.stderr[-3000:]
        requests = [r for r in emulator.stats()["requests"] if r["route"] == "aggregation"]
        bodies_per_feature = [r for r in requests if "featureId" in r.get("query", "")]
        assert not bodies_per_feature
        windows = [
            json.loads(line)["log"]["message"]
            for line in run.stdout.splitlines()
            if "feature_events: app" in line and " request(s)" in line
        ]
        # each window: Pendo's count, then (unless it counts none) one read that holds it (§B-22)
        counts = [r for r in requests if is_count(r)]
        reads = [r for r in requests if not is_count(r)]
        assert len(counts) == len(windows) >= 1
        assert len(reads) <= len(windows) and not any(is_read_on(r) for r in reads)


def test_activity_late_rows_inside_the_lookback_are_picked_up(base_config, discovered, emulator_now):
    with EmulatorProcess(
        scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ, late_rows=True
    ) as emulator:
        config = dict(base_config, base_url=emulator.base_url, period="HOUR")
        oracle = GroundTruth(Dataset(SCALES["tiny"], 7, emulator.now_ms, EMULATOR_TZ))
        # The tiny dataset has 4 late rows, the newest 7 to 31 hours old depending on the clock: a lookback
        # of whole days just long enough to reach back to it (a fixed 1 day missed it at 22:40Z, 23:30Z).
        newest_late = max(r["periodStart"] for r in oracle.late_records("events", config))
        config["lookback_window_days"] = -(-(emulator.now_ms - newest_late) // DAY_MS)
        catalog = catalog_for(["events"], discovered=discovered)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-3000:]
        second = run_connector("read", config, catalog, state=first.final_state())
        assert second.returncode == 0, second.stderr[-3000:]
        late = oracle.late_records("events", config)
        first_seen = {canonical(r) for r in first.records("events")}
        second_seen = {canonical(r) for r in second.records("events")}
        oldest_reread = min(r["periodStart"] for r in second.records("events"))
        inside = [
            canonical(r) for r in late if r["periodStart"] >= oldest_reread and canonical(r) not in first_seen
        ]
        assert inside, "no late row fell inside the lookback: nothing was tested"
        assert set(inside) <= second_seen


def test_track_events_late_rows_days_old_are_read_by_the_next_sync_by_default(
    base_config, discovered, emulator_now
):
    """Pendo processes server-side track events up to 7 days late: a row that appears in a bucket 2 to 6 days old
    after the first sync read that bucket is read by the next incremental sync, with the default settings
    (`track_events_lookback_window_days` 7; `lookback_window_days` 1 for the other streams)."""
    # `small`: late track rows in every day of the last week (`tiny` has two)
    with EmulatorProcess(
        scale="small", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ, late_rows=True
    ) as emulator:
        config = dict(base_config, base_url=emulator.base_url, start_date=_day(emulator_now - 7 * DAY_MS))
        assert "track_events_lookback_window_days" not in config and config["lookback_window_days"] == 1
        oracle = GroundTruth(Dataset(SCALES["small"], 7, emulator.now_ms, EMULATOR_TZ))
        catalog = catalog_for(["track_events"], discovered=discovered)
        first = run_connector("read", config, catalog)
        assert first.returncode == 0, first.stderr[-3000:]
        second = run_connector("read", config, catalog, state=first.final_state())
        assert second.returncode == 0, second.stderr[-3000:]
    first_seen = {canonical(r) for r in first.records("track_events")}
    late = [
        r
        for r in oracle.late_records("track_events", config)
        if r["periodStart"] <= emulator_now - 2 * DAY_MS and canonical(r) not in first_seen
    ]
    assert any(r["periodStart"] <= emulator_now - 4 * DAY_MS for r in late), (
        "no late row 5 days old: nothing tested"
    )
    assert {canonical(r) for r in late} <= {canonical(r) for r in second.records("track_events")}
    assert_records_equal(
        "track_events",
        [r for r in second.records("track_events") if canonical(r) in {canonical(x) for x in late}],
        late,
    )


def _day(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def test_visitor_history_calls_only_visitors_active_in_each_window_and_never_past_180_days(
    base_config, discovered, emulator_now
):
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as emulator:
        config = dict(base_config, base_url=emulator.base_url, start_date="2020-01-01")
        dataset = Dataset(SCALES["tiny"], 7, emulator.now_ms, EMULATOR_TZ)
        run = run_connector("read", config, catalog_for(["visitor_history"], discovered=discovered))
        assert run.returncode == 0, run.stderr[-3000:]
        calls = [r for r in emulator.stats()["requests"] if r["route"] == "visitor_history"]
        assert all(r["status"] == 200 for r in calls)
        oldest = min(int(r["query"].split("starttime=")[1].split("&")[0]) for r in calls)
        assert oldest >= emulator.now_ms - 180 * DAY_MS
        identified = {v.visitor_id for v in dataset.visitors if not v.anonymous}
        active_days = {
            (s.visitor.visitor_id, s.hour // DAY_MS)
            for s in dataset.sessions
            if s.visitor.visitor_id in identified
        }
        assert len(calls) == len(active_days), "one history call per visitor and day with activity, no more"


def test_activity_logs_say_app_window_and_records_so_far(base_config, discovered):
    run = run_connector(
        "read", dict(base_config, app_ids=[ONE_APP]), catalog_for(["events"], discovered=discovered)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    plan = [m for m in run.logs() if m.startswith(f"events: app {ONE_APP}: reading ")]
    assert len(plan) == 1 and " windows " in plan[0]
    windows = [
        m for m in run.logs() if m.startswith(f"events: app {ONE_APP}, ") and m.endswith("records so far")
    ]
    assert windows, "one log line per window"
    so_far = [int(m.rsplit("; ", 1)[1].split()[0]) for m in windows]
    assert so_far == sorted(so_far) and so_far[-1] == len(run.records("events"))
