"""The error handler of every request: a 2xx body is left unread for the streaming parse; errors keep their messages."""

from __future__ import annotations

import io
import json

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    HttpRequester as HttpRequesterModel,
)
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ResponseAction

from source_pendo.source import SourcePendo

CONFIG = {"api_key": "k.us", "start_date": "2025-01-01"}


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.raw = io.BytesIO(body)
    response.url = "https://app.pendo.io/api/v1/aggregation"
    return response


def _error_handler():
    """The handler the manifest gives the aggregation requester, built the way the CDK builds it."""
    source = SourcePendo(CONFIG)
    definition = source.resolved_manifest["definitions"]["aggregation_requester"]
    requester = source._constructor.create_component(
        HttpRequesterModel, definition, source._config, name="events"
    )
    return requester.error_handler


def test_aggregation_success_is_not_read_by_the_error_handler():
    handler = _error_handler()
    response = _response(200, b'{"startTime": 1, "results": [' + b'{"visitorId": "v"},' * 1000 + b"{}]}")
    resolution = handler.interpret_response(response)
    assert resolution.response_action == ResponseAction.SUCCESS
    assert response._content_consumed is False  # the body is still there for the streaming reader
    assert response.raw.tell() == 0


def test_aggregation_403_still_gets_the_key_message_as_a_config_error():
    handler = _error_handler()
    resolution = handler.interpret_response(_response(403, b"Forbidden"))
    assert resolution.response_action == ResponseAction.FAIL
    assert resolution.failure_type == FailureType.config_error
    assert "Integration Keys" in resolution.error_message


def test_aggregation_429_is_retried_with_retry_after_first():
    handler = _error_handler()
    assert handler.interpret_response(_response(429, b"")).response_action == ResponseAction.RETRY
    response = _response(429, b"")
    response.headers["Retry-After"] = "3"
    assert handler.backoff_strategies[0].backoff_time(response, 1) == 3
    assert handler.max_retries == 6


def test_a_whole_json_body_that_stops_short_is_retried_a_complete_one_succeeds():
    handler = _get_error_handler()
    for body, action in (
        (b'[{"id": "a"}, {"id": "b"}]', ResponseAction.SUCCESS),
        (b'[{"id": "a"}, {"id"', ResponseAction.RETRY),
    ):
        response = _response(200, body)
        response.headers["Content-Type"] = "application/json"
        assert response.content == body  # read whole, as the CDK client does for a request it does not stream
        assert handler.interpret_response(response).response_action == action


def _get_error_handler():
    """The handler the manifest gives a REST list requester (answer: rows)."""
    source = SourcePendo(CONFIG)
    definition = source.resolved_manifest["definitions"]["get_requester"]
    requester = source._constructor.create_component(
        HttpRequesterModel, definition, source._config, name="segments"
    )
    return requester.error_handler


def _read_whole(status: int, body: bytes, content_type: str, url: str) -> requests.Response:
    response = _response(status, body)
    response.url = url
    response.headers["Content-Type"] = content_type
    response.request = requests.Request("GET", url).prepare()
    assert response.content == body  # read whole, as the CDK client reads a request it does not stream
    return response


@pytest.mark.parametrize(
    "body,content_type,problem",
    [
        (b"<!DOCTYPE html><html><title>Down for maintenance</title></html>", "text/html", "not JSON"),
        (b'[{"id": "a", "name": "Tri', "text/plain", "not JSON"),
        (b'{"error": "internal error, try again"}', "application/json", "a JSON object"),
        (b"", "application/json", "an empty body"),
    ],
    ids=["html", "truncated", "error-object", "empty"],
)
def test_a_rest_list_200_that_is_not_rows_is_retried_three_times_then_fails_naming_request_and_body(
    body, content_type, problem
):
    handler = _get_error_handler()
    url = "https://app.pendo.io/api/v1/segment"
    response = _read_whole(200, body, content_type, url)
    for attempt in (1, 2, 3):
        resolution = handler.interpret_response(response)
        assert resolution.response_action == ResponseAction.RETRY, attempt
        assert f"({attempt} of 3)" in resolution.error_message
    failed = handler.interpret_response(response)
    assert failed.response_action == ResponseAction.FAIL
    assert failed.failure_type == FailureType.transient_error
    for words in ("HTTP 200", "GET /api/v1/segment", "https://app.pendo.io", problem, "4 times"):
        assert words in failed.error_message, (words, failed.error_message)
    # a later request starts counting again, and a list of rows is a success
    assert handler.interpret_response(_read_whole(200, body, content_type, url)).response_action == (
        ResponseAction.RETRY
    )
    ok = _read_whole(200, b'[{"id": "a"}]', "application/json", url)
    assert handler.interpret_response(ok).response_action == ResponseAction.SUCCESS


def test_the_body_quoted_in_the_message_has_the_key_masked_in_every_form():
    handler = _get_error_handler()
    key = CONFIG["api_key"]
    body = f'<html>unknown key {key} or "{json.dumps(key)[1:-1]}"</html>'.encode()
    response = _read_whole(200, body, "text/html", "https://app.pendo.io/api/v1/segment")
    message = handler.interpret_response(response).error_message
    assert key not in message and "****" in message


@pytest.mark.parametrize(
    "body,action",
    [
        (b'{"startTime": 1, "results": [{"accountId": "a"}]}', ResponseAction.SUCCESS),
        (b'{"startTime": 1, "results": null}', ResponseAction.SUCCESS),  # BEHAVIOR.md R-5
        (b'{"error": "internal error"}', ResponseAction.RETRY),
        (b'[{"accountId": "a"}]', ResponseAction.RETRY),
        (b'{"results": "none"}', ResponseAction.RETRY),
        (b"<html>maintenance</html>", ResponseAction.RETRY),
    ],
)
def test_an_entity_aggregation_200_must_be_an_aggregation_answer(body, action):
    handler = _error_handler()
    response = _response(200, body)
    response.headers["Content-Type"] = "application/json"
    response.request = requests.Request("POST", "https://app.pendo.io/api/v1/aggregation").prepare()
    assert response.content == body
    assert handler.interpret_response(response).response_action == action


def test_the_metadata_schema_answer_is_an_object_and_a_list_of_rows_is_not():
    source = SourcePendo(CONFIG)
    stream = next(s for s in source.resolved_manifest["streams"] if s["name"] == "metadata_accounts")
    assert stream["retriever"]["requester"]["error_handler"]["answer"] == "object"
    assert (
        source.resolved_manifest["definitions"]["aggregation_requester"]["error_handler"]["answer"]
        == "results"
    )
