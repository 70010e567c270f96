"""The 400s and 403s whose meaning depends on the body or the request, decided before the declared filters.

Why the manifest cannot say it: an HttpResponseFilter's message sees the parsed JSON body only (Pendo's 400s
are text/plain), not the request, so it cannot quote the answer nor tell an aggregation from a GET. Kept:
the declared "Cannot parse filter" filter, and every other status as declared. Decided here
(source_pendo/http/messages.py has the messages and why, BEHAVIOR.md §R-6, §R-13, §R-14):
- a 403 whose body names a rate limit: throttling, retried with the declared backoff;
- a 403 to `POST /aggregation`: a key without write access (a config error saying so);
- a 400 (not a filter Pendo could not parse): a config error naming the region when the key's suffix
  disagrees with `region`, else a system error quoting the start of the answer and naming stream and request.
And two answers that are exceptions, not responses (source_pendo/http/transport.py):
- a redirect to another origin, refused: a config error naming both origins and `base_url`;
- a refused connection, a host name that does not resolve or an untrusted certificate, while the host never
  answered in this process: a config error naming the cause, `base_url` and `region`, at once (retrying a
  wrong host six times took minutes, logged as rate limiting). Once the host has answered, retried as before.
- a connection accepted and closed without an answer, or left unanswered past the first-answer timeout, while
  the host never answered: retried seconds apart (retry_after.py), then, at transport.MAX_UNANSWERED, an
  error naming the stream, the host, `base_url` and `region` (it took ~6.4 min and named neither, issue 24).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config

from ..settings.config import DEFAULTS
from .delegating import DelegatingErrorHandler
from .messages import (
    aggregation_forbidden,
    is_aggregation,
    is_rate_limited,
    key_suffix_region,
    rejected_request,
    wrong_region,
)
from .transport import (
    FIRST_ANSWER_SECONDS,
    MAX_UNANSWERED,
    RedirectRefused,
    connection_cause,
    has_answered,
    note_unanswered,
    origin_text,
    unanswered_cause,
)

UNPARSED_FILTER = b"Cannot parse filter"

THROTTLED_403 = ErrorResolution(
    response_action=ResponseAction.RETRY,
    failure_type=FailureType.transient_error,
    error_message="Pendo is throttling requests (HTTP 403 naming a rate limit); retrying after a backoff.",
)


@dataclass
class PendoErrors(DelegatingErrorHandler):
    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._stream = str((parameters or {}).get("name") or "(unknown)")

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None = None
    ) -> ErrorResolution:
        response = response_or_exception
        if isinstance(response, RedirectRefused):
            return _failed(str(response), config_error=True)
        if isinstance(response, requests.RequestException):
            cause = connection_cause(response)
            url = str(response.request.url) if response.request is not None and response.request.url else None
            if cause and not has_answered(url):
                return _failed(unreachable(self.config, url, cause), config_error=True)
            silent = unanswered_cause(response)
            if silent and not has_answered(url):
                if note_unanswered(url) >= MAX_UNANSWERED:
                    return _failed(unanswering(self.config, url, silent, self._stream), config_error=True)
                return ErrorResolution(
                    response_action=ResponseAction.RETRY,
                    failure_type=FailureType.transient_error,
                    error_message=f"Pendo at {origin_text(url)} {silent}; retrying in a few seconds.",
                )
        if isinstance(response, requests.Response):
            if response.status_code == 403:
                if is_rate_limited(response):
                    return THROTTLED_403
                if is_aggregation(response):
                    return _failed(
                        aggregation_forbidden(response, self.config, self._stream), config_error=True
                    )
            if response.status_code == 400 and UNPARSED_FILTER not in (response.content or b""):
                if key_suffix_region(self.config):
                    return _failed(wrong_region(self.config), config_error=True)
                return _failed(rejected_request(response, self.config, self._stream), config_error=False)
        return self.error_handler.interpret_response(response_or_exception)


def _failed(message: str, config_error: bool) -> ErrorResolution:
    return ErrorResolution(
        response_action=ResponseAction.FAIL,
        failure_type=FailureType.config_error if config_error else FailureType.system_error,
        error_message=message,
    )


def unreachable(config: Mapping[str, Any], url: str | None, cause: str) -> str:
    """A host that never answered: the cause, and the two settings that choose the host."""
    base_url = str(config.get("base_url") or "").strip()
    return (
        f"Could not connect to Pendo at {origin_text(url)}: {cause}. Check `base_url` "
        f"({origin_text(base_url) if base_url else 'not set'}) and `region` "
        f"({config.get('region') or DEFAULTS['region']}): `base_url` must be empty or the Pendo API host, "
        "reachable from where the connector runs."
    )


def unanswering(config: Mapping[str, Any], url: str | None, cause: str, stream: str) -> str:
    """A host that accepts connections but has not answered one request of this sync."""
    base_url = str(config.get("base_url") or "").strip()
    return (
        f"{stream}: Pendo at {origin_text(url)} {cause}, {MAX_UNANSWERED} times, and has answered no request of "
        f"this sync (a first answer is awaited {FIRST_ANSWER_SECONDS} s at most). Check `base_url` "
        f"({origin_text(base_url) if base_url else 'not set'}) and `region` "
        f"({config.get('region') or DEFAULTS['region']}): a server that accepts connections but never answers is "
        "not the Pendo API (or a proxy in front of it is broken); if they are right, Pendo is unreachable from "
        "where the connector runs: retry later."
    )
