"""The fault matrix: every fault Pendo (or the network) can throw at a sync, one test each, all held to one rule.

The rule is `invariant.assert_never_lost`: what the syncs of a scenario emitted, before and after the fault,
is exactly the ground truth; nothing twice beyond the lookback window; no state past records not emitted; and
a sync that could not read everything fails loudly (non-zero exit and an ERROR trace) instead of exiting 0.

Faults are switched at run time (`POST /_emulator/faults`) on an emulator of this module's own, with the
session emulator's data and clock, so the ground truth is the session's and the shared emulator is never
disturbed. Every test also asserts that its fault really fired (in the emulator's request log), so none of
them can pass without having been tested. docs/development.md's "Faults, case by case" lists the matrix (the README's Faults section, one line per case).

Backoff without `Retry-After` is the manifest's (7 s, then 13 s, ...): bursts here are one or two faults long.
Faults that must outlast all six retries answer `Retry-After: 1` (RFC 9110 allows it on 503; BEHAVIOR.md §B-3
leaves open whether Pendo sends one), so the retries take seconds, not the six minutes of the real backoff.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from integration_tests.conftest import (
    API_KEY,
    EMULATOR_TZ,
    catalog_for,
    run_connector,
    run_connector_killed_at,
    run_connector_to_file,
)
from integration_tests.invariant import KILLED, Ledger, assert_never_lost
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import DAY_MS, HOUR_MS, SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth, parse_start_ms

# ExponentialBackoffStrategy factor 3: 3 * 2^1 (airbyte_cdk.sources.declarative.requesters.error_handlers.
# backoff_strategies), plus the 1 s airbyte_cdk.sources.streams.http.rate_limiting adds to every wait.
FIRST_BACKOFF_S = 7
RETRY_WAIT = re.compile(r"retrying in (\d+(?:\.\d+)?) seconds", re.IGNORECASE)  # http/retry_log.py's line


@pytest.fixture(scope="module")
def faulty(emulator_now: int) -> Iterator[EmulatorProcess]:
    """This module's emulator: the session's data and clock, faults switched per test."""
    with EmulatorProcess(scale="tiny", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        yield process


@pytest.fixture
def pendo(faulty: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The module's emulator with no faults and an empty request log; cleared again after the test."""
    faulty.reset()
    yield faulty
    faulty.reset()


@pytest.fixture
def config(base_config: dict[str, Any], faulty: EmulatorProcess) -> dict[str, Any]:
    return dict(base_config, base_url=faulty.base_url)


def expected(
    truth: GroundTruth, config: dict[str, Any], streams: list[str]
) -> dict[str, list[dict[str, Any]]]:
    return {stream: truth.records(stream, config) for stream in streams}


def faulted(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    """The requests a fault answered (a body fault counts only if it really cut the body short)."""
    return [r for r in emulator.stats()["requests"] if r.get("fault")]


def later_success_for(emulator: EmulatorProcess, failed: dict[str, Any]) -> dict[str, Any]:
    """The first 200 for the same request (same route, source, path and window) after `failed`."""
    same = ("route", "source", "path", "query", "window")
    requests = emulator.stats()["requests"]
    after = requests[requests.index(failed) + 1 :]
    retry = next(
        (r for r in after if r["status"] == 200 and all(r.get(k) == failed.get(k) for k in same)), None
    )
    assert retry is not None, f"the request answered {failed['status']} was never asked again: {failed}"
    return retry


def waits_logged(run: Any) -> list[float]:
    return [float(m.group(1)) for line in run.logs() if (m := RETRY_WAIT.search(line))]


# ----------------------------------------------------------------------------------------------- throttling


def test_429_with_retry_after_is_retried_no_sooner_than_asked_and_reads_everything(
    pendo, config, truth, discovered
):
    pendo.set_faults(
        [{"kind": "status", "status": 429, "retry_after": 2, "route": "aggregation", "source": "events"}]
    )
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered))
    assert_never_lost([run], expected(truth, config, ["events"]), lookback_days=1)
    [throttled] = faulted(pendo)
    retry = later_success_for(pendo, throttled)
    assert retry["t"] - throttled["t"] >= 2, "came back before Retry-After"
    assert waits_logged(run) == [3.0], (
        "the wait is Retry-After + 1 s (the CDK's WaitTimeFromHeader), not the backoff"
    )


def test_429_without_retry_after_backs_off_then_reads_everything(pendo, config, truth, discovered):
    pendo.set_faults([{"kind": "status", "status": 429, "route": "aggregation", "source": "events"}])
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered))
    assert_never_lost([run], expected(truth, config, ["events"]), lookback_days=1)
    [throttled] = faulted(pendo)
    retry = later_success_for(pendo, throttled)
    assert retry["t"] - throttled["t"] >= FIRST_BACKOFF_S
    assert waits_logged(run) == [float(FIRST_BACKOFF_S)]


# ----------------------------------------------------------------------------------------------- server errors


@pytest.mark.heavy  # ~30 s of real backoff: CI runs it with -m heavy
def test_5xx_bursts_are_retried_then_read_everything(pendo, config, truth, discovered):
    streams = ["events", "page_events", "pages"]
    pendo.set_faults(
        [
            {"kind": "status", "status": 500, "times": 2, "route": "aggregation", "source": "events"},
            {"kind": "status", "status": 502, "times": 2, "route": "aggregation", "source": "pageEvents"},
            {"kind": "status", "status": 503, "times": 2, "route": "page"},
        ]
    )
    run = run_connector("read", config, catalog_for(streams, discovered=discovered))
    assert_never_lost([run], expected(truth, config, streams), lookback_days=1)
    failures = faulted(pendo)
    assert sorted(r["status"] for r in failures) == [500, 500, 502, 502, 503, 503]
    for failure in failures:
        later_success_for(pendo, failure)
    retries = [line for line in run.logs() if "retrying in" in line]
    assert len(retries) == 6 and all(line.startswith("Pendo answered HTTP 50") for line in retries), (
        "each retry names its status; a 5xx is not called a rate limit (http/retry_log.py)"
    )


def test_5xx_outlasting_the_retries_splits_the_window_then_reads_everything(pendo, config, truth, discovered):
    config = dict(config, period="HOUR")
    instant = parse_start_ms(config["start_date"]) + DAY_MS + 5 * HOUR_MS
    # 1 try + 6 retries: the request for the window holding `instant` fails for good, the halves do not
    pendo.set_faults(
        [
            {
                "kind": "status",
                "status": 503,
                "retry_after": 1,
                "times": 7,
                "covers_ms": instant,
                "route": "aggregation",
                "source": "events",
                "counts": False,  # the window's read (its count answers; a count that fails is split the same way)
            }
        ]
    )
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered))
    assert_never_lost([run], expected(truth, config, ["events"]), lookback_days=1)
    failures = faulted(pendo)
    assert len(failures) == 7 and len({tuple(f["window"]) for f in failures}) == 1
    first, last = failures[0]["window"]
    halves = [
        r
        for r in pendo.stats()["requests"]
        if r["status"] == 200 and not r.get("count") and first <= r["window"][0] and r["window"][1] <= last
    ]
    assert len(halves) >= 2 and all(r["window"][1] - r["window"][0] < last - first for r in halves)
    assert any("splitting at" in line for line in run.logs())


@pytest.mark.heavy  # ~20 s of retries: CI runs it with -m heavy
def test_503_that_never_ends_fails_the_sync_without_saving_past_the_window_and_a_rerun_completes(
    pendo, config, truth, discovered
):
    instant = parse_start_ms(config["start_date"]) + 2 * DAY_MS + 7 * HOUR_MS
    pendo.set_faults(
        [
            {
                "kind": "status",
                "status": 503,
                "retry_after": 1,
                "times": None,
                "covers_ms": instant,
                "route": "aggregation",
                "source": "events",
            }
        ]
    )
    catalog = catalog_for(["events"], discovered=discovered)
    failed = run_connector("read", config, catalog)
    assert failed.returncode != 0 and failed.errors(), "a window that cannot be read fails the sync"
    window_start = faulted(pendo)[0]["window"][0]
    frontier = failed.final_state()[0]["stream"]["stream_state"]["apps"]["*"]["periodStart"]
    assert frontier <= window_start, "the state moved past the window that failed"
    assert [r for r in truth.records("events", config) if r["periodStart"] >= window_start], (
        "the window had data"
    )
    pendo.set_faults([])
    rerun = run_connector("read", config, catalog, state=failed.final_state())
    assert_never_lost([failed, rerun], expected(truth, config, ["events"]), lookback_days=1)


# ----------------------------------------------------------------------------------------------- broken bodies


def test_connection_reset_mid_body_resumes_after_the_last_record(pendo, config, truth, discovered):
    config = dict(config, period="HOUR")
    streams = ["page_events", "pages"]
    pendo.set_faults(
        [
            {"kind": "reset", "after_bytes": 4_000, "route": "aggregation", "source": "pageEvents"},
            {"kind": "reset", "after_bytes": 2_000, "route": "page"},
        ]
    )
    run = run_connector("read", config, catalog_for(streams, discovered=discovered))
    assert_never_lost([run], expected(truth, config, streams), lookback_days=1)
    assert sorted(r["route"] for r in faulted(pendo)) == ["aggregation", "page"]


def test_read_timeout_mid_body_resumes_after_the_last_record(pendo, config, truth, discovered):
    config = dict(config, request_timeout_seconds=10)  # the smallest the spec allows
    pendo.set_faults(
        [{"kind": "stall", "after_bytes": 3_000, "delay_s": 14, "route": "aggregation", "source": "events"}]
    )
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered))
    assert_never_lost([run], expected(truth, config, ["events"]), lookback_days=1)
    assert [r["fault"] for r in faulted(pendo)] == ["stall"]


def test_truncated_json_is_detected_and_retried_never_half_emitted(pendo, config, truth, discovered):
    """A well-framed 200 whose JSON stops short: the activity reader resumes after its last whole row; a REST list
    or an entity page (read whole by the CDK, whose decoder would take it for an empty page) is retried."""
    streams = ["events", "pages", "accounts"]
    pendo.set_faults(
        [
            {"kind": "truncate", "after_bytes": 3_000, "route": "aggregation", "source": "events"},
            {"kind": "truncate", "after_bytes": 2_000, "route": "page"},
            # a read of accounts (the body faults leave Pendo's counts alone: the estimate's count is not hit)
            {"kind": "truncate", "after_bytes": 500, "route": "aggregation", "source": "accounts"},
        ]
    )
    run = run_connector("read", config, catalog_for(streams, discovered=discovered))
    assert_never_lost([run], expected(truth, config, streams), lookback_days=1)
    assert sorted(r.get("source") or r["route"] for r in faulted(pendo)) == ["accounts", "events", "page"]


def test_gzip_bodies_are_decoded_to_exactly_the_ground_truth(pendo, config, truth, discovered):
    streams = ["events", "pages", "accounts", "visitor_history"]
    run = run_connector("read", config, catalog_for(streams, discovered=discovered))
    assert_never_lost([run], expected(truth, config, streams), lookback_days=1)
    answered = [r for r in pendo.stats()["requests"] if r["status"] == 200]
    assert answered and all(r["gzip"] for r in answered), (
        "every body came gzip-compressed (so do the fault tests')"
    )


# ----------------------------------------------------------------------------------------------- settings


def test_wrong_region_fails_with_a_config_error_naming_region_and_the_fixed_config_completes(
    pendo, config, truth, discovered
):
    wrong = dict(config, api_key="emulator-key.eu")  # a valid key of the EU subscription, sent to the US host
    checked = run_connector("check", wrong)
    status = checked.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert (
        status["status"] == "FAILED"
        and "`region`" in status["message"]
        and "suggests region eu" in status["message"]
    )
    catalog = catalog_for(["events", "pages"], discovered=discovered)
    failed = run_connector("read", wrong, catalog)
    assert failed.returncode != 0 and not failed.records()
    assert {e["failure_type"] for e in failed.errors()} == {"config_error"}
    assert all("`region`" in e["message"] for e in failed.errors() if "answered 400" in e["message"])
    assert any("answered 400" in e["message"] for e in failed.errors())
    assert {r["status"] for r in pendo.stats()["requests"]} == {400}
    fixed = dict(wrong, region="eu", base_url=config["base_url"] + "/eu")
    rerun = run_connector("read", fixed, catalog)
    assert_never_lost([failed, rerun], expected(truth, config, ["events", "pages"]), lookback_days=1)


def test_invalid_key_fails_with_a_config_error_naming_api_key(pendo, config, discovered):
    rejected = dict(config, api_key="3f0c9a2e-0000-4000-8000-000000000000.us")
    checked = run_connector("check", rejected)
    status = checked.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "`api_key`" in status["message"]
    failed = run_connector("read", rejected, catalog_for(["events", "pages"], discovered=discovered))
    assert_never_lost([failed], {"events": [], "pages": []}, lookback_days=1, complete=False)
    assert failed.returncode != 0 and failed.errors()
    assert {e["failure_type"] for e in failed.errors()} == {"config_error"}
    assert any("`api_key`" in e["message"] and "Integration Keys" in e["message"] for e in failed.errors())
    assert {r["status"] for r in pendo.stats()["requests"]} == {403}


# ----------------------------------------------------------------------------------------------- objects


def test_report_deleted_between_list_and_results_is_skipped_with_a_warning(pendo, config, truth, discovered):
    rows = truth.records("report_results", config)
    deleted = rows[0]["reportId"]  # an exportable report with rows: Pendo deletes it after the list was read
    pendo.set_faults(
        [
            {
                "kind": "status",
                "status": 404,
                "times": None,
                "route": "report_results",
                "path_contains": deleted,
            }
        ]
    )
    streams = ["reports", "report_results"]
    run = run_connector("read", config, catalog_for(streams, discovered=discovered))
    want = expected(truth, config, streams)
    want["report_results"] = [r for r in rows if r["reportId"] != deleted]
    assert_never_lost([run], want, lookback_days=1)
    assert any(deleted in r["path"] for r in faulted(pendo))
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] in ("WARN", "WARNING")]
    assert any(deleted in w and "404" in w for w in warnings), "the skipped report is named in a warning"


# ----------------------------------------------------------------------------------------------- crashes


def test_kill_9_mid_sync_resumes_from_the_last_state_to_exactly_the_truth(pendo, config, truth, discovered):
    config = dict(config, period="HOUR", concurrency=1)
    catalog = catalog_for(["page_events"], discovered=discovered)

    def checkpoint(message: dict[str, Any]) -> bool:  # the first state that saved progress
        return message["type"] == "STATE" and bool(message["state"]["stream"]["stream_state"].get("apps"))

    killed = run_connector_killed_at(checkpoint, config, catalog)
    assert killed.returncode == KILLED
    want = expected(truth, config, ["page_events"])
    assert killed.final_state() and len(killed.records()) < len(want["page_events"]), (
        "killed before the end of the sync"
    )
    resumed = run_connector("read", config, catalog, state=killed.final_state())
    assert_never_lost([killed, resumed], want, lookback_days=1)


# ----------------------------------------------------------------------------------------------- secrets


def test_key_echoed_in_an_error_body_is_never_printed_even_in_debug_mode(pendo, config, discovered):
    pendo.set_faults(
        [
            {
                "kind": "status",
                "status": 403,
                "times": None,
                "route": "*",
                "body": "Forbidden: unknown key {key}",
            }
        ]
    )
    run = run_connector(
        "read", config, catalog_for(["events", "pages"], discovered=discovered), extra_args=["--debug"]
    )
    # run_connector fails the test if the key is anywhere in stdout or stderr; make sure it was there to leak
    assert faulted(pendo) and all(r["status"] == 403 for r in faulted(pendo))
    assert "x-pendo-integration-key" in run.stdout, "debug mode logged the request headers (the key masked)"
    assert run.returncode != 0 and {e["failure_type"] for e in run.errors()} == {"config_error"}


def test_debug_mode_sync_never_prints_the_key(pendo, config, truth, discovered):
    run = run_connector(
        "read", config, catalog_for(["events", "pages"], discovered=discovered), extra_args=["--debug"]
    )
    assert_never_lost([run], expected(truth, config, ["events", "pages"]), lookback_days=1)
    assert "x-pendo-integration-key" in run.stdout and "****" in run.stdout, (
        "headers were logged, the key masked"
    )


# ----------------------------------------------------------------------------------------------- load


@pytest.mark.slow
@pytest.mark.heavy  # the large emulator: ~9-14 GB; kept out of ./scripts/test.sh (see pyproject addopts)
def test_large_sync_with_ten_percent_faults_emits_exactly_the_ground_truth(
    emulator_now, base_config, discovered
):
    """`events` by HOUR over the whole large dataset (45 days, 1.5M rows: its largest rollup), with about one
    request in ten failing: resets and truncations mid-body, stalls past the read timeout, 429s and 503s, each
    from its own seeded coin."""
    seeded = [
        {"kind": "reset", "probability": 0.03, "seed": 1, "after_bytes": 150_000},
        {"kind": "truncate", "probability": 0.03, "seed": 2, "after_bytes": 90_000},
        {"kind": "stall", "probability": 0.01, "seed": 3, "after_bytes": 40_000, "delay_s": 12},
        {"kind": "status", "status": 429, "retry_after": 1, "probability": 0.015, "seed": 4},
        {"kind": "status", "status": 503, "probability": 0.015, "seed": 5},
    ]
    scale = SCALES["large"]
    first_day = (emulator_now // DAY_MS - scale.days) * DAY_MS
    config = dict(
        base_config,
        period="HOUR",
        request_timeout_seconds=10,
        start_date=time.strftime("%Y-%m-%d", time.gmtime(first_day / 1000)),
    )

    def ledger() -> Ledger:
        truth = GroundTruth(Dataset(scale, 7, emulator_now, EMULATOR_TZ))
        return Ledger(expected(truth, config, ["events"]), lookback_days=1)

    with (
        ThreadPoolExecutor(1) as pool,
        EmulatorProcess(scale="large", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as large,
    ):
        building = pool.submit(ledger)  # the same dataset, built here while the emulator builds its index
        warm_up(large, "events", emulator_now)
        large.set_faults([dict(rule, route="aggregation", source="events") for rule in seeded])
        check = building.result()
        with tempfile.TemporaryDirectory() as tmp:
            run = run_connector_to_file(
                Path(tmp) / "stdout",
                dict(config, base_url=large.base_url),
                catalog_for(["events"], discovered=discovered),
            )
            check.feed(run)
        check.finish()
        requests = large.stats()["requests"][1:]  # not the warm-up
    fired = [r for r in requests if r.get("fault")]
    assert len(fired) >= 0.05 * len(requests), f"only {len(fired)} of {len(requests)} requests failed"
    assert {"status", "reset", "truncate"} <= {r["fault"] for r in fired}
    assert len(check.streams["events"].emitted) > 1_000_000


def warm_up(emulator: EmulatorProcess, source: str, now_ms: int) -> None:
    """One small aggregation, so the emulator builds its index of `source` by hour now, not during the sync."""
    body = {
        "response": {"mimeType": "application/json"},
        "request": {
            "pipeline": [
                {
                    "source": {
                        source: {"appId": 'expandAppIds("*")'},
                        "timeSeries": {"period": "hourRange", "first": now_ms - HOUR_MS, "count": 1},
                    }
                }
            ]
        },
    }
    request = urllib.request.Request(
        emulator.base_url + "/api/v1/aggregation",
        data=json.dumps(body).encode(),
        headers={"x-pendo-integration-key": API_KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        assert response.status == 200
