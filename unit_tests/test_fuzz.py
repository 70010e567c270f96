"""Fuzz (issue 15): config values, state documents and response bodies, through the console entry point.

Every outcome must be one a user can live with: correct records (exit 0, no error trace), or exactly one Airbyte
message naming the problem (`check`: one connection status; `read`: exit 1 and one ERROR trace); never an
exception escaping `run()` (a traceback alone), never the key in any output. The connector runs in-process
(`source_pendo.run.run` with argv, as the `source-pendo` command), every HTTP request answered by a catch-all mock
(no network), the clock pinned. Bounded: a fixed number of examples per property, no deadline, no timing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import requests_mock
from airbyte_cdk.models import ConfiguredAirbyteCatalogSerializer
from builders import NOW_ENV, NOW_MS, catalog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from source_pendo.run import run
from source_pendo.settings.masking import secret_forms
from source_pendo.settings.spec import spec_message

KEY = 'fuzz-k3y"with\\quote-0123456789.us'
BASE = {"api_key": KEY, "start_date": "2024-03-01"}
FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure is reproducible, the run time stable
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
SETTINGS = list(spec_message()["spec"]["connectionSpecification"]["properties"])  # every setting the spec has
configs = st.dictionaries(st.sampled_from(SETTINGS), values, max_size=4).map(
    lambda changed: {**BASE, **changed}
)


def _answer(request: Any, context: Any, body: bytes | None = None) -> bytes:
    """Every request: `body` when given, else an empty but well-formed answer of its kind."""
    context.status_code = 200
    context.headers["Content-Type"] = "application/json"
    if body is not None:
        return body
    if request.method == "POST":
        return b'{"startTime": 0, "results": []}'
    return b"{}" if "/metadata/schema/" in request.path else b"[]"


def _run(
    tmp_path: Path, capfd: pytest.CaptureFixture, command: str, files: dict[str, str]
) -> tuple[int, str]:
    """`source-pendo <command> --<file> ...`: exit code and everything printed (stdout and stderr, fd level:
    record batches are written to the process's stdout directly)."""
    args = [command]
    for name, text in files.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        args += [f"--{name}", str(path)]
    capfd.readouterr()
    code = 0
    with patch.object(sys, "argv", ["source-pendo", *args]), patch("time.sleep"):
        try:
            run()  # anything but SystemExit escaping here is a traceback alone: the test fails
        except SystemExit as exited:
            code = int(exited.code or 0)
    out, err = capfd.readouterr()
    return code, out + err


def _messages(output: str) -> list[dict[str, Any]]:
    messages = []
    for line in output.split("\n"):  # not splitlines(): U+0085 or U+2028 in a JSON string is no line end
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and "type" in message:
            messages.append(message)
    return messages


def _errors(messages: list[dict[str, Any]]) -> list[str]:
    return [
        m["trace"]["error"]["message"]
        for m in messages
        if m["type"] == "TRACE" and m["trace"].get("type") == "ERROR"
    ]


def _assert_no_secret(output: str, config: Any) -> None:
    forms = secret_forms(config) if isinstance(config, dict) else []
    for form in [KEY, *forms]:
        if len(form) >= 8:
            assert form not in output, f"a secret form {form!r} was printed"


def _assert_one_outcome(code: int, output: str) -> list[dict[str, Any]]:
    messages = _messages(output)
    errors = _errors(messages)
    assert "Traceback (most recent call last)" not in output or errors, (
        "a traceback without an Airbyte message"
    )
    if code == 0:
        assert errors == [], f"exit 0 with error traces: {errors}"
    else:
        assert len(errors) == 1, f"exit {code} with {len(errors)} error traces: {errors}"
    return messages


def _catalog(stream: str) -> str:
    return json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog(stream)))


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


@FUZZ
@given(config=configs)
def test_fuzzed_config_gets_one_status_from_check_and_records_or_one_error_from_read(
    config: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    with requests_mock.Mocker() as http:
        http.register_uri(requests_mock.ANY, requests_mock.ANY, content=_answer)
        code, output = _run(tmp_path, capfd, "check", {"config": json.dumps(config)})
        statuses = [m for m in _messages(output) if m["type"] == "CONNECTION_STATUS"]
        assert code == 0 and len(statuses) == 1, (code, output[-2000:])
        _assert_no_secret(output, config)

        code, output = _run(
            tmp_path, capfd, "read", {"config": json.dumps(config), "catalog": _catalog("segments")}
        )
        _assert_one_outcome(code, output)
        _assert_no_secret(output, config)


states = st.one_of(
    values,
    st.fixed_dictionaries(
        {},
        optional={
            "version": values,
            "period": st.one_of(st.sampled_from(["DAY", "HOUR"]), values),
            "start_date": st.one_of(st.just("2024-03-01"), values),
            "include_anonymous_visitors": values,
            "apps": st.one_of(
                values,
                st.dictionaries(
                    st.one_of(st.just("*"), st.text(max_size=8)),
                    st.one_of(values, st.dictionaries(st.just("periodStart"), values, max_size=1)),
                    max_size=2,
                ),
            ),
        },
    ),
)


@FUZZ
@given(stream_state=states, raw=st.booleans())
def test_fuzzed_state_gives_records_or_one_error_naming_it(
    stream_state: Any, raw: bool, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    document = (
        stream_state
        if raw
        else [
            {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": "events"}, "stream_state": stream_state},
            }
        ]
    )
    try:
        text = json.dumps(document)
    except ValueError:  # NaN is not JSON: written as Python writes it, a broken file
        text = json.dumps(document, allow_nan=True)
    with requests_mock.Mocker() as http:
        http.register_uri(requests_mock.ANY, requests_mock.ANY, content=_answer)
        code, output = _run(
            tmp_path,
            capfd,
            "read",
            {"config": json.dumps(BASE), "catalog": _catalog("events"), "state": text},
        )
    _assert_one_outcome(code, output)
    _assert_no_secret(output, BASE)


ROW_FIELDS = ["accountId", "visitorId", "day", "hour", "browserTime", "appId", "metadata", "x"]
bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.lists(st.dictionaries(st.sampled_from(["id", "name", "x"]), scalars, max_size=3), max_size=5).map(
        lambda rows: json.dumps(rows, allow_nan=True).encode()
    ),
)


aggregation_bodies = st.one_of(
    bodies,
    st.fixed_dictionaries(
        {
            "results": st.one_of(
                values, st.lists(st.dictionaries(st.sampled_from(ROW_FIELDS), scalars), max_size=4)
            )
        },
        optional={"startTime": scalars},
    ).map(lambda envelope: json.dumps(envelope, allow_nan=True).encode()),
)


@FUZZ
@given(body=bodies)
def test_fuzzed_response_bodies_give_exactly_their_rows_or_one_error(
    body: bytes, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """segments (a REST list): every request answered `body`."""
    with requests_mock.Mocker() as http:
        http.register_uri(requests_mock.ANY, requests_mock.ANY, content=lambda r, c: _answer(r, c, body))
        code, output = _run(
            tmp_path, capfd, "read", {"config": json.dumps(BASE), "catalog": _catalog("segments")}
        )
    messages = _assert_one_outcome(code, output)
    _assert_no_secret(output, BASE)
    if (
        code == 0
    ):  # the body was a list of rows: every row a record (an empty object has nothing), nothing invented
        rows = json.loads(body)
        assert isinstance(rows, list)
        records = [m["record"]["data"] for m in messages if m["type"] == "RECORD"]
        kept = [r for r in rows if isinstance(r, dict) and r]
        assert [r.get("id") for r in records] == [r.get("id") for r in kept]  # (null values are not printed)


@FUZZ
@given(body=aggregation_bodies, stream=st.sampled_from(["accounts", "events", "guide_events"]))
def test_fuzzed_aggregation_bodies_give_records_or_one_error(
    body: bytes, stream: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """An entity aggregation (accounts) and the streamed activity reader (events, guide_events): every
    aggregation answered `body` (the metadata schema answered `{}`)."""

    def answer(request: Any, context: Any) -> bytes:
        return _answer(request, context, body if request.method == "POST" else None)

    with requests_mock.Mocker() as http:
        http.register_uri(requests_mock.ANY, requests_mock.ANY, content=answer)
        code, output = _run(
            tmp_path, capfd, "read", {"config": json.dumps(BASE), "catalog": _catalog(stream)}
        )
    _assert_one_outcome(code, output)
    _assert_no_secret(output, BASE)
