"""The console entry point: spec, and what a bad config prints for check, discover and read."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from builders import API_KEY, ConfigBuilder, get_request, json_response, payload, text_response
from builders import catalog as catalog_for

from source_pendo.run import run

SPEC_PROPERTIES = [
    "api_key",
    "region",
    "base_url",
    "start_date",
    "period",
    "app_ids",
    "include_anonymous_visitors",
    "lookback_window_days",
    "page_size",
    "concurrency",
    "request_timeout_seconds",
    "end_date",
    "filters",
    "custom_aggregations",
    "backfill_new_tags",
    "tag_settle_days",
    "response_deadline_seconds",
    "track_events_lookback_window_days",
]


def _run(*args: str) -> None:
    with patch.object(sys, "argv", ["source-pendo", *args]):
        run()


def _messages(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _config_file(tmp_path: Path, **fields: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(ConfigBuilder().with_(**fields).build()))
    return str(path)


def test_spec_lists_the_options_in_order_each_with_title_and_description(
    capsys: pytest.CaptureFixture,
) -> None:
    _run("spec")

    spec = next(m for m in _messages(capsys.readouterr().out) if m["type"] == "SPEC")["spec"]
    connection = spec["connectionSpecification"]
    properties = connection["properties"]
    assert list(properties) == SPEC_PROPERTIES
    assert [properties[name]["order"] for name in SPEC_PROPERTIES] == list(range(len(SPEC_PROPERTIES)))
    assert all(properties[name]["title"] and properties[name]["description"] for name in SPEC_PROPERTIES)
    assert connection["required"] == ["api_key", "start_date"]
    assert properties["api_key"]["airbyte_secret"] is True


def test_check_with_a_bad_config_prints_a_failed_status_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _run("check", "--config", _config_file(tmp_path, start_date="yesterday"))

    output = capsys.readouterr()
    status = [m["connectionStatus"] for m in _messages(output.out) if m["type"] == "CONNECTION_STATUS"]
    assert status == [
        {
            "status": "FAILED",
            "message": "`start_date` 'yesterday' is not a date: write YYYY-MM-DD or a UTC timestamp such as "
            "2024-01-31T00:00:00Z.",
        }
    ]
    assert "Traceback" not in output.out + output.err


@pytest.mark.parametrize("command", ["discover", "read"])
def test_discover_and_read_with_a_bad_config_print_a_config_error_trace_and_exit_1(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [command, "--config", _config_file(tmp_path, base_url="app.pendo.io")]
    if command == "read":
        catalog = tmp_path / "catalog.json"
        catalog.write_text(json.dumps({"streams": []}))
        args += ["--catalog", str(catalog)]

    with pytest.raises(SystemExit) as exited:
        _run(*args)

    output = capsys.readouterr()
    assert exited.value.code == 1
    errors = [
        m["trace"]["error"]
        for m in _messages(output.out)
        if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
    ]
    assert len(errors) == 1
    assert errors[0]["failure_type"] == "config_error"
    assert errors[0]["message"] == (
        "`base_url` 'app.pendo.io' needs a scheme: write https://app.pendo.io (without /api/v1)."
    )
    assert "Traceback" not in output.out + output.err
    assert API_KEY not in output.out + output.err


def test_read_with_a_rejected_key_never_prints_the_key_even_with_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog_for("pages"))))

    # The stream's ERROR trace is printed; the CDK's closing summary is not repeated as a second one: exit 1.
    with HttpMocker() as http_mocker, pytest.raises(SystemExit) as exited:
        http_mocker.get(get_request("page", expand="*"), text_response("Forbidden", 403))
        _run("read", "--config", _config_file(tmp_path), "--catalog", str(catalog), "--debug")

    output = capsys.readouterr()
    errors = [
        m["trace"]["error"]
        for m in _messages(output.out)
        if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
    ]
    assert exited.value.code == 1
    assert len(errors) == 1 and "Integration Keys" in errors[0]["message"]
    assert API_KEY not in output.out + output.err


def test_spec_answered_from_the_manifest_equals_the_cdk_spec_message(capsys: pytest.CaptureFixture) -> None:
    from airbyte_cdk.entrypoint import AirbyteEntrypoint

    from source_pendo.source import SourcePendo

    _run("spec")
    fast = next(m for m in _messages(capsys.readouterr().out) if m["type"] == "SPEC")
    entrypoint = AirbyteEntrypoint(SourcePendo())
    cdk = [json.loads(line) for line in entrypoint.run(entrypoint.parse_args(["spec"]))]
    assert fast == next(m for m in cdk if m["type"] == "SPEC")


def test_spec_does_not_import_the_cdk() -> None:
    import subprocess

    probe = "import sys; sys.argv = ['source-pendo', 'spec']; from source_pendo.run import run; run(); print('CDK imported' if 'airbyte_cdk' in sys.modules else 'CDK not imported')"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "CDK not imported"
    assert json.loads(out.splitlines()[0])["type"] == "SPEC"


def test_read_prints_one_error_trace_per_stream_and_not_the_cdk_summary_again() -> None:
    from airbyte_cdk.models import FailureType, StreamDescriptor

    from source_pendo.entrypoint import CDK_SUMMARY, PendoEntrypoint
    from source_pendo.source import SourcePendo

    entrypoint = PendoEntrypoint(SourcePendo())

    def trace(stream: str, window: str) -> Any:
        error = AirbyteTracedException(
            message=f"{stream}: broken row in {window}", failure_type=FailureType.system_error
        )
        return error.as_airbyte_message(stream_descriptor=StreamDescriptor(name=stream))

    shown = [
        entrypoint.first_error_only(trace(stream, window))
        for stream, window in [("events", "day 1"), ("events", "day 2"), ("accounts", "all")]
    ]
    assert [m.type.value for m in shown] == ["TRACE", "LOG", "TRACE"]
    assert shown[0].trace.error.failure_type == FailureType.system_error  # the connector's own, kept
    assert shown[1].log.level.value == "ERROR" and "events: broken row in day 2" in shown[1].log.message
    summary = AirbyteTracedException(message="During the sync ...", internal_message=CDK_SUMMARY)
    assert entrypoint.is_reported_summary(summary)
    assert not entrypoint.is_reported_summary(AirbyteTracedException(message="something else"))


def test_read_prints_one_error_trace_for_one_cause_failing_several_streams() -> None:
    """A redirect or a refused connection fails every stream with the same message: one trace, the rest logs."""
    from airbyte_cdk.models import FailureType, StreamDescriptor

    from source_pendo.entrypoint import PendoEntrypoint
    from source_pendo.source import SourcePendo

    entrypoint = PendoEntrypoint(SourcePendo())
    cause = AirbyteTracedException(
        message="Pendo's API answered a redirect", failure_type=FailureType.config_error
    )
    shown = [
        entrypoint.first_error_only(cause.as_airbyte_message(stream_descriptor=StreamDescriptor(name=stream)))
        for stream in ("events", "pages", "accounts")
    ]
    assert [m.type.value for m in shown] == ["TRACE", "LOG", "LOG"]
    assert "Stream pages failed too: Pendo's API answered a redirect" in shown[1].log.message
    assert entrypoint.failed_streams == {"events", "pages", "accounts"}


def test_read_with_a_state_the_stream_cannot_use_prints_one_error_trace_not_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Found by the fuzz test: the activity cursor rejected the state while the streams were built and that error
    escaped `run()` as an exception. It is now the stream's failure when it is read: one ERROR trace naming it."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog_for("events"))))
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            [
                {
                    "type": "STREAM",
                    "stream": {"stream_descriptor": {"name": "events"}, "stream_state": {"version": None}},
                }
            ]
        )
    )
    with pytest.raises(SystemExit) as exited:
        _run("read", "--config", _config_file(tmp_path), "--catalog", str(catalog), "--state", str(state))

    output = capfd.readouterr()
    errors = [
        m["trace"]["error"]
        for m in _messages(output.out)
        if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
    ]
    assert exited.value.code == 1
    assert len(errors) == 1 and "saved state of stream events" in errors[0]["message"]
    assert errors[0]["failure_type"] == "config_error"
    assert errors[0]["stream_descriptor"] == {"name": "events"}
    assert API_KEY not in output.out + output.err


def _two_stream_catalog(tmp_path: Path, *streams: tuple[str, SyncMode]) -> str:
    builder = CatalogBuilder()
    for name, mode in streams:
        builder = builder.with_stream(name, mode)
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(builder.build())))
    return str(path)


def _unusable_events_state(tmp_path: Path) -> str:
    path = tmp_path / "state.json"
    saved = {"version": 1, "period": "DAY", "apps": {"*": {"periodStart": "last tuesday"}}}
    path.write_text(
        json.dumps(
            [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"}, "stream_state": saved}}]
        )
    )
    return str(path)


def test_read_with_one_streams_unusable_state_fails_that_stream_only_and_reads_the_others(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    catalog = _two_stream_catalog(
        tmp_path, ("segments", SyncMode.full_refresh), ("events", SyncMode.incremental)
    )
    with HttpMocker() as http_mocker, pytest.raises(SystemExit) as exited:
        http_mocker.get(get_request("segment"), json_response(payload("segments")))
        _run(
            "read",
            "--config",
            _config_file(tmp_path),
            "--catalog",
            catalog,
            "--state",
            _unusable_events_state(tmp_path),
        )

    messages = _messages(capfd.readouterr().out)
    records = [m["record"]["stream"] for m in messages if m["type"] == "RECORD"]
    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    statuses = {
        m["trace"]["stream_status"]["stream_descriptor"]["name"]: m["trace"]["stream_status"]["status"]
        for m in messages
        if m["type"] == "TRACE" and m["trace"]["type"] == "STREAM_STATUS"
    }
    events_states = [
        m
        for m in messages
        if m["type"] == "STATE" and m["state"]["stream"]["stream_descriptor"]["name"] == "events"
    ]
    assert exited.value.code == 1
    assert records == ["segments"] * len(payload("segments"))
    assert statuses == {"segments": "COMPLETE", "events": "INCOMPLETE"}
    assert len(errors) == 1 and errors[0]["failure_type"] == "config_error"
    assert "saved state of stream events is invalid" in errors[0]["message"]
    assert events_states == [], "an unusable state is never written back"


def test_read_never_judges_the_state_of_a_stream_not_in_the_catalog(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    catalog = _two_stream_catalog(tmp_path, ("segments", SyncMode.full_refresh))
    with HttpMocker() as http_mocker:
        http_mocker.get(get_request("segment"), json_response(payload("segments")))
        _run(
            "read",
            "--config",
            _config_file(tmp_path),
            "--catalog",
            catalog,
            "--state",
            _unusable_events_state(tmp_path),
        )

    messages = _messages(capfd.readouterr().out)
    assert [m for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"] == []
    assert len([m for m in messages if m["type"] == "RECORD"]) == len(payload("segments"))


def test_read_stops_when_a_log_line_of_another_thread_finds_stdout_closed(monkeypatch) -> None:
    """The first write to find stdout closed may be a log line (a reader's, the window planner's): the sync stops
    as when a record finds it (entrypoint.stop_after_stdout_closed), with no "--- Logging error ---" traceback."""
    import logging

    from source_pendo import entrypoint

    class ClosedStream:
        def write(self, text: str) -> None:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

    stops: list[int] = []
    handler = logging.StreamHandler(ClosedStream())
    logger = logging.getLogger()
    logger.addHandler(handler)
    try:
        monkeypatch.setattr(
            entrypoint, "stop_after_stdout_closed", lambda exit_code=1: stops.append(exit_code)
        )
        entrypoint._stop_when_a_log_finds_stdout_closed()
        logger.warning("a line nobody will read")
    finally:
        logger.removeHandler(handler)
    assert stops and set(stops) == {1}
