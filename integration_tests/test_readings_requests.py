"""Entity requests, errors and check under the readings of Pendo's API that public evidence allows.

One test per reading (BEHAVIOR.md §R-2 … §R-14), each against an emulator process switched to it, with the
session's data and clock: the installed connector either emits exactly the ground truth under that reading,
or fails with the one message that names the cause. The key never appears in the output (the runners scan).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal
from integration_tests.conftest import API_KEY, EMULATOR_TZ, ONE_APP, catalog_for, run_connector
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.truth import GroundTruth
from integration_tests.test_entity_streams import ENTITIES


@contextmanager
def pendo(emulator_now: int, *readings: str) -> Iterator[tuple[EmulatorProcess, GroundTruth]]:
    with EmulatorProcess(
        scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ, readings=readings
    ) as process:
        yield process, GroundTruth(process.dataset())


def configured(base_config: dict[str, Any], process: EmulatorProcess, **change: Any) -> dict[str, Any]:
    return dict(base_config, base_url=process.base_url, **change)


def assert_equal_truth(run, truth: GroundTruth, config: dict[str, Any], streams: list[str]) -> None:
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.errors(), run.errors()
    for stream in streams:
        assert_records_equal(stream, run.records(stream), truth.records(stream, config))


def check_status(config: dict[str, Any]) -> dict[str, Any]:
    run = run_connector("check", config)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]


def warnings(run) -> list[str]:
    return [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]


@pytest.mark.parametrize("app_ids", [[], [ONE_APP]], ids=["all-apps", "one-app"])
def test_visitors_by_app_reads_every_visitor_of_every_app(base_config, discovered, emulator_now, app_ids):
    """R-2: without appId Pendo may answer the default app's visitors only; visitors asks for every app."""
    with pendo(emulator_now, "visitors_by_app") as (process, truth):
        config = configured(base_config, process, app_ids=app_ids)
        run = run_connector("read", config, catalog_for(["visitors", "accounts"], discovered=discovered))
        assert_equal_truth(run, truth, config, ["visitors", "accounts"])
        estimates = {
            m["trace"]["estimate"]["name"]: m["trace"]["estimate"]["row_estimate"]
            for m in run.of_type("TRACE")
            if m["trace"]["type"] == "ESTIMATE"
        }
        assert estimates["visitors"] == len(truth.records("visitors", config))


def test_missing_lastupdated_first_sync_reads_every_row_and_the_next_sync_still_runs(
    base_config, discovered, emulator_now
):
    """R-3: rows without metadata.auto.lastupdated are read on a first sync; they do not break the cursor."""
    with pendo(emulator_now, "missing_lastupdated") as (process, truth):
        config = configured(base_config, process)
        catalog = catalog_for(["accounts", "visitors"], discovered=discovered)
        first = run_connector("read", config, catalog)
        assert_equal_truth(first, truth, config, ["accounts", "visitors"])
        assert any("lastupdated" not in r for r in first.records("accounts") + first.records("visitors")), (
            "the reading removed no field"
        )
        second = run_connector("read", config, catalog, state=first.final_state())
        assert second.returncode == 0, second.stderr[-3000:]
        for stream in ("accounts", "visitors"):
            saved = int(
                next(s for s in first.final_state() if s["stream"]["stream_descriptor"]["name"] == stream)[
                    "stream"
                ]["stream_state"]["lastupdated"]
            )
            since = saved - config["lookback_window_days"] * 86_400_000
            # documented (BEHAVIOR.md §R-3): a lastupdated filter cannot find rows without the field
            assert all(int(r["lastupdated"]) >= since for r in second.records(stream))


def test_null_results_are_no_rows_for_entity_requests_estimates_and_check(
    base_config, discovered, emulator_now
):
    """R-5: `"results": null` means no rows, on a first sync, on an incremental one that finds nothing, in check."""
    with pendo(emulator_now, "null_results") as (process, truth):
        config = configured(base_config, process)
        assert check_status(config)["status"] == "SUCCEEDED"
        catalog = catalog_for(ENTITIES, discovered=discovered)
        first = run_connector("read", config, catalog)
        assert_equal_truth(first, truth, config, ENTITIES)
        empty = configured(base_config, process, app_ids=["1"])  # an app without objects: every answer empty
        second = run_connector(
            "read",
            empty,
            catalog_for(["accounts", "visitors", "track_types"], discovered=discovered),
            state=first.final_state(),
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert second.records("track_types") == []
        assert not second.errors()


def test_bad_request_400_names_the_rejected_request_not_the_region(base_config, discovered, emulator_now):
    """R-6: a key whose plan lacks aggregation access gets 400 from every aggregation: not a region problem."""
    with pendo(emulator_now, "bad_request_400") as (process, truth):
        config = configured(base_config, process, api_key=f"noagg-{API_KEY}")
        status = check_status(config)
        assert status["status"] == "FAILED"
        assert "HTTP 400 from" in status["message"] and "Aggregation API" in status["message"], status[
            "message"
        ]
        assert "region" not in status["message"]

        run = run_connector("read", config, catalog_for(["pages", "accounts"], discovered=discovered))
        assert run.returncode != 0
        errors = run.errors()
        assert errors and errors[0]["failure_type"] == "system_error", errors  # then the CDK's sync summary
        message = errors[0]["message"]
        assert message.startswith(
            'Pendo rejected a request of stream accounts (HTTP 400 to POST /api/v1/aggregation (source accounts)): "Bad Request".'
        ), message
        assert "region" not in message
        assert_records_equal("pages", run.records("pages"), truth.records("pages", config))

        wrong_region = check_status(configured(base_config, process, api_key="emulator-key.eu"))
        assert "region" in wrong_region["message"], wrong_region


@pytest.mark.parametrize("reading", ["history_unavailable", "history_unavailable_400"])
def test_history_unavailable_warns_once_and_every_other_stream_completes(
    base_config, discovered, emulator_now, reading
):
    """R-7: visitor history refused for every visitor: one WARNING, no more calls, state kept, others complete."""
    with pendo(emulator_now, reading) as (process, truth):
        config = configured(base_config, process)
        run = run_connector(
            "read", config, catalog_for(["visitor_history", "accounts", "pages"], discovered=discovered)
        )
        assert_equal_truth(run, truth, config, ["accounts", "pages"])
        assert run.records("visitor_history") == []
        refused = [w for w in warnings(run) if w.startswith("visitor_history: Pendo refused visitor history")]
        assert len(refused) == 1, warnings(run)
        calls = [r for r in process.stats()["requests"] if r["route"] == "visitor_history"]
        # refused at the first call; windows already in flight on the other workers may each have made one
        assert 1 <= len(calls) <= config.get("concurrency", 4), len(calls)
        assert all(r["form_urlencoded"] for r in calls)
        history_state = [
            s for s in run.final_state() if s["stream"]["stream_descriptor"]["name"] == "visitor_history"
        ]
        assert all(not s["stream"]["stream_state"].get("apps") for s in history_state), history_state


@pytest.mark.parametrize("app_ids", [[], [ONE_APP]], ids=["all-apps", "one-app"])
def test_no_tracktype_rest_reads_track_types_from_the_aggregation_source(
    base_config, discovered, emulator_now, app_ids
):
    """R-8: GET /tracktype answers 404; track_types come from the trackTypes source, the same records."""
    with pendo(emulator_now, "no_tracktype_rest") as (process, truth):
        config = configured(base_config, process, app_ids=app_ids)
        run = run_connector("read", config, catalog_for(["track_types"], discovered=discovered))
        assert_equal_truth(run, truth, config, ["track_types"])
        assert not [r for r in process.stats()["requests"] if r["route"] == "tracktype"]


def test_report_errors_skip_each_unexportable_report_once_and_read_the_others(
    base_config, discovered, emulator_now
):
    """R-9: unexportable reports answer 400, 402, 422 or a 200 object: each skipped with one WARNING."""
    with pendo(emulator_now, "report_errors") as (process, truth):
        config = configured(base_config, process)
        run = run_connector("read", config, catalog_for(["report_results", "reports"], discovered=discovered))
        assert_equal_truth(run, truth, config, ["report_results", "reports"])
        refused = {
            r["path"].split("/")[4]
            for r in process.stats()["requests"]
            if r["route"] == "report_results" and r["status"] != 200
        }
        skipped = [w for w in warnings(run) if w.startswith("Skipping report ")]
        exported = {r["reportId"] for r in truth.records("report_results", config)}
        unexportable = {r["id"] for r in truth.records("reports", config)} - exported
        assert refused <= unexportable
        assert sorted(w.split(":")[0].removeprefix("Skipping report ") for w in skipped) == sorted(
            unexportable
        )


@pytest.mark.parametrize("app_ids", [[], [ONE_APP]], ids=["all-apps", "one-app"])
def test_strict_value_forms_every_request_uses_a_production_form(
    base_config, discovered, emulator_now, app_ids
):
    """R-10: only the forms production clients send are accepted (appId strings or expandAppIds("*"))."""
    with pendo(emulator_now, "strict_value_forms") as (process, truth):
        config = configured(base_config, process, app_ids=app_ids)
        assert check_status(config)["status"] == "SUCCEEDED"
        run = run_connector("read", config, catalog_for(ENTITIES, discovered=discovered))
        assert_equal_truth(run, truth, config, ENTITIES)
        assert not [r for r in process.stats()["requests"] if r["status"] in (400, 422)]


def test_rate_limit_403_is_throttling_retried_not_a_rejected_key(base_config, discovered, emulator_now):
    """R-13: a 403 naming a rate limit is retried with backoff; the sync completes with the truth."""
    with pendo(emulator_now, "rate_limit_403") as (process, truth):
        config = configured(base_config, process)
        assert check_status(config)["status"] == "SUCCEEDED"
        process.reset()
        run = run_connector("read", config, catalog_for(ENTITIES, discovered=discovered))
        assert_equal_truth(run, truth, config, ENTITIES)
        assert [r for r in process.stats()["requests"] if r.get("reading") == "rate_limit_403"], (
            "nothing was throttled"
        )


def test_read_only_key_check_and_read_say_the_key_lacks_write_access(base_config, discovered, emulator_now):
    """R-14: a key that can GET but not POST /aggregation: check and read name write access, not a wrong key."""
    with pendo(emulator_now, "read_only_key") as (process, truth):
        config = configured(base_config, process, api_key=f"readonly-{API_KEY}")
        status = check_status(config)
        assert status["status"] == "FAILED"
        assert "lacks write access" in status["message"] and "Allow Write Access" in status["message"], (
            status["message"]
        )

        run = run_connector("read", config, catalog_for(["pages", "accounts"], discovered=discovered))
        assert run.returncode != 0
        message = run.errors()[0]["message"]
        assert run.errors()[0]["failure_type"] == "config_error"
        assert "stream accounts" in message and "lacks write access" in message, message
        assert_records_equal("pages", run.records("pages"), truth.records("pages", config))
