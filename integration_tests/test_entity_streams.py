"""Entity streams and check, the installed connector as a process against the emulator process."""

from __future__ import annotations

import pytest

from integration_tests.comparison import assert_records_equal, assert_unique_keys
from integration_tests.conftest import ONE_APP, catalog_for, run_connector

ENTITIES = [
    "accounts",
    "visitors",
    "features",
    "pages",
    "guides",
    "track_types",
    "reports",
    "report_results",
    "segments",
    "metadata_accounts",
    "metadata_visitors",
]


@pytest.mark.parametrize(
    "variant",
    [
        {"app_ids": [], "include_anonymous_visitors": False},
        {"app_ids": [ONE_APP], "include_anonymous_visitors": False},
        {"app_ids": [], "include_anonymous_visitors": True},
    ],
    ids=["all-apps", "one-app", "anonymous-on"],
)
def test_entity_streams_equal_ground_truth(world, variant):
    """In both worlds (the default reading of Pendo's API and `pessimistic`, conftest.py)."""
    config = dict(world.config, **variant)
    run = world.read(config, catalog_for(ENTITIES, discovered=world.discovered))
    assert run.returncode == 0, run.stderr[-3000:]
    for stream in ENTITIES:
        records = run.records(stream)
        if stream != "report_results":
            assert_unique_keys(stream, records)
        assert_records_equal(stream, records, world.expected(stream, config))


def test_entity_discover_types_custom_metadata_columns_from_the_schema_endpoint(discovered):
    streams = {s["name"]: s for s in discovered["streams"]}
    visitor_props = streams["visitors"]["json_schema"]["properties"]
    assert "number" in visitor_props["metadata_custom_mrr"]["type"]
    assert "integer" in visitor_props["metadata_custom_seats"]["type"]
    assert "boolean" in visitor_props["metadata_custom_is_trial"]["type"]
    assert "array" in visitor_props["metadata_custom_tags"]["type"]
    assert "number" in streams["accounts"]["json_schema"]["properties"]["metadata_custom_arr"]["type"]


def test_entity_second_read_with_state_skips_unchanged_catalogue_objects(world):
    """In both worlds. Accounts without `lastupdated` (pessimistic: `missing_lastupdated`) come with the first
    sync only: no lastupdated filter can find them again (docs/pendo.md)."""
    config = world.config
    catalog = catalog_for(["pages", "accounts"], discovered=world.discovered)
    first = world.read(config, catalog)
    assert first.returncode == 0, first.stderr[-3000:]
    assert_records_equal("accounts", first.records("accounts"), world.expected("accounts", config))
    second = world.read(config, catalog, state=first.final_state())
    assert second.returncode == 0, second.stderr[-3000:]
    newest = max(r["lastUpdatedAt"] for r in first.records("pages"))
    assert all(r["lastUpdatedAt"] >= newest for r in second.records("pages"))
    newest_account = max(
        r["lastupdated"] for r in first.records("accounts") if r.get("lastupdated") is not None
    )
    lookback = config["lookback_window_days"] * 86_400_000
    again = second.records("accounts")
    assert again, "the lookback re-reads the newest accounts"
    assert all(
        r.get("lastupdated") is not None and r["lastupdated"] >= newest_account - lookback for r in again
    )


def test_check_succeeds_with_a_valid_key(base_config):
    run = run_connector("check", base_config)
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "SUCCEEDED", status


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"api_key": "not-a-key"}, "Integration Keys"),
        ({"api_key": "emulator-key.eu"}, "region"),
        ({"app_ids": ["123"]}, "123"),
        ({"base_url": "http://127.0.0.1:9"}, "127.0.0.1:9"),
        ({"start_date": "2024-13-45"}, "start_date"),
        ({"region": "mars", "base_url": None}, "region"),
        ({"base_url": "app.pendo.io"}, "https://"),
    ],
    ids=[
        "wrong-key",
        "wrong-region",
        "unknown-app",
        "unreachable-host",
        "malformed-start-date",
        "unknown-region",
        "base-url-without-scheme",
    ],
)
def test_check_gives_one_actionable_message_per_bad_input(base_config, change, expected):
    config = {k: v for k, v in dict(base_config, **change).items() if v is not None}
    run = run_connector("check", config)
    assert run.returncode == 0, run.stderr[-2000:]
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert expected in status["message"], status["message"]
    assert "Traceback" not in run.stdout + run.stderr


def test_entity_first_read_announces_the_size_of_accounts_and_visitors(base_config, truth, discovered):
    run = run_connector("read", base_config, catalog_for(["accounts", "visitors"], discovered=discovered))
    assert run.returncode == 0, run.stderr
    estimates = {
        m["trace"]["estimate"]["name"]: m["trace"]["estimate"]
        for m in run.of_type("TRACE")
        if m["trace"]["type"] == "ESTIMATE"
    }
    assert (
        estimates["visitors"]["row_estimate"]
        == len(truth.records("visitors", base_config))
        == len(run.records("visitors"))
    )
    assert (
        estimates["accounts"]["row_estimate"]
        == len(truth.records("accounts", base_config))
        == len(run.records("accounts"))
    )
    assert all(e["type"] == "STREAM" for e in estimates.values())
    again = run_connector(
        "read", base_config, catalog_for(["visitors"], discovered=discovered), state=run.final_state()
    )
    assert not [m for m in again.of_type("TRACE") if m["trace"]["type"] == "ESTIMATE"], (
        "an incremental re-read has no size known up front"
    )
