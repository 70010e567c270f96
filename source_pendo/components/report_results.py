"""A saved report Pendo cannot export answers 404: skip it with a warning naming the report.

Path, Funnel, Retention, Workflows and Data Explorer reports answer 404 on `/report/{id}/results.json`, and
so does a report deleted after the report list was read. Why the manifest cannot say it: an IGNORE filter is
logged by the CDK at INFO only, and a second handler in a CompositeErrorHandler would replace the shared
handler's messages (a composite answers with its last handler's verdict for a failure). So this wraps the
shared error handler and decides the 404 alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import requests
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.sources.types import Config

from ..delegating_error_handler import DelegatingErrorHandler

logger = logging.getLogger("airbyte")

_REPORT_ID = re.compile(r"/report/([^/]+)/results\.json")


@dataclass
class SkipUnexportableReports(DelegatingErrorHandler):
    """`error_handler` (the manifest's shared one) for everything but a 404, which is IGNOREd with a WARNING."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, requests.Response) and response_or_exception.status_code == 404:
            match = _REPORT_ID.search(response_or_exception.url or "")
            logger.warning(
                f"Skipping report {match.group(1) if match else '(unknown id)'}: Pendo has no exportable results "
                "for it (HTTP 404). Path, Funnel, Retention, Workflows and Data Explorer reports cannot be "
                "exported, and a report deleted during the sync answers the same."
            )
            return ErrorResolution(response_action=ResponseAction.IGNORE)
        return self.error_handler.interpret_response(response_or_exception)
