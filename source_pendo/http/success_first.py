"""The manifest's error handler, except that a 2xx response is a success without its body being read.

Why: when one of a DefaultErrorHandler's response filters matches a response, the CDK renders the
filter's error message with `response.json()` as a template variable, whether or not the message uses it
(HttpResponseFilter.matches -> _create_error_message -> _safe_response_json), and a filter on body text
(`error_message_contains`) parses every body it is asked about. For a successful aggregation response
that means the whole body is downloaded and parsed into Python objects before the retriever sees it:
measured on a 622 MB response, the streaming parse became a whole-body parse (peak RSS 650 MB, a fifth
of the sync's CPU in `json.loads`). Errors are small bodies and still go through every declared filter.

One exception: a 2xx body the HTTP client already read whole (a request that is not streamed: REST lists,
entity and track type pages, visitor history) that is not the answer the request asks for is retried, at
most `NOT_AN_ANSWER_RETRIES` times, then the stream fails naming the request and the start of the body (the
key masked). `answer` (declared per requester in the manifest) says what the answer is: `rows` a JSON array,
`results` an aggregation envelope (an object whose `results` is an array or null, BEHAVIOR.md R-5), `object`
a JSON object; empty: any JSON. Without this, the CDK's JSON decoder takes an HTML maintenance page or a body
cut mid-way for an empty page (records lost, sync green: a full refresh would empty the table), and a JSON
error object such as `{"error": "..."}` for a record. Streamed aggregation bodies are never read here; their
reader (activity/rows.py) detects a cut or foreign body itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
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
from airbyte_cdk.sources.types import Config

from .delegating import DelegatingErrorHandler
from .messages import body_start, request_name
from .transport import answered, origin_text

LOGGER = logging.getLogger("airbyte")
NOT_AN_ANSWER_RETRIES = 3
ANSWERS = {
    "rows": "a JSON array of rows",
    "results": 'an aggregation answer ({"results": [...]})',
    "object": "a JSON object",
    "": "JSON",
}


@dataclass
class SuccessFirstErrorHandler(DelegatingErrorHandler):
    error_handler: DefaultErrorHandler
    parameters: InitVar[Mapping[str, Any]]
    answer: str = ""
    config: Config = field(default_factory=dict)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        if self.answer not in ANSWERS:
            raise ValueError(
                f"SuccessFirstErrorHandler: unknown answer {self.answer!r} ({', '.join(ANSWERS)})"
            )
        # bad answers in a row per request (method, URL, body): the HTTP client retries the same request, but
        # the response's `request` is not always the same object (a test double or a cache makes copies)
        self._attempts: dict[tuple[str, str, Any], int] = {}
        self._lock = threading.Lock()

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None = None
    ) -> ErrorResolution:
        response = response_or_exception
        if isinstance(response, requests.Response):
            answered(response.url)  # a later connection error to this host is transient
            if 200 <= response.status_code < 300:
                return self._success(response)
        return self.error_handler.interpret_response(response_or_exception)

    def _success(self, response: requests.Response) -> ErrorResolution:
        """SUCCESS, unless a body read whole is not the answer: RETRY, and FAIL after NOT_AN_ANSWER_RETRIES."""
        if not response._content_consumed:  # streamed: its reader checks it
            return SUCCESS_RESOLUTION
        problem = not_the_answer(response.content, self.answer)
        request = response.request
        key = (str(request.method), str(request.url), request.body) if request is not None else None
        with self._lock:
            if problem is None:
                self._attempts.pop(key, None)
                return SUCCESS_RESOLUTION
            attempt = (self._attempts.get(key, 0) if key is not None else 0) + 1
            if key is not None and attempt <= NOT_AN_ANSWER_RETRIES:
                self._attempts[key] = attempt
            elif key is not None:
                del self._attempts[key]
        content_type = response.headers.get("Content-Type") or "no Content-Type"
        what = (
            f"Pendo answered HTTP {response.status_code} to {request_name(response)} at "
            f"{origin_text(response.url)} with {problem}, not {ANSWERS[self.answer]} "
            f'({content_type}: "{body_start(response, self.config)}")'
        )
        if attempt <= NOT_AN_ANSWER_RETRIES:
            LOGGER.warning(f"{what}; retrying the request ({attempt} of {NOT_AN_ANSWER_RETRIES}).")
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message=f"{what}; retrying the request ({attempt} of {NOT_AN_ANSWER_RETRIES}).",
            )
        return ErrorResolution(
            response_action=ResponseAction.FAIL,
            failure_type=FailureType.transient_error,
            error_message=(
                f"{what}, {attempt} times in a row. The sync stopped rather than read it as an empty answer; "
                "progress is saved up to the last complete part. Retry the sync later (a maintenance page or a "
                "proxy in the way answers like this); if it persists, check `base_url`."
            ),
        )


def not_the_answer(body: bytes, answer: str) -> str | None:
    """What is wrong with a 2xx body that should be `answer` (see ANSWERS), or None when it is one."""
    if not body.strip():
        return "an empty body"
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "a body that is not JSON (or is cut short)"
    if answer == "rows" and not isinstance(parsed, list):
        return f"a JSON {_kind(parsed)}"
    if answer == "object" and not isinstance(parsed, dict):
        return f"a JSON {_kind(parsed)}"
    if answer == "results":
        if not isinstance(parsed, dict):
            return f"a JSON {_kind(parsed)}"
        if "results" not in parsed:
            return "a JSON object without `results`"
        if parsed["results"] is not None and not isinstance(parsed["results"], list):
            return "a JSON object whose `results` is not an array"
    return None


def _kind(value: Any) -> str:
    return {list: "array", dict: "object", str: "string", bool: "boolean"}.get(type(value), "number or null")
