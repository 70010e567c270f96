"""The manifest's error handler, except that a 2xx response is a success without its body being read.

Why: when one of a DefaultErrorHandler's response filters matches a response, the CDK renders the
filter's error message with `response.json()` as a template variable, whether or not the message uses it
(HttpResponseFilter.matches -> _create_error_message -> _safe_response_json), and a filter on body text
(`error_message_contains`) parses every body it is asked about. For a successful aggregation response
that means the whole body is downloaded and parsed into Python objects before the retriever sees it:
measured on a 622 MB response, the streaming parse became a whole-body parse (peak RSS 650 MB, a fifth
of the sync's CPU in `json.loads`). Errors are small bodies and still go through every declared filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import requests
from airbyte_cdk.sources.declarative.requesters.error_handlers.default_error_handler import (
    DefaultErrorHandler,
)
from airbyte_cdk.sources.streams.http.error_handlers import ErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    SUCCESS_RESOLUTION,
    ErrorResolution,
)


@dataclass
class SuccessFirstErrorHandler(ErrorHandler):
    error_handler: DefaultErrorHandler
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        # HttpRequester hands these to its HttpClient when the handler has them (Retry-After, then backoff).
        self.backoff_strategies = self.error_handler.backoff_strategies

    @property
    def max_retries(self) -> int | None:
        return self.error_handler.max_retries

    @property
    def max_time(self) -> int | None:
        return self.error_handler.max_time

    def interpret_response(self, response_or_exception: requests.Response | Exception | None = None) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and 200 <= response_or_exception.status_code < 300:
            return SUCCESS_RESOLUTION
        return self.error_handler.interpret_response(response_or_exception)
