"""The manifest's error handler, except that a 2xx response is a success without its body being read.

Why: when one of a DefaultErrorHandler's response filters matches a response, the CDK renders the
filter's error message with `response.json()` as a template variable, whether or not the message uses it
(HttpResponseFilter.matches -> _create_error_message -> _safe_response_json), and a filter on body text
(`error_message_contains`) parses every body it is asked about. For a successful aggregation response
that means the whole body is downloaded and parsed into Python objects before the retriever sees it:
measured on a 622 MB response, the streaming parse became a whole-body parse (peak RSS 650 MB, a fifth
of the sync's CPU in `json.loads`). Errors are small bodies and still go through every declared filter.

One exception: a JSON body the HTTP client already read whole (a request that is not streamed: REST lists,
entity pages, visitor history) and that does not parse is retried. The connection ended cleanly mid-body,
and the CDK's JSON decoder would otherwise take it for an empty page: records lost, sync green. Streamed
aggregation bodies are never read here; their reader (activity/rows.py) detects the cut itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.requesters.error_handlers.default_error_handler import (
    DefaultErrorHandler,
)
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    SUCCESS_RESOLUTION,
    ErrorResolution,
    ResponseAction,
)

from ..delegating_error_handler import DelegatingErrorHandler
from ..transport import answered

TRUNCATED_BODY = ErrorResolution(
    response_action=ResponseAction.RETRY,
    failure_type=FailureType.transient_error,
    error_message="Pendo's response ended before its JSON did (HTTP 200, truncated body); retrying the request.",
)


@dataclass
class SuccessFirstErrorHandler(DelegatingErrorHandler):
    error_handler: DefaultErrorHandler
    parameters: InitVar[Mapping[str, Any]]

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None = None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response):
            answered(response_or_exception.url)  # a later connection error to this host is transient
        if (
            isinstance(response_or_exception, requests.Response)
            and 200 <= response_or_exception.status_code < 300
        ):
            return TRUNCATED_BODY if _read_json_does_not_parse(response_or_exception) else SUCCESS_RESOLUTION
        return self.error_handler.interpret_response(response_or_exception)


def _read_json_does_not_parse(response: requests.Response) -> bool:
    """A JSON body already read whole that is not JSON. A streamed body (not read yet) is left alone."""
    if not response._content_consumed or "json" not in response.headers.get("Content-Type", ""):
        return False
    try:
        orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return True
    return False
