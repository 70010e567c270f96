"""Hostile servers and broken files (issue 15): each case states the outcome a user needs.

A `HostileProxy` (hostile_proxy.py) sits between the installed connector and the session's emulator and
answers what a broken, hostile or misconfigured server could; `broken_inputs/` holds the broken files. The
outcome asserted is always one of the two a user can live with:

* **exact**: the records emitted are the emulator's ground truth (`invariant.assert_never_lost`), or
* **loud**: a non-zero exit with an Airbyte ERROR trace whose message names the cause or the setting to fix
  (for `check`, a FAILED connection status), never a Python traceback as the only output;

and, always, the integration key in no output (every runner here scans stdout and stderr for it: the
conftest runners, and `run_files` / `_Popen` below, which scan the same way).

Every case of issue 15 passes; docs/development.md's "Faults, case by case" lists each with its test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration_tests.comparison import assert_records_equal
from integration_tests.conftest import (
    API_KEY,
    EMULATOR_TZ,
    ONE_APP,
    ConnectorRun,
    _parsed,
    assert_no_secret,
    catalog_for,
    connector_command,
    run_connector,
    secrets_of,
)
from integration_tests.hostile_proxy import MAINTENANCE_HTML, HostileProxy, RecordingOrigin
from integration_tests.invariant import assert_never_lost
from integration_tests.pendo_emulator import EmulatorProcess
from integration_tests.pendo_emulator.dataset import DAY_MS, SCALES, Dataset
from integration_tests.pendo_emulator.truth import GroundTruth

BROKEN = Path(__file__).parent / "broken_inputs"
TRACEBACK = "Traceback (most recent call last)"
HANG_BOUND_S = 30  # a hang detector, not a performance target: a healthy exit takes one or two seconds


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def proxy(emulator: EmulatorProcess) -> Iterator[HostileProxy]:
    """A fresh proxy in front of the session's emulator (the proxy never changes the emulator's data)."""
    with HostileProxy(emulator.base_url) as hostile:
        yield hostile


@pytest.fixture
def config(base_config: dict[str, Any], proxy: HostileProxy) -> dict[str, Any]:
    return dict(base_config, base_url=proxy.base_url)


@pytest.fixture
def origin() -> Iterator[RecordingOrigin]:
    with RecordingOrigin() as other:
        yield other


def expected(
    truth: GroundTruth, config: dict[str, Any], streams: list[str]
) -> dict[str, list[dict[str, Any]]]:
    return {stream: truth.records(stream, config) for stream in streams}


def run_files(
    command: str,
    files: dict[str, str],
    *,
    secrets: tuple[str, ...] = (),
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> ConnectorRun:
    """The connector with `--config/--state/--catalog` files of exactly this text (broken files cannot go through
    conftest's runners, which write JSON). Output scanned for the key like theirs."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [*connector_command(), command]
        for name, text in files.items():
            path = Path(tmp) / f"{name}.json"
            path.write_text(text)
            args += [f"--{name}", str(path)]
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {})),
        )
    run = _parsed(ConnectorRun(proc.returncode, proc.stdout, proc.stderr))
    assert_no_secret(run.stdout + run.stderr, API_KEY, *secrets)
    return run


def assert_loud(run: ConnectorRun, *words: str, failure_type: str | None = None) -> dict[str, Any]:
    """Non-zero exit, exactly one ERROR trace naming every one of `words`, no traceback as the only output."""
    assert run.returncode != 0, f"exit 0; errors {run.errors()}"
    errors = run.errors()
    assert len(errors) == 1, (
        f"expected one ERROR trace, got {len(errors)}: {[e.get('message') for e in errors]}; stderr {run.stderr[-800:]}"
    )
    [error] = errors
    for word in words:
        assert word in error["message"], f"the error does not name {word!r}: {error['message']}"
    if failure_type:
        assert error["failure_type"] == failure_type, error
    assert TRACEBACK not in run.stderr, "a Python traceback on stderr"
    return error


def assert_failed_check(run: ConnectorRun, *words: str) -> str:
    statuses = [m["connectionStatus"] for m in run.of_type("CONNECTION_STATUS")]
    assert len(statuses) == 1, (
        f"check printed {len(statuses)} connection statuses; stdout {run.stdout[-500:]} stderr {run.stderr[-800:]}"
    )
    assert statuses[0]["status"] == "FAILED", statuses[0]
    for word in words:
        assert word in statuses[0]["message"], (
            f"the check message does not name {word!r}: {statuses[0]['message']}"
        )
    assert TRACEBACK not in run.stdout + run.stderr
    return statuses[0]["message"]


def fill(
    text: str, emulator: EmulatorProcess, base_config: dict[str, Any], base_url: str | None = None
) -> str:
    start_ms = (
        int(time.mktime(time.strptime(base_config["start_date"], "%Y-%m-%d"))) * 1000 - time.timezone * 1000
    )
    return (
        text.replace("{base_url}", base_url or emulator.base_url)
        .replace("{host}", (base_url or emulator.base_url).split("://", 1)[1])
        .replace("{start_date}", base_config["start_date"])
        .replace("{start_ms}", str(start_ms + DAY_MS))
        .replace("{future_ms}", str(emulator.now_ms + 365 * DAY_MS))
    )


def matching(records: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any]:
    """The one ground-truth record an API row became (the fields they share are equal)."""
    found = [
        r
        for r in records
        if all(r[k] == v for k, v in row.items() if k in r and not isinstance(v, (dict, list)))
    ]
    assert len(found) == 1, f"{len(found)} ground-truth records match the changed row {row}"
    return found[0]


# ----------------------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_to_another_origin_never_sends_the_key_there(
    status, proxy, config, origin, truth, discovered
):
    proxy.set_modes(
        [
            {"kind": "redirect", "status": status, "target": origin.base_url, "route": "page"},
            {"kind": "redirect", "status": status, "target": origin.base_url, "route": "aggregation"},
        ]
    )
    streams = ["pages", "events"]
    run = run_connector("read", config, catalog_for(streams, discovered=discovered), timeout=120)
    assert proxy.fired("redirect"), "the redirect was never answered"
    assert origin.keys_received() == [], (
        f"the key went to another origin ({len(origin.keys_received())} requests)"
    )
    assert_never_lost([run], expected(truth, config, streams), lookback_days=1, complete=False)
    if run.returncode != 0:
        assert_loud(run, "redirect")


def test_https_to_http_redirect_never_sends_the_key_in_clear(
    emulator, base_config, origin, truth, discovered
):
    """Real TLS: the proxy serves https with a throw-away certificate the connector trusts (REQUESTS_CA_BUNDLE)."""
    with HostileProxy(emulator.base_url, tls=True) as tls:
        config = dict(base_config, base_url=tls.base_url)
        tls.set_modes([{"kind": "redirect", "status": 302, "target": origin.base_url, "route": "page"}])
        env = {"REQUESTS_CA_BUNDLE": str(tls.ca_bundle)}
        checked = run_connector("check", config, env=env, timeout=60)
        run = run_connector(
            "read", config, catalog_for(["pages"], discovered=discovered), env=env, timeout=120
        )
        assert tls.fired("redirect")
    assert origin.keys_received() == [], "the key was sent over plain http after an https->http redirect"
    assert_failed_check(checked)
    assert_loud(run, "http")


def test_tls_proxy_passes_a_sync_through_unchanged(emulator, base_config, truth, discovered):
    """The instrument itself: with no mode, the TLS proxy is transparent (so the test above tests the redirect)."""
    with HostileProxy(emulator.base_url, tls=True) as tls:
        config = dict(base_config, base_url=tls.base_url)
        run = run_connector(
            "read",
            config,
            catalog_for(["pages", "events"], discovered=discovered),
            env={"REQUESTS_CA_BUNDLE": str(tls.ca_bundle)},
            timeout=120,
        )
    assert_never_lost([run], expected(truth, config, ["pages", "events"]), lookback_days=1)


# ----------------------------------------------------------------------------------------------- time fields

TIME_STREAMS = ["events", "guide_events", "visitor_history"]  # day, browserTime, ts


@pytest.mark.parametrize("form", ["float", "string"])
def test_time_fields_as_integral_float_or_numeric_string_give_exactly_the_ground_truth(
    form, proxy, config, truth, discovered
):
    proxy.set_modes(
        [
            {"kind": "time_fields", "as": form, "route": "aggregation"},
            {"kind": "time_fields", "as": form, "route": "visitor_history"},
        ]
    )
    run = run_connector("read", config, catalog_for(TIME_STREAMS, discovered=discovered), timeout=180)
    assert any(r.get("changed") for r in proxy.fired("time_fields")), "no time field was rewritten"
    assert_never_lost([run], expected(truth, config, TIME_STREAMS), lookback_days=1)


@pytest.mark.parametrize("form", ["remove", "text"])
@pytest.mark.parametrize(
    "stream,route,field",
    [("events", "aggregation", "day"), ("visitor_history", "visitor_history", "ts")],
)
def test_time_field_missing_or_not_a_number_fails_loudly_naming_stream_and_field(
    form, stream, route, field, proxy, config, truth, discovered
):
    proxy.set_modes([{"kind": "time_fields", "as": form, "fields": [field], "route": route}])
    run = run_connector("read", config, catalog_for([stream], discovered=discovered), timeout=180)
    assert any(r.get("changed") for r in proxy.fired("time_fields")), "no time field was rewritten"
    assert_never_lost([run], expected(truth, config, [stream]), lookback_days=1, complete=False)
    assert_loud(run, stream, field)


@pytest.mark.parametrize(
    "form,words",
    [
        ("seconds", ["seconds"]),
        ("micros", ["microseconds"]),
        ("negative", ["-"]),
        ("year_9999", ["253402214400000"]),
        ("1e23", ["99999999999999991611392"]),
    ],
)
@pytest.mark.parametrize(
    "stream,route,field", [("events", "aggregation", "day"), ("visitor_history", "visitor_history", "ts")]
)
def test_activity_time_far_outside_the_window_fails_naming_stream_window_and_value(
    form, words, stream, route, field, proxy, config, truth, discovered
):
    """Times in another unit (all rows) or one row at a negative, year-9999 or 1e23 time: no reading places such
    a row in a neighbouring window, so the sync stops naming it instead of dropping it with exit 0; the state
    never moves past the window (the invariant: nothing before the saved state is missing)."""
    proxy.set_modes([{"kind": "time_fields", "as": form, "fields": [field], "route": route}])
    run = run_connector("read", config, catalog_for([stream], discovered=discovered), timeout=180)
    assert any(r.get("changed") for r in proxy.fired("time_fields")), "no time field was rewritten"
    assert_never_lost([run], expected(truth, config, [stream]), lookback_days=1, complete=False)
    assert_loud(run, stream, field, "window", "far outside", *words)


@pytest.mark.parametrize("form", ["remove", "text"])
def test_guide_events_browser_time_missing_or_not_a_number_are_emitted_as_sent(
    form, proxy, config, truth, discovered
):
    """BEHAVIOR.md §R-20: every guide event answered without an integer `browserTime` (the proxy removes it, or
    writes text) is emitted as sent, each once, and the sync completes (it stopped at the first window before)."""
    proxy.set_modes([{"kind": "time_fields", "as": form, "fields": ["browserTime"], "route": "aggregation"}])
    run = run_connector("read", config, catalog_for(["guide_events"], discovered=discovered), timeout=300)
    assert any(r.get("changed") for r in proxy.fired("time_fields")), "no time field was rewritten"
    assert run.returncode == 0, run.stderr[-3000:]
    sent = [
        {k: v for k, v in r.items() if k != "browserTime"}
        | ({} if form == "remove" else {"browserTime": "yesterday"})
        for r in truth.records("guide_events", config)
    ]
    assert_records_equal("guide_events", run.records("guide_events"), sent)


# ----------------------------------------------------------------------------------------------- non-row 200s

NON_ROW_TARGETS = [
    {"route": "segment"},
    {"route": "report"},
    {"route": "aggregation", "source": "accounts", "body_contains": '"sort"'},
    {"route": "aggregation", "source": "events"},
]
NON_ROW_STREAMS = ["segments", "reports", "accounts", "events"]
NON_ROW_BODIES = {
    "html_maintenance_page": {"body": MAINTENANCE_HTML, "content_type": "text/html"},
    "text_plain_truncated": {"body": None, "truncate_to": 60, "content_type": "text/plain"},
    "json_error_object": {
        "body": json.dumps({"error": "internal error, try again"}),
        "content_type": "application/json",
    },
}


@pytest.mark.parametrize("kind", list(NON_ROW_BODIES))
def test_a_200_that_is_not_rows_is_retried_never_read_as_an_empty_page(
    kind, proxy, config, truth, discovered
):
    """Each target answers the non-row 200 once: a connector that retries reads exactly the truth; one that takes
    it for an empty (or one-row) page loses the rows silently, which the invariant catches."""
    proxy.set_modes(
        [dict(NON_ROW_BODIES[kind], kind="body", times=1, **target) for target in NON_ROW_TARGETS]
    )
    run = run_connector("read", config, catalog_for(NON_ROW_STREAMS, discovered=discovered), timeout=240)
    fired = proxy.fired("body")
    assert sorted(r.get("source") or r["route"] for r in fired) == ["accounts", "events", "report", "segment"]
    assert_never_lost([run], expected(truth, config, NON_ROW_STREAMS), lookback_days=1)


# ----------------------------------------------------------------------------------------------- pages that do not advance


@pytest.fixture(scope="module")
def small(emulator_now: int) -> Iterator[tuple[EmulatorProcess, GroundTruth]]:
    """The `small` scale: enough rows per window that pages are full at the smallest page_size (1,000)."""
    with EmulatorProcess(scale="small", seed=7, now_ms=emulator_now, tz=EMULATOR_TZ) as process:
        yield process, GroundTruth(Dataset(SCALES["small"], 7, emulator_now, EMULATOR_TZ))


def test_a_server_ignoring_the_keyset_is_detected_never_endless_duplicates(small, base_config, discovered):
    emulator, truth = small
    with HostileProxy(emulator.base_url) as hostile:
        config = dict(
            base_config,
            base_url=hostile.base_url,
            period="HOUR",
            page_size=1_000,
            concurrency=1,
            start_date=time.strftime("%Y-%m-%d", time.gmtime(emulator.now_ms / 1000 - 2 * 86400)),
        )
        hostile.set_modes([{"kind": "ignore_keyset", "route": "aggregation"}])
        started = time.monotonic()
        # pages of 50 rows (the windows here hold a few hundred): follow-up pages are asked for, keyset stripped
        run = run_connector(
            "read",
            config,
            catalog_for(["feature_events"], discovered=discovered),
            timeout=180,
            env={"SOURCE_PENDO_TEST_PAGE_SIZE": "50"},
        )
        elapsed = time.monotonic() - started
        stripped = [r for r in hostile.requests if r.get("keyset_stripped")]
    assert stripped, "no follow-up page was asked for: the test did not test the keyset"
    assert elapsed < 120
    # exact stop (exit 0 and exactly the truth) or a loud failure; never the same rows twice
    assert_never_lost([run], expected(truth, config, ["feature_events"]), lookback_days=1, complete=False)
    if run.returncode != 0:
        assert_loud(run, "feature_events")


def test_a_server_capping_entity_answers_below_the_limit_is_paged_at_its_cap_without_loss(
    proxy, config, truth, discovered
):
    """At most 2 rows per accounts answer whatever `limit` says: the probe after the first short page brings
    rows, so the connector pages on with pages of 2 taken as full (BEHAVIOR.md §B-17): exactly the truth, and
    one WARNING naming the cap."""
    proxy.set_modes(
        [
            {
                "kind": "cap",
                "max_rows": 2,
                "route": "aggregation",
                "source": "accounts",
                "body_contains": '"sort"',
            }
        ]
    )
    run = run_connector("read", config, catalog_for(["accounts"], discovered=discovered), timeout=120)
    assert any(r.get("changed") for r in proxy.fired("cap")), "the cap never cut a page"
    assert_never_lost([run], expected(truth, config, ["accounts"]), lookback_days=1)
    assert len([line for line in run.logs() if "caps answers at 2 rows" in line]) == 1


@pytest.mark.parametrize(
    ("stream", "period"), [("events", "DAY"), ("events", "HOUR"), ("guide_events", "DAY")], ids=str
)
def test_a_server_capping_activity_answers_below_the_limit_is_read_on_without_loss(
    proxy, config, truth, discovered, stream, period
):
    """At most 5 rows per answer whatever `limit` says (the windows hold 11 to 28 rows, one visitor at
    most 4 in a day): a short answer at least as long as every earlier one of its lane may be capped, so the
    read goes on after its last row (BEHAVIOR.md §B-17): exactly the truth, and one WARNING naming the cap.
    A cap below one visitor's rows in one period cannot be paged past (the README's Limits)."""
    source = {"events": "events", "guide_events": "guideEvents"}[stream]
    proxy.set_modes([{"kind": "cap", "max_rows": 5, "route": "aggregation", "source": source}])
    config = dict(config, period=period)
    run = run_connector("read", config, catalog_for([stream], discovered=discovered), timeout=120)
    assert any(r.get("changed") for r in proxy.fired("cap")), "the cap never cut a page"
    assert_never_lost([run], expected(truth, config, [stream]), lookback_days=1)
    assert len([line for line in run.logs() if "the server caps answers below `limit`" in line]) == 1


# ----------------------------------------------------------------------------------------------- stdout closed


class _Popen:
    """`read` with stdout as a pipe the test controls; everything read is scanned for the key at the end."""

    def __init__(self, config: dict[str, Any], catalog: dict[str, Any]) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        args = [*connector_command(), "read"]
        for name, payload in (("config", config), ("catalog", catalog)):
            path = Path(self.tmp.name) / f"{name}.json"
            path.write_text(json.dumps(payload))
            args += [f"--{name}", str(path)]
        self.stderr = open(Path(self.tmp.name) / "stderr", "w+")  # noqa: SIM115 - closed in finish()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL
        )
        self.secrets = secrets_of(config)
        self.lines: list[bytes] = []

    def finish(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read()
        self.stderr.close()
        self.tmp.cleanup()
        assert_no_secret(b"".join(self.lines).decode(errors="replace") + err, *self.secrets)
        return err


def test_connector_exits_soon_after_its_stdout_is_closed_mid_sync(config, discovered):
    """Reads three lines, closes the pipe, measures until exit. HANG_BOUND_S (30 s) is a hang detector, not a
    performance assertion: a connector whose reader went away should stop within seconds."""
    config = dict(config, period="HOUR")
    catalog = catalog_for(
        ["events", "feature_events", "page_events", "guide_events", "visitor_history", "accounts"],
        discovered=discovered,
    )
    run = _Popen(config, catalog)
    try:
        assert run.proc.stdout is not None
        for _ in range(3):
            run.lines.append(run.proc.stdout.readline())
        run.proc.stdout.close()
        closed = time.monotonic()
        try:
            run.proc.wait(timeout=HANG_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {HANG_BOUND_S} s after its stdout was closed")
        assert time.monotonic() - closed < HANG_BOUND_S
    finally:
        run.finish()


def test_connector_exits_soon_after_its_stdout_is_closed_with_readers_waiting_on_a_full_batch_gate(
    small, base_config, discovered
):
    """The `small` scale by HOUR, several activity streams in parallel: the test stops reading for a few seconds so
    the pipe and the batch gate fill (readers block on the gate), then closes stdout. Before the fix the readers sat
    out the gate's 120 s timeout, again and again, and the framework's threads kept the process alive."""
    emulator, _ = small
    config = dict(
        base_config,
        base_url=emulator.base_url,
        period="HOUR",
        page_size=1_000,
        start_date=time.strftime("%Y-%m-%d", time.gmtime(emulator.now_ms / 1000 - 3 * 86400)),
    )
    catalog = catalog_for(["events", "feature_events", "page_events", "track_events"], discovered=discovered)
    run = _Popen(config, catalog)
    try:
        assert run.proc.stdout is not None
        while b'"type":"RECORD"' not in (line := run.proc.stdout.readline()):
            assert line, "the sync ended before its first record"
            run.lines.append(line)
        time.sleep(3)  # nobody reads: the pipe fills, the batches in flight reach the gate's limit
        run.proc.stdout.close()
        closed = time.monotonic()
        try:
            code = run.proc.wait(timeout=HANG_BOUND_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {HANG_BOUND_S} s after its stdout was closed")
        assert time.monotonic() - closed < 10, "a reader waited on the batch gate after the writer was gone"
        assert code != 0, "a sync whose output was cut off exited 0"
    finally:
        err = run.finish()
    assert TRACEBACK not in err and "stdout was closed" in err


# ----------------------------------------------------------------------------------------------- Retry-After

RETRY_WAIT = re.compile(r"(?:Retrying in|Sleeping for|waiting) (\d+(?:\.\d+)?) ?s", re.IGNORECASE)
MAX_RETRY_AFTER_S = 600


def test_a_huge_retry_after_is_capped_and_logged_not_slept_for_a_day(config, proxy, discovered):
    """The proxy answers 429 with Retry-After 86400 once. The connector must log a capped wait (<= 600 s) or give up
    with a message; the test reads the log line and kills the run: it never waits for the wait."""
    proxy.set_modes(
        [
            {
                "kind": "status",
                "status": 429,
                "retry_after": 86400,
                "times": 1,
                "route": "aggregation",
                "source": "events",
            }
        ]
    )
    run = _Popen(config, catalog_for(["events"], discovered=discovered))
    waits: list[float] = []
    errors: list[str] = []
    watchdog = threading.Timer(60, lambda: run.proc.poll() is None and run.proc.send_signal(signal.SIGKILL))
    watchdog.start()
    try:
        assert run.proc.stdout is not None
        for line in run.proc.stdout:
            run.lines.append(line)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("type") == "LOG" and (m := RETRY_WAIT.search(message["log"]["message"])):
                waits.append(float(m.group(1)))
                break
            if message.get("type") == "TRACE" and message["trace"].get("type") == "ERROR":
                errors.append(message["trace"]["error"]["message"])
                break
    finally:
        watchdog.cancel()
        run.finish()
    assert proxy.fired("status"), "the 429 was never answered"
    assert waits or errors, "neither a logged wait nor an error within 60 s (a silent sleep)"
    if waits:
        assert waits[0] <= MAX_RETRY_AFTER_S, f"the connector waits {waits[0]} s for one Retry-After"
    else:
        assert "Retry-After" in errors[0]


# ----------------------------------------------------------------------------------------------- secrets

QUOTED_KEY = 'k3y"with-quote\\and-backslash.us'


def escaped_forms(key: str) -> list[str]:
    return [json.dumps(key)[1:-1], json.dumps(json.dumps(key))[1:-1]]


def test_key_echoed_plain_in_an_error_body_is_never_printed(proxy, config, discovered):
    proxy.set_modes([{"kind": "status", "status": 403, "route": "*", "body": "Forbidden: unknown key {key}"}])
    run = run_connector(
        "read",
        config,
        catalog_for(["events", "pages"], discovered=discovered),
        extra_args=["--debug"],
        timeout=120,
    )
    assert proxy.fired("status")
    assert run.returncode != 0 and {e["failure_type"] for e in run.errors()} == {"config_error"}


def key_parts(key: str, shortest: int = 6) -> list[str]:
    """Every run of `shortest` characters of the key: a prefix cut off at any length shows one of them."""
    return [key[i : i + shortest] for i in range(len(key) - shortest + 1)]


@pytest.mark.parametrize(
    "content_type,offset",
    [("text/html", 75), ("text/html", 795), ("application/json", 75), ("application/json", 235)],
)
def test_key_echoed_across_the_cut_of_a_quoted_200_body_leaves_no_part_of_it(
    content_type, offset, proxy, config, truth, discovered
):
    """A 200 page echoing the key where the quoted body is cut (the reader's start of a body, the error
    handler's): the warning masks it whole first; the sync then reads the truth (the page is answered once)."""
    proxy.set_modes(
        [
            {
                "kind": "status",
                "status": 200,
                "content_type": content_type,
                "body": "<html>" + "x" * (offset - 6) + "{key} is not allowed here</html>",
                "route": "aggregation",
                "source": "events",
                "times": 1,
            }
        ]
    )
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered), timeout=180)
    assert proxy.fired("status")
    output = run.stdout + run.stderr
    assert "xxxxxx" in output, "the page was never quoted"
    leaked = [part for part in key_parts(API_KEY) if part in output]
    assert not leaked, f"part of the key is printed: {leaked}"
    assert_never_lost([run], expected(truth, config, ["events"]), lookback_days=1)


def test_key_with_quote_and_backslash_is_masked_in_every_form_even_echoed_json_escaped(
    proxy, config, discovered, base_config
):
    proxy.key_map = {QUOTED_KEY: API_KEY}
    config = dict(config, api_key=QUOTED_KEY)
    proxy.set_modes(
        [
            {
                "kind": "status",
                "status": 403,
                "route": "*",
                "times": None,
                "body": '{"error": "unknown key \\"{key_json}\\""}',
            }
        ]
    )
    echoed = run_connector(
        "read",
        config,
        catalog_for(["events", "pages"], discovered=discovered),
        extra_args=["--debug"],
        timeout=120,
    )
    proxy.set_modes([])
    synced = run_connector(
        "read", config, catalog_for(["pages"], discovered=discovered), extra_args=["--debug"], timeout=120
    )
    assert proxy.fired("status")
    for run in (echoed, synced):  # run_connector scanned the raw key; these are its escaped forms
        for form in escaped_forms(QUOTED_KEY):
            assert form not in run.stdout + run.stderr, f"the key appeared escaped as {form!r}"
    assert synced.returncode == 0 and echoed.returncode != 0


def test_credentials_in_base_url_are_masked_in_every_output(emulator, base_config, discovered):
    text = fill((BROKEN / "config" / "base_url_with_credentials.json").read_text(), emulator, base_config)
    secrets = ("s3cr3t-proxy-pass",)
    checked = run_files("check", {"config": text}, secrets=secrets)
    read = run_files(
        "read",
        {"config": text, "catalog": json.dumps(catalog_for(["pages"], discovered=discovered))},
        secrets=secrets,
    )
    unreachable = run_files(
        "check", {"config": text.replace(emulator.base_url.split("://")[1], "127.0.0.1:1")}, secrets=secrets
    )
    assert (
        checked.of_type("CONNECTION_STATUS")
        and read.returncode in (0, 1)
        and unreachable.of_type("CONNECTION_STATUS")
    )


# ----------------------------------------------------------------------------------------------- big and odd values


@pytest.mark.parametrize(
    "stream,source,field", [("poll_events", "pollEvents", "pollResponse"), ("events", "events", "userAgent")]
)
def test_a_1mb_value_holding_brace_comma_brace_is_emitted_whole(
    stream, source, field, proxy, config, truth, discovered
):
    proxy.set_modes(
        [
            {
                "kind": "big_value",
                "field": field,
                "size": 1 << 20,
                "route": "aggregation",
                "source": source,
            }
        ]
    )
    try:  # a hang detector (the sync takes seconds without the big value), not a performance bound
        run = run_connector(
            "read", config, catalog_for([stream], discovered=discovered), timeout=HANG_BOUND_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the sync did not end within {HANG_BOUND_S} s after a 1 MB value")
    fired, *again = [r for r in proxy.fired("big_value") if r.get("changed")]
    assert all(r["changed"]["row"] == fired["changed"]["row"] for r in again), "one row holds the value"
    want = expected(truth, config, [stream])
    row = fired["changed"]["row"]
    original = matching(want[stream], row)
    want[stream] = [
        dict(r, **{field: fired["changed"]["value"]}) if r is original else r for r in want[stream]
    ]
    assert_never_lost([run], want, lookback_days=1)


LINE_BREAK_STREAMS = ["events", "guide_events", "poll_events"]


def assert_one_message_per_line(run: ConnectorRun) -> None:
    """Airbyte reads one message per stdout line: a line that is not a whole JSON message is a record lost."""
    broken = [line for line in run.stdout.splitlines() if line.strip() and not _is_json(line)]
    assert not broken, f"{len(broken)} stdout lines are not one JSON message, e.g. {broken[0][:200]!r}"


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("style", ["indent", "crlf"])
def test_activity_line_broken_answers_give_exactly_the_ground_truth_one_message_per_line(
    style, proxy, config, truth, discovered
):
    """A pretty-printed answer (line breaks and spaces inside every row) or one with `\\r\\n` between tokens is
    valid JSON: every record arrives, each on its own stdout line."""
    proxy.set_modes([{"kind": "reformat", "style": style, "route": "aggregation"}])
    run = run_connector("read", config, catalog_for(LINE_BREAK_STREAMS, discovered=discovered), timeout=180)
    assert any(r.get("changed") for r in proxy.fired("reformat")), "no answer with rows was reformatted"
    assert_one_message_per_line(run)
    assert_never_lost([run], expected(truth, config, LINE_BREAK_STREAMS), lookback_days=1)


@pytest.mark.parametrize(
    "stream,source,field", [("poll_events", "pollEvents", "pollResponse"), ("events", "events", "userAgent")]
)
def test_activity_escaped_lone_surrogate_arrives_as_replacement_character(
    stream, source, field, proxy, config, truth, discovered
):
    """`"\\ud800"` is valid JSON no UTF-8 output can carry: the row arrives with U+FFFD in its place, exit 0,
    never retried as a broken answer."""
    proxy.set_modes([{"kind": "surrogate", "field": field, "route": "aggregation", "source": source}])
    run = run_connector("read", config, catalog_for([stream], discovered=discovered), timeout=180)
    fired = [r for r in proxy.fired("surrogate") if r.get("changed")]
    assert fired, "no row was given a lone surrogate"
    assert run.returncode == 0, run.errors()
    want = expected(truth, config, [stream])
    original = matching(want[stream], fired[0]["changed"]["row"])
    want[stream] = [dict(r, **{field: "before \ufffd after"}) if r is original else r for r in want[stream]]
    assert_one_message_per_line(run)
    assert_never_lost([run], want, lookback_days=1)


@pytest.mark.parametrize(
    "stream,source",
    [
        ("accounts", "accounts"),
        ("events", "events"),
    ],
)
def test_a_deeply_nested_value_gives_records_or_a_clear_error_never_recursion_error(
    stream, source, proxy, config, truth, discovered
):
    proxy.set_modes(
        [
            {
                "kind": "nested",
                "field": "deep",
                "depth": 100_000,
                "times": 1,
                "route": "aggregation",
                "source": source,
                "body_contains": '"sort"',
            }
        ]
    )
    run = run_connector("read", config, catalog_for([stream], discovered=discovered), timeout=180)
    assert proxy.fired("nested")
    output = run.stdout + run.stderr
    assert "RecursionError" not in output and "maximum recursion depth" not in output
    if run.returncode == 0:
        assert len(run.records(stream)) == len(truth.records(stream, config))
    else:
        assert_loud(run, stream)


def test_two_metadata_fields_mapping_to_one_column_are_both_kept_or_named(proxy, config, discovered):
    proxy.set_modes(
        [
            {
                "kind": "metadata_collision",
                "times": 1,
                "route": "aggregation",
                "source": "accounts",
                "body_contains": '"sort"',
            }
        ]
    )
    run = run_connector("read", config, catalog_for(["accounts"], discovered=discovered), timeout=120)
    assert proxy.fired("metadata_collision")
    if run.returncode != 0:
        assert_loud(run, "metadata_custom_a_b")
        return
    [record] = [r for r in run.records("accounts") if r.get("metadata", {}).get("custom_a")]
    columns = {k: v for k, v in record.items() if k != "metadata"}
    assert {"from custom.a_b", "from custom_a.b"} <= set(map(str, columns.values())), (
        "one of the two values was lost"
    )


# ----------------------------------------------------------------------------------------------- ids in paths


def test_a_report_id_with_dot_dot_slash_is_percent_encoded_in_the_path(proxy, config, truth, discovered):
    report = truth.records("report_results", config)[0]["reportId"]
    proxy.set_modes([{"kind": "hostile_ids", "route": "report", "where": {"id": report}}])
    run = run_connector(
        "read", config, catalog_for(["reports", "report_results"], discovered=discovered), timeout=120
    )
    assert any(r.get("changed") for r in proxy.fired("hostile_ids"))
    paths = [r["path"] for r in proxy.requests]
    assert not [p for p in paths if "/../" in p or p.startswith("/api/v1/" + report)], (
        f"a path was changed by ../: {paths}"
    )
    assert any(f"/report/..%2F{report}/results.json" in p for p in paths), paths
    assert run.returncode in (0, 1)


def test_a_visitor_id_with_dot_dot_slash_is_percent_encoded_in_the_history_path(proxy, config, discovered):
    proxy.set_modes(
        [{"kind": "hostile_ids", "route": "aggregation", "source": "events", "field": "visitorId"}]
    )
    run_connector("read", config, catalog_for(["visitor_history"], discovered=discovered), timeout=120)
    paths = [r["path"] for r in proxy.requests if r["route"] in ("visitor_history", "unknown")]
    assert paths and not [p for p in paths if "/../" in p], paths


# ----------------------------------------------------------------------------------------------- hosts and check


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_connection_refused_names_base_url_within_seconds(base_config, discovered):
    config = dict(base_config, base_url=f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    try:
        run = run_connector(
            "read", config, catalog_for(["pages", "events"], discovered=discovered), timeout=45
        )
    except subprocess.TimeoutExpired:
        pytest.fail("no answer within 45 s")
    assert time.monotonic() - started < 45
    error = assert_loud(run, "`base_url`")
    assert "rate limit" not in error["message"].lower()
    assert not [line for line in run.logs() if "rate limit" in line.lower()], (
        "connection errors logged as rate limits"
    )


# ----------------------------------------------------------------------------------------------- slow, silent, unfinished answers (issue 24)


def test_hostile_a_dripping_answer_stops_at_response_deadline_seconds_naming_it_and_the_host(
    proxy, config, discovered
):
    """One byte every 0.2 s: each read gets bytes (the read timeout never fires), the answer never ends. With a
    deadline of 1 s the answer is asked three times, then the stream stops naming the setting and the host."""
    proxy.set_modes([{"kind": "drip", "route": "aggregation", "interval": 0.2}])
    config = dict(config, response_deadline_seconds=1, concurrency=1)
    run = run_connector("read", config, catalog_for(["events"], discovered=discovered), timeout=HANG_BOUND_S)
    error = assert_loud(
        run, "events: ", "response_deadline_seconds (1 s), 3 times", f"from {proxy.base_url},"
    )
    assert "raise `response_deadline_seconds` only if" in error["message"]
    assert len(proxy.fired("drip")) == 3


def test_hostile_a_host_closing_every_connection_unanswered_fails_in_seconds_naming_base_url(
    proxy, config, discovered
):
    """Accepted, then closed without a byte: three requests a few seconds apart, then one error naming the stream,
    the host and `base_url` (it took ~6.4 min of the CDK's backoff and named neither)."""
    proxy.set_modes([{"kind": "close"}])
    run = run_connector(
        "read",
        dict(config, concurrency=1),
        catalog_for(["events"], discovered=discovered),
        timeout=HANG_BOUND_S,
    )
    assert_loud(
        run,
        f"events: Pendo at {proxy.base_url} accepted the connection and closed it without an answer, 3 times",
        f"Check `base_url` ({proxy.base_url})",
        failure_type="config_error",
    )
    assert len(proxy.requests) == 3


def test_hostile_a_host_that_never_answers_fails_after_the_first_answer_timeout_naming_base_url(
    proxy, config, discovered
):
    """Accepted, then silence: the first answer is awaited FIRST_ANSWER_SECONDS (1 s here, 60 s by default), three
    times, then one error naming `base_url` (with request_timeout_seconds 300 the first error came after minutes)."""
    proxy.set_modes([{"kind": "silent", "seconds": 30}])
    run = run_connector(
        "read",
        dict(config, concurrency=1, request_timeout_seconds=300),
        catalog_for(["events"], discovered=discovered),
        timeout=HANG_BOUND_S,
        env={"SOURCE_PENDO_FIRST_ANSWER_SECONDS": "1"},
    )
    assert_loud(
        run,
        f"events: Pendo at {proxy.base_url} accepted the connection but sent no answer in time, 3 times",
        f"Check `base_url` ({proxy.base_url})",
        failure_type="config_error",
    )
    assert len(proxy.requests) == 3


def test_hostile_a_complete_answer_on_a_connection_held_open_is_read_without_waiting_for_the_close(
    proxy, config, truth, discovered
):
    """Every aggregation answer is a complete JSON document whose chunked body never ends (no last chunk, the
    connection held open): read once each, exactly the truth, no answer taken for broken (it cost the read
    timeout and a retry per answer)."""
    proxy.set_modes([{"kind": "hold_open", "route": "aggregation", "seconds": 120}])
    config = dict(config, request_timeout_seconds=10)
    run = run_connector(
        "read", config, catalog_for(["events"], discovered=discovered), timeout=HANG_BOUND_S * 4
    )
    assert_never_lost([run], expected(truth, config, ["events"]), lookback_days=1)
    assert not [line for line in run.logs() if "broke off" in line], "a complete answer was taken for broken"
    assert len(proxy.fired("hold_open")) == len(proxy.requests)


def test_check_on_a_refused_connection_names_base_url_within_seconds(base_config):
    config = dict(base_config, base_url=f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    run = run_connector("check", config, timeout=60)
    assert time.monotonic() - started < 30
    assert_failed_check(run, "`base_url`")


def test_check_on_a_404_says_the_url_is_wrong(proxy, config):
    proxy.set_modes(
        [{"kind": "status", "status": 404, "route": "*", "body": "Not Found", "content_type": "text/plain"}]
    )
    run = run_connector("check", config, timeout=60)
    message = assert_failed_check(run, "`base_url`")
    assert "may be down" not in message


# ----------------------------------------------------------------------------------------------- broken files

CONFIG_WORDS = {
    "base_url_not_a_string": "`base_url`",
    "region_a_list": "`region`",
    "app_id_5000_digits": "`app_ids`",
    "start_date_year_1": "`start_date`",
}
REJECTED = sorted(
    f"{kind}/{p.stem}"
    for kind in ("config", "state", "catalog")
    for p in (BROKEN / kind).glob("*.json")
    if p.stem
    not in (
        "base_url_with_credentials",
        "key_with_quote_and_backslash",
        "app_id_trailing_newline",
        "legacy_bare_dict",
        "global",
        "cursor_future",
        "cursor_null",
        "cursor_text",
        "cursor_1e300",
    )
)


@pytest.mark.parametrize("case", REJECTED)
def test_a_broken_file_gets_one_airbyte_message_not_a_traceback(case, emulator, base_config, discovered):
    kind, name = case.split("/")
    text = fill((BROKEN / kind / f"{name}.json").read_text(), emulator, base_config)
    files = {
        "config": json.dumps(base_config),
        "catalog": json.dumps(catalog_for(["events"], discovered=discovered)),
    }
    files[kind] = text
    word = CONFIG_WORDS.get(name, "config" if kind == "config" else kind)
    if kind == "config":
        assert_failed_check(run_files("check", {"config": text}, timeout=60), word)
    assert_loud(run_files("read", files, timeout=60), word, failure_type="config_error")


@pytest.mark.parametrize("case", ["cursor_null", "cursor_text", "cursor_1e300"])
def test_an_invalid_cursor_in_the_state_is_a_config_error_naming_the_stream(
    case, emulator, base_config, discovered
):
    text = fill((BROKEN / "state" / f"{case}.json").read_text(), emulator, base_config)
    run = run_files(
        "read",
        {
            "config": json.dumps(base_config),
            "state": text,
            "catalog": json.dumps(catalog_for(["events"], discovered=discovered)),
        },
        timeout=60,
    )
    assert "1e+300" not in run.stdout and "1e300" not in run.stdout, "the absurd cursor was written back"
    assert_loud(run, "events", failure_type="config_error")


@pytest.mark.parametrize("case", ["cursor_future"])
def test_a_cursor_in_the_future_reads_nothing_keeps_the_state_and_warns_never_silently_skipping(
    case, emulator, base_config, discovered
):
    text = fill((BROKEN / "state" / f"{case}.json").read_text(), emulator, base_config)
    run = run_files(
        "read",
        {
            "config": json.dumps(base_config),
            "state": text,
            "catalog": json.dumps(catalog_for(["events"], discovered=discovered)),
        },
        timeout=60,
    )
    assert run.returncode == 0 and TRACEBACK not in run.stderr
    assert run.records("events") == []
    [saved] = json.loads(text)
    assert run.final_state()[0]["stream"]["stream_state"]["apps"] == saved["stream"]["stream_state"]["apps"]
    assert any("after now" in line and "kept as saved" in line for line in run.logs()), (
        "the future cursor was ignored without a warning"
    )


@pytest.mark.parametrize("case", ["legacy_bare_dict", "global"])
def test_a_legacy_or_global_state_is_read_or_rejected_by_name(case, emulator, base_config, truth, discovered):
    """Either the state is understood (exactly the records after its cursor's lookback... here: the invariant on
    the whole truth, counting what the cursor skips as read before), or one config error naming the state."""
    text = fill((BROKEN / "state" / f"{case}.json").read_text(), emulator, base_config)
    run = run_files(
        "read",
        {
            "config": json.dumps(base_config),
            "state": text,
            "catalog": json.dumps(catalog_for(["events"], discovered=discovered)),
        },
        timeout=60,
    )
    assert TRACEBACK not in run.stderr
    if run.returncode != 0:
        assert_loud(run, "state", failure_type="config_error")
        return
    frontier = base_config_start_ms(base_config) + DAY_MS
    begin = frontier - DAY_MS  # one day of lookback
    want = [r for r in truth.records("events", base_config) if r["periodStart"] >= begin]
    got = run.records("events")
    assert len(got) == len(want) or len(got) == len(truth.records("events", base_config)), (
        len(got),
        len(want),
    )


def base_config_start_ms(base_config: dict[str, Any]) -> int:
    return (
        int(time.mktime(time.strptime(base_config["start_date"], "%Y-%m-%d"))) * 1000 - time.timezone * 1000
    )


def test_an_app_id_with_a_trailing_newline_is_trimmed_or_rejected(emulator, base_config, truth, discovered):
    text = fill((BROKEN / "config" / "app_id_trailing_newline.json").read_text(), emulator, base_config)
    catalog = json.dumps(catalog_for(["events"], discovered=discovered))
    checked = run_files("check", {"config": text}, timeout=60)
    run = run_files("read", {"config": text, "catalog": catalog}, timeout=120)
    if run.returncode != 0:
        assert_loud(run, "`app_ids`", failure_type="config_error")
        assert_failed_check(checked, "`app_ids`")
        return
    assert_never_lost(
        [run], expected(truth, dict(base_config, app_ids=[ONE_APP]), ["events"]), lookback_days=1
    )
    partitions = {p for s in run.states() for p in (s["stream"]["stream_state"].get("apps") or {})}
    assert partitions == {ONE_APP}, f"the state keeps the untrimmed id: {partitions}"


# ----------------------------------------------------------------------------------------------- settings changes


def _change(name: str, start_date: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """The two settings of a change; `{start_date}` is a date derived from the pinned clock (never a literal)."""
    spec = json.loads(
        (BROKEN / "settings_changes" / f"{name}.json").read_text().replace("{start_date}", start_date)
    )
    return spec["first"], spec["second"]


def test_turning_anonymous_visitors_on_reads_their_history_or_says_to_reset(base_config, truth, discovered):
    first, second = _change("include_anonymous_visitors_off_then_on")
    streams = ["events", "visitors"]
    catalog = catalog_for(streams, discovered=discovered)
    one = run_connector("read", dict(base_config, **first), catalog, timeout=120)
    two = run_connector("read", dict(base_config, **second), catalog, state=one.final_state(), timeout=120)
    # Each sync against the truth of its own settings: the first one's state rightly claims windows whose
    # anonymous rows it left out (they were not to be read then), so the pair cannot be held to the second truth.
    assert_never_lost([one], expected(truth, dict(base_config, **first), streams), lookback_days=1)
    if two.returncode != 0:
        assert_loud(two, "include_anonymous_visitors")
        return
    # the backfill: the second sync alone emits every record of the new settings, anonymous visitors' included
    assert_never_lost([two], expected(truth, dict(base_config, **second), streams), lookback_days=1)
    assert any("include_anonymous_visitors was turned on" in line for line in two.logs()), (
        "a backfill without a word"
    )


def test_the_same_start_date_written_differently_changes_nothing(base_config, truth, discovered):
    """`<day>T00:00:00Z` then `<day>`, the day taken from the pinned clock (base_config's start_date, 4 days
    before the emulator's now): the same instant, so the second sync resumes inside the lookback."""
    first, second = _change("start_date_timestamp_then_date", base_config["start_date"])
    catalog = catalog_for(["events"], discovered=discovered)
    one = run_connector("read", dict(base_config, **first), catalog, timeout=180)
    two = run_connector("read", dict(base_config, **second), catalog, state=one.final_state(), timeout=180)
    assert_never_lost([one, two], expected(truth, dict(base_config, **second), ["events"]), lookback_days=1)
