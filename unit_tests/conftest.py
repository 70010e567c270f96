"""Shared unit-test fixtures and hooks.

- The CDK's component schema is parsed once per session (a speed-up, below).
- Every HTTP request a test makes must be mocked: a request no HttpMocker matcher answers fails the test,
  even when the connector swallows the error (the size estimate's `except` would hide it otherwise).
  A test that means to send unanswered requests says so with `@pytest.mark.allow_unmocked_requests`.
- `http_mocker`: the CDK's HttpMocker for plain (parametrized) pytest tests, checked as its decorator checks
  `unittest` methods: every mocked request is called as many times as it has responses.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from airbyte_cdk.sources.declarative import concurrent_declarative_source
from airbyte_cdk.test.mock_http import HttpMocker
from requests_mock.adapter import Adapter
from requests_mock.exceptions import NoMockAddress

ALLOW_UNMOCKED = "allow_unmocked_requests"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{ALLOW_UNMOCKED}: the test sends requests no mock answers, on purpose"
    )


@pytest.fixture(autouse=True, scope="session")
def _component_schema_parsed_once() -> Iterator[None]:
    """Every SourcePendo construction re-parses the CDK's own 6,000-line component schema YAML (~0.1 s);
    it is a pure read of a packaged file, so the tests parse it once."""
    load = concurrent_declarative_source.get_declarative_component_schema
    concurrent_declarative_source.get_declarative_component_schema = functools.cache(load)
    yield
    concurrent_declarative_source.get_declarative_component_schema = load


@pytest.fixture
def http_mocker() -> Iterator[HttpMocker]:
    with HttpMocker() as mocker:
        yield mocker


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[Any]:
    """Fail a test that sent a request no mock matched, whatever the connector did with the error, or that
    left a mocked response of its `http_mocker` unused."""
    unmatched: list[str] = []
    send = Adapter.send

    def recording_send(adapter: Adapter, request: Any, **kwargs: Any) -> Any:
        try:
            return send(adapter, request, **kwargs)
        except NoMockAddress:
            unmatched.append(f"{request.method} {request.url} body={request.body!r}")
            raise

    with patch.object(Adapter, "send", recording_send):
        result = yield
    if unmatched and item.get_closest_marker(ALLOW_UNMOCKED) is None:
        pytest.fail("requests no mock matched:\n  " + "\n  ".join(unmatched), pytrace=False)
    mocker = getattr(item, "funcargs", {}).get("http_mocker")
    if isinstance(mocker, HttpMocker):
        mocker._validate_all_matchers_called()  # what HttpMocker's decorator runs after the test
    return result
