"""The one place that decides "a 404 here means: nothing to read, skip it with a WARNING".

Where Pendo answers 404 for something that simply is not there, the sync goes on without it:
- `/report/{id}/results.json`: Path, Funnel, Retention, Workflows and Data Explorer reports cannot be
  exported, and a report deleted after the report list was read answers the same;
- `/visitor/{id}/history`: a visitor Pendo no longer knows.
Every other 404 stays an error. Why the manifest cannot say it: an IGNORE filter is logged by the CDK at
INFO only, and a second handler in a CompositeErrorHandler would replace the shared handler's messages (a
composite answers with its last handler's verdict for a failure). So this wraps the shared error handler
and decides the 404 alone; the requester's `warning` names what was skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from http import HTTPStatus
from typing import Any

import requests
from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config

from ..delegating_error_handler import DelegatingErrorHandler

logger = logging.getLogger("airbyte")

SKIPPED = ErrorResolution(response_action=ResponseAction.IGNORE)


def skipped(response: requests.Response) -> bool:
    """Whether SkipNotFound let this response through as "nothing here" (for retrievers that read it)."""
    return response.status_code == HTTPStatus.NOT_FOUND


@dataclass
class SkipNotFound(DelegatingErrorHandler):
    """`error_handler` for everything but a 404, which is IGNOREd after logging `warning` at WARNING.

    `warning` is a template: `response` is the 404 (e.g. `response.url | regex_search(...)` names the id).
    """

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    warning: str

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._warning = InterpolatedString.create(self.warning, parameters=parameters)

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None = None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and skipped(response_or_exception):
            logger.warning(str(self._warning.eval(self.config, response=response_or_exception)))
            return SKIPPED
        return self.error_handler.interpret_response(response_or_exception)
