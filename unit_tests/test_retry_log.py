"""Retry lines name what happened (source_pendo/http/retry_log.py), through the CDK's own backoff handler."""

from __future__ import annotations

import logging

import pytest
import requests
from airbyte_cdk.sources.streams.http import rate_limiting
from airbyte_cdk.sources.streams.http.exceptions import UserDefinedBackoffException

from source_pendo.http import retry_log


def _retried_once(
    status: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """One call that the CDK's user-defined backoff handler retries once after an answer with `status`."""
    monkeypatch.setattr(rate_limiting.time, "sleep", lambda seconds: None)
    retry_log.install()
    response = requests.Response()
    response.status_code = status
    calls = []

    @rate_limiting.user_defined_backoff_handler(max_tries=2)
    def send() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise UserDefinedBackoffException(
                backoff=4, request=requests.PreparedRequest(), response=response
            )
        return "answered"

    with caplog.at_level(logging.INFO, logger="airbyte"):
        assert send() == "answered"
    return [r.getMessage() for r in caplog.records if "retrying" in r.getMessage().lower()]


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (429, "Pendo's rate limit (HTTP 429): retrying in 5 seconds."),
        (503, "Pendo answered HTTP 503: retrying in 5 seconds."),
        (200, "Pendo answered HTTP 200: retrying in 5 seconds."),
    ],
)
def test_a_cdk_retry_line_names_the_status_and_calls_only_a_429_a_rate_limit(
    status, line, monkeypatch, caplog
):
    assert _retried_once(status, monkeypatch, caplog) == [line]


def test_other_airbyte_log_lines_pass_unchanged(caplog):
    retry_log.install()
    retry_log.install()  # once per process: a second call adds no second filter
    assert sum(isinstance(f, retry_log.RetryLogFilter) for f in logging.getLogger("airbyte").filters) == 1
    with caplog.at_level(logging.INFO, logger="airbyte"):
        logging.getLogger("airbyte").info("events: %d records", 3)
    assert [r.getMessage() for r in caplog.records] == ["events: 3 records"]
