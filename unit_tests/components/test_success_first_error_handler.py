"""The error handler of every request: a 2xx body is left unread for the streaming parse; errors keep their messages."""

from __future__ import annotations

import io

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
    handler = _error_handler()
    for body, action in (
        (b'[{"id": "a"}, {"id": "b"}]', ResponseAction.SUCCESS),
        (b'[{"id": "a"}, {"id"', ResponseAction.RETRY),
    ):
        response = _response(200, body)
        response.headers["Content-Type"] = "application/json"
        assert response.content == body  # read whole, as the CDK client does for a request it does not stream
        assert handler.interpret_response(response).response_action == action
