"""The one place that decides "this answer means: nothing to read here, skip it with a WARNING".

Where Pendo answers that something simply is not there (or cannot be had), the sync goes on without it:
- `/report/{id}/results.json`: Path, Funnel, Retention, Workflows and Data Explorer reports cannot be
  exported, and a report deleted after the report list was read; Pendo answers 404, or another 4xx (400,
  402, 422), or a 200 whose body is an object rather than rows (BEHAVIOR.md §R-9). `skip_client_errors`
  and `skip_non_rows` skip those: any 4xx but 401, 403 and 429 (a key or throttling problem, never a
  per-report one), and a 200 that is not a JSON list;
- `/visitor/{id}/history`: a visitor Pendo no longer knows (404), and the endpoint refusing history
  altogether (400 or 422, BEHAVIOR.md §R-7; `skip_statuses`), after which the retriever stops calling it.
Every other answer goes to the shared error handler. Why the manifest cannot say it: an IGNORE filter is
logged by the CDK at INFO only, and a second handler in a CompositeErrorHandler would replace the shared
handler's messages (a composite answers with its last handler's verdict for a failure). So this wraps the
shared error handler and decides these answers alone; the requester's `warning` names what was skipped,
logged once per distinct text (a warning without an id is logged once per sync).

A skipped response is marked (`skipped`), and `SkippableRows` extracts no records from it: the CDK hands an
IGNOREd response to the record selector, which would otherwise take an error object for a record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import InitVar, dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
import requests
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config

from .delegating import DelegatingErrorHandler

logger = logging.getLogger("airbyte")

SKIPPED = ErrorResolution(response_action=ResponseAction.IGNORE)
NEVER_SKIPPED = (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN, HTTPStatus.TOO_MANY_REQUESTS)
_MARK = "source_pendo_skipped"


def skipped(response: requests.Response) -> bool:
    """Whether SkipNotFound let this response through as "nothing here" (for retrievers that read it)."""
    return bool(getattr(response, _MARK, False))


@dataclass
class SkipNotFound(DelegatingErrorHandler):
    """`error_handler` for everything it does not skip; a skipped answer is IGNOREd after logging `warning`.

    `warning` is a template: `response` is the skipped answer (e.g. `response.url | regex_search(...)` names
    the id, `response.status_code` the status). Skipped: 404 and `skip_statuses`; with `skip_client_errors`
    every 4xx but 401/403/429; with `skip_non_rows` a 2xx whose body is not a JSON list.
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    warning: str
    skip_statuses: list[int] = field(default_factory=list)
    skip_client_errors: bool = False
    skip_non_rows: bool = False

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._warning = InterpolatedString.create(self.warning, parameters=parameters)
        self._statuses = {HTTPStatus.NOT_FOUND, *(int(status) for status in self.skip_statuses)}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None = None
    ) -> ErrorResolution:
        response = response_or_exception
        if isinstance(response, requests.Response) and self._skips(response):
            setattr(response, _MARK, True)
            message = str(self._warning.eval(self.config, response=response))
            with self._lock:
                first = message not in self._warned
                self._warned.add(message)
            if first:
                logger.warning(message)
            return SKIPPED
        return self.error_handler.interpret_response(response_or_exception)

    def _skips(self, response: requests.Response) -> bool:
        status = response.status_code
        if status in self._statuses:
            return True
        if self.skip_client_errors and 400 <= status < 500 and status not in NEVER_SKIPPED:
            return True
        return self.skip_non_rows and 200 <= status < 300 and not _is_row_list(response)


def _is_row_list(response: requests.Response) -> bool:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return True  # not JSON at all: a cut body, SuccessFirstErrorHandler's to retry (it comes next)
    return isinstance(body, list)


@dataclass
class SkippableRows(RecordExtractor):
    """The rows of a body that is a JSON list of objects; nothing from a response SkipNotFound skipped."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def extract_records(self, response: requests.Response) -> Iterable[MutableMapping[Any, Any]]:
        if skipped(response):
            return
        body = orjson.loads(response.content)
        if isinstance(body, list):
            yield from (row for row in body if isinstance(row, dict))
