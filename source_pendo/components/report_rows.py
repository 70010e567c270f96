"""Rows of one saved report (`GET /report/{id}/results.json`), skipping reports Pendo cannot export.

Path, Funnel, Retention, Workflows and Data Explorer reports answer 404, and so does a report deleted after
the report list was read. The error handler IGNOREs that 404 and the response still reaches the extractor.
Why the manifest cannot say it: the CDK logs an ignored response at INFO only, while a user needs a WARNING
naming the report; and `DpathExtractor` would turn a JSON error body into a record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor

logger = logging.getLogger("airbyte")

_REPORT_ID = re.compile(r"/report/([^/]+)/results\.json")


def _report_id(response: requests.Response) -> str:
    match = _REPORT_ID.search(response.url or "")
    return match.group(1) if match else "?"


@dataclass
class ReportRowsExtractor(RecordExtractor):
    """The JSON array of rows; nothing, with a warning, for a 404 or a body that is not a list of rows."""

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        if response.status_code == 404:
            logger.warning(
                f"Skipping report {_report_id(response)}: Pendo has no exportable results for it (HTTP 404). "
                "Path, Funnel, Retention, Workflows and Data Explorer reports cannot be exported, "
                "and a report deleted during the sync answers the same."
            )
            return
        rows = orjson.loads(response.content)
        if not isinstance(rows, list):
            logger.warning(f"Skipping report {_report_id(response)}: its results are not a list of rows.")
            return
        yield from (row for row in rows if isinstance(row, dict))
