"""Retry lines that say what happened: the CDK calls every user-defined backoff a rate limit.

airbyte-cdk's `user_defined_backoff_handler` logs "UserDefinedBackoffException: Rate limit exceeded (HTTP N).
Retrying in S seconds." for every retry a backoff strategy times, whatever N is: a 503, a timeout or a 200
whose body is not Pendo's answer (http/success_first.py) is then reported as a rate limit,
next to the connector's own line naming the real cause. This filter, on the CDK's "airbyte" logger, rewrites
those lines: HTTP 429 stays a rate limit; any other status becomes "Pendo answered HTTP N; retrying in S
seconds". The CDK's wording is pinned by unit_tests/test_cdk_internals.py.
"""

from __future__ import annotations

import logging
import re

CDK_RETRY = re.compile(
    r"^UserDefinedBackoffException: Rate limit exceeded(?: \(HTTP (?P<status>\d+)\))?\. "
    r"Retrying in (?P<seconds>[\d.]+) seconds\.$"
)


class RetryLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        match = CDK_RETRY.match(record.getMessage()) if isinstance(record.msg, str) else None
        if match is None:
            return True
        status, seconds = match.group("status"), match.group("seconds")
        if status == "429":
            record.msg = f"Pendo's rate limit (HTTP 429): retrying in {seconds} seconds."
        elif status is not None:
            record.msg = f"Pendo answered HTTP {status}: retrying in {seconds} seconds."
        else:
            record.msg = f"The request failed: retrying in {seconds} seconds."
        record.args = ()
        return True


def install() -> None:
    """Once per process, on the logger the CDK's retry handlers write to."""
    logger = logging.getLogger("airbyte")
    if not any(isinstance(f, RetryLogFilter) for f in logger.filters):
        logger.addFilter(RetryLogFilter())
