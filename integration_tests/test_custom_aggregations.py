"""Custom aggregation streams (spec option `custom_aggregations`) against the emulator process.

The three streams of `custom_aggregations/three_streams.json`: daily feature clicks per account (featureEvents,
group/sum/count, incremental on periodStart), a select of visitor metadata (visitors, full refresh) and a
group/count over guide events (incremental). The ground truth computes their records without the emulator's
pipeline engine (truth.py `_custom`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal, assert_unique_keys
from integration_tests.conftest import API_KEY, CONNECTOR_NOW_ENV, catalog_for, run_connector
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import DAY_MS
from integration_tests.pendo_emulator.truth import CUSTOM_STREAMS, GroundTruth, record_key

THREE_STREAMS = json.loads((Path(__file__).parent / "custom_aggregations" / "three_streams.json").read_text())
INCREMENTAL = ["daily_feature_clicks", "guide_event_counts"]


def _config(
    base: dict[str, Any], entries: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return dict(base, custom_aggregations=THREE_STREAMS if entries is None else entries, **extra)


def _discover(config: dict[str, Any]) -> dict[str, Any]:
    run = run_connector("discover", config)
    assert run.returncode == 0, run.stderr[-3000:]
    catalog: dict[str, Any] = run.of_type("CATALOG")[0]["catalog"]
    return catalog


def _by_key(stream: str, records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {record_key(stream, r): r for r in records}


def test_custom_streams_equal_ground_truth_over_two_syncs_the_second_incremental(world):
    """In both worlds; the second sync starts from the first one's state and re-reads only the lookback. At the
    default page size: guide_event_counts has no one-field key, so pages of a few rows would stop it (the next
    tests page the other two in pages of 3 in both worlds, and show that stop)."""
    config = _config(world.config)
    catalog = catalog_for(list(CUSTOM_STREAMS), discovered=_discover(config))
    modes = {s["stream"]["name"]: s["sync_mode"] for s in catalog["streams"]}
    assert modes == {
        "daily_feature_clicks": "incremental",
        "visitor_emails": "full_refresh",
        "guide_event_counts": "incremental",
    }

    first = run_connector("read", config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    for stream in CUSTOM_STREAMS:
        assert_unique_keys(stream, first.records(stream))
        assert_records_equal(stream, first.records(stream), world.truth.records(stream, config))

    state = first.final_state()
    second = run_connector("read", config, catalog, state=state)
    assert second.returncode == 0, second.stderr[-3000:]
    assert_records_equal(
        "visitor_emails", second.records("visitor_emails"), world.truth.records("visitor_emails", config)
    )
    for stream in INCREMENTAL:
        truth = world.truth.records(stream, config)
        frontiers = [
            s["stream"]["stream_state"]["apps"]["*"]["periodStart"]
            for s in state
            if s["stream"]["stream_descriptor"]["name"] == stream
        ]
        assert len(frontiers) == 1
        reread_from = frontiers[0] - config["lookback_window_days"] * DAY_MS
        again = second.records(stream)
        assert again, f"{stream}: the second sync re-reads the lookback"
        assert min(r["periodStart"] for r in again) >= reread_from - DAY_MS  # the frontier's period, at most
        assert len(again) < len(first.records(stream))
        # what the second sync emits is the truth of the periods it re-read; merged on the key, the truth
        assert_records_equal(
            stream, again, [r for r in truth if r["periodStart"] >= min(x["periodStart"] for x in again)]
        )
        merged = _by_key(stream, first.records(stream)) | _by_key(stream, again)
        assert_records_equal(stream, list(merged.values()), truth)


def test_custom_streams_page_on_a_one_field_primary_key(world):
    """Pages of 3 rows: the keyset after the pipeline (sort, `key > last`, limit) reads every row once."""
    config = _config(world.config, THREE_STREAMS[:2])
    truth = world.truth
    catalog = catalog_for(["daily_feature_clicks", "visitor_emails"], discovered=_discover(config))
    run = run_connector("read", config, catalog, env={"SOURCE_PENDO_TEST_PAGE_SIZE": "3"})
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in ("daily_feature_clicks", "visitor_emails"):
        assert_records_equal(stream, run.records(stream), truth.records(stream, config))
    assert any("request(s)" in line and "daily_feature_clicks" in line for line in run.logs())


def test_custom_stream_without_a_one_field_key_reads_a_period_fuller_than_a_page_whole(base_config, truth):
    """guide_event_counts (key guideId, type) cannot be paged: Pendo's count of each period sets its one request's
    `limit`, so a period with more rows than page_size is read whole (BEHAVIOR.md §B-22), never cut."""
    config = _config(base_config, THREE_STREAMS[2:])
    period_sizes: dict[int, int] = {}
    for r in truth.records("guide_event_counts", config):
        period_sizes[r["periodStart"]] = period_sizes.get(r["periodStart"], 0) + 1
    page = str(max(1, max(period_sizes.values()) // 2))  # the fullest period holds twice a page
    catalog = catalog_for(["guide_event_counts"], discovered=_discover(config))
    run = run_connector("read", config, catalog, env={"SOURCE_PENDO_TEST_PAGE_SIZE": page})
    assert run.returncode == 0, run.errors()
    stream = "guide_event_counts"
    assert_records_equal(stream, run.records(stream), truth.records(stream, config))


@pytest.mark.parametrize(
    ("pipeline", "pendo_says"),
    [
        ('[{"bogus": {"x": 1}}]', "Unsupported pipeline operator 'bogus'"),
        ('[{"filter": "accountId ==== 1"}]', "Cannot parse filter expression"),
        (
            '[{"group": {"group": ["accountId"], "fields": {"n": {"median": "numEvents"}}}}]',
            "Unsupported group aggregator",
        ),
    ],
    ids=["unknown-operator", "bad-filter", "unknown-aggregator"],
)
def test_custom_stream_pipeline_pendo_rejects_fails_check_naming_the_stream(
    base_config, pipeline, pendo_says
):
    entries = [*THREE_STREAMS, {"name": "broken_clicks", "source": "featureEvents", "pipeline": pipeline}]
    run = run_connector("check", _config(base_config, entries))
    statuses = run.of_type("CONNECTION_STATUS")
    assert [s["connectionStatus"]["status"] for s in statuses] == ["FAILED"]
    message = statuses[0]["connectionStatus"]["message"]
    assert message.startswith(
        "Custom aggregation stream `broken_clicks`: Pendo rejected its pipeline (HTTP 400)"
    )
    assert pendo_says in message


def test_custom_streams_pass_check(base_config):
    run = run_connector("check", _config(base_config))
    assert [s["connectionStatus"]["status"] for s in run.of_type("CONNECTION_STATUS")] == ["SUCCEEDED"]


def test_custom_stream_discover_infers_a_nullable_schema_and_says_so(base_config):
    streams = {s["name"]: s for s in _discover(_config(base_config))["streams"]}
    clicks = streams["daily_feature_clicks"]
    assert clicks["default_cursor_field"] == ["periodStart"]
    assert clicks["source_defined_primary_key"] == [["periodStart"], ["accountId"]]
    assert clicks["supported_sync_modes"] == ["full_refresh", "incremental"]
    properties = clicks["json_schema"]["properties"]
    assert properties["clicks"]["type"] == ["null", "integer"]
    assert properties["accountId"]["type"] == ["null", "string"]
    assert properties["periodStart"] == {"type": "integer"}
    assert "inferred from a sample" in clicks["json_schema"]["description"]
    assert "every field is nullable" in clicks["json_schema"]["description"]
    emails = streams["visitor_emails"]
    assert emails["supported_sync_modes"] == ["full_refresh"]
    assert all("null" in p["type"] for p in emails["json_schema"]["properties"].values())


def test_custom_stream_declared_schema_is_discovered_as_given(base_config):
    schema = {
        "type": "object",
        "properties": {"visitorId": {"type": "string"}, "email": {"type": ["null", "string"]}},
    }
    entry = dict(THREE_STREAMS[1], schema=json.dumps(schema))
    streams = {s["name"]: s for s in _discover(_config(base_config, [entry]))["streams"]}
    assert streams["visitor_emails"]["json_schema"]["properties"] == schema["properties"]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (
            {"name": "Daily-Clicks", "source": "featureEvents", "pipeline": "[]"},
            "custom_aggregations[3] ('Daily-Clicks'): `name`",
        ),
        ({"name": "events", "source": "featureEvents", "pipeline": "[]"}, "is a built-in stream"),
        ({"name": "visitor_emails", "source": "visitors", "pipeline": "[]"}, "is used by an earlier entry"),
        ({"name": "x_clicks", "source": "clicks", "pipeline": "[]"}, "is not a Pendo source"),
        ({"name": "x_clicks", "source": "featureEvents", "pipeline": "[{"}, "`pipeline` is not valid JSON"),
    ],
    ids=["bad-name", "built-in-name", "duplicate", "unknown-source", "bad-json"],
)
def test_custom_aggregation_config_error_names_the_entry(base_config, entry, says):
    config = _config(base_config, [*THREE_STREAMS, entry])
    check = run_connector("check", config)
    message = check.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["message"]
    assert says in message and "custom_aggregations[3]" in message
    read = run_connector("read", config, catalog_for(["visitor_emails"], sync_mode="full_refresh"))
    assert read.returncode != 0
    errors = read.errors()
    assert len(errors) == 1 and errors[0]["failure_type"] == "config_error" and says in errors[0]["message"]


def test_custom_activity_streams_under_hour_equal_ground_truth(emulator, truth, base_config):
    """HOUR: one request per hour and partition (one app here), periodStart the hour."""
    config = _config(base_config, [THREE_STREAMS[0], THREE_STREAMS[2]], period="HOUR", app_ids=["-323232"])
    catalog = catalog_for(INCREMENTAL, discovered=_discover(config))
    run = run_connector("read", config, catalog)
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in INCREMENTAL:
        expected = truth.records(stream, config)
        assert expected and all(r["periodStart"] % 3_600_000 == 0 for r in expected)
        assert_records_equal(stream, run.records(stream), expected)


# Europe/London's local midnight is 00:00 UTC in winter and 23:00 UTC the day before in summer: on 2024-03-31 the
# local day starts at 00:00 UTC and lasts 23 hours, on 2024-10-27 it starts at 23:00 UTC on the 26th and lasts 25.
# Pinned instants (epoch ms): the emulator's data ends at `now`, the connector's clock is two minutes later.
LONDON_DST_DAYS = {
    "spring": (1712067600000, "2024-03-28", 1711843200000),  # now 2024-04-02T14:20Z; day 2024-03-31T00:00Z
    "autumn": (1730211600000, "2024-10-24", 1729983600000),  # now 2024-10-29T14:20Z; day 2024-10-26T23:00Z
}


@pytest.mark.parametrize("change", list(LONDON_DST_DAYS))
def test_custom_activity_streams_read_each_local_day_once_across_a_daylight_saving_change(change):
    """A Europe/London subscription around a daylight-saving change: every local day is read once, named by
    Pendo's start of it (BEHAVIOR.md §B-21): the 23-hour day is not skipped, the 25-hour day not emitted twice
    under two periodStart values. Exact records and no duplicate keys."""
    now_ms, start_date, dst_day = LONDON_DST_DAYS[change]
    with EmulatorProcess(scale="tiny", seed=7, now_ms=now_ms, tz="Europe/London") as process:
        truth = GroundTruth(process.dataset())
        config = _config(
            {
                "api_key": API_KEY,
                "base_url": process.base_url,
                "start_date": start_date,
                "period": "DAY",
                "app_ids": [],
                "lookback_window_days": 1,
            },
            [THREE_STREAMS[0], THREE_STREAMS[2]],
        )
        env = {CONNECTOR_NOW_ENV: str(now_ms + 120_000)}
        discovered = run_connector("discover", config, env=env)
        assert discovered.returncode == 0, discovered.stderr[-3000:]
        catalog = catalog_for(INCREMENTAL, discovered=discovered.of_type("CATALOG")[0]["catalog"])
        run = run_connector("read", config, catalog, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in INCREMENTAL:
        expected = truth.records(stream, config)
        assert dst_day in {r["periodStart"] for r in expected}
        assert_unique_keys(stream, run.records(stream))
        assert_records_equal(stream, run.records(stream), expected)
