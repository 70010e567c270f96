"""`Retry-After` obeyed up to `pendo.MAX_RETRY_AFTER_SECONDS` (600 s), never longer.

Why: the declarative `WaitTimeFromHeader` either sleeps for whatever the header says (a broken or hostile
server answering `Retry-After: 86400` would hold the sync silently for a day) or, with
`max_waiting_time_in_seconds`, fails the stream. A Pendo throttle lasts seconds to minutes; a larger value is
capped, logged with both numbers (asked and waited), and the retry goes ahead after the cap; if the server
still refuses, the declared retries run out and the sync fails naming the throttling.

A connection a host never answered on (closed unanswered, or no answer in time: transport.unanswered_cause), while
that host has answered nothing in this process, is retried after 1, 2, 4 s instead of the exponential backoff:
pendo_errors.py fails it at the third, naming `base_url`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import requests
from airbyte_cdk.sources.declarative.requesters.error_handlers.backoff_strategies.header_helper import (
    get_numeric_value_from_header,
)
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.sources.types import Config

from ..pendo import MAX_RETRY_AFTER_SECONDS
from .transport import has_answered, unanswered_cause

LOGGER = logging.getLogger("airbyte")
HEADER = "Retry-After"


@dataclass
class CappedRetryAfter(BackoffStrategy):
    parameters: InitVar[Mapping[str, Any]]
    config: Config

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._stream = str((parameters or {}).get("name") or "")

    def backoff_time(
        self,
        response_or_exception: requests.Response | requests.RequestException | None,
        attempt_count: int,
    ) -> float | None:
        if isinstance(response_or_exception, requests.RequestException):
            request = response_or_exception.request
            url = str(request.url) if request is not None and request.url else None
            if unanswered_cause(response_or_exception) and not has_answered(url):
                return float(min(2 ** max(attempt_count - 1, 0), 4))  # 1, 2, 4 s: a host never answered
            return None
        if not isinstance(response_or_exception, requests.Response):
            return None
        asked = get_numeric_value_from_header(response_or_exception, HEADER, None)
        if asked is None or asked <= 0:
            return None
        if asked <= MAX_RETRY_AFTER_SECONDS:
            return float(asked)
        LOGGER.warning(
            f"Pendo answered HTTP {response_or_exception.status_code} with {HEADER} {asked:g}"
            f"{f' (stream {self._stream})' if self._stream else ''}, more than the connector's cap of "
            f"{MAX_RETRY_AFTER_SECONDS} s: waiting {MAX_RETRY_AFTER_SECONDS} s before retrying."
        )
        return float(MAX_RETRY_AFTER_SECONDS)
