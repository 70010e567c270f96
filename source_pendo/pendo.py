"""Facts about Pendo's API that the Python code relies on, each written once and imported where used.

Why one module: the same fact used to be written in several places (the request envelope in four, the
anonymous prefix in several), and a fact kept in two places drifts. manifest.yaml cannot import Python;
its copies (the entity request body, the visitors record filter, the keyset filter's escaping) name this
module in a comment. Config-derived facts (regions, hosts, defaults) stay in settings/config.py.
"""

from __future__ import annotations

from typing import Any

import orjson

# ---------------------------------------------------------------------------------------------- time
HOUR_MS = 3_600_000  # every Pendo timestamp is epoch milliseconds
DAY_MS = 24 * HOUR_MS
HISTORY_DAYS = 179  # Pendo keeps 180 days of visitor history; the oldest day may be partly gone
MAX_WINDOW_MS = 30 * DAY_MS  # Pendo asks aggregation callers to stay at or under 30 days per call
PERIOD_RANGE = {"DAY": "dayRange", "HOUR": "hourRange"}  # `timeSeries.period` of an aggregation source
PERIOD_MS = {"DAY": DAY_MS, "HOUR": HOUR_MS}  # a period's length (a UTC day; a zone's day may be 23 or 25 h)
# The longest wait a `Retry-After` header gets (http/retry_after.py, docs/pendo.md): a larger value
# is capped to this and logged, never obeyed as is (a broken server's `Retry-After: 86400` is not a day's sleep).
MAX_RETRY_AFTER_SECONDS = 600

# ---------------------------------------------------------------------------------------------- ids
ANONYMOUS_PREFIX = "_PENDO_T_"  # visitor ids Pendo generates for visitors the app never identified
ANONYMOUS_PREFIX_BYTES = ANONYMOUS_PREFIX.encode()
EVERY_APP = 'expandAppIds("*")'  # the `appId` of an aggregation source that reads every app
# The parameter of an aggregation source that reads one object's rows (the form tap-pendo sends, BEHAVIOR.md §F-1):
# `{"featureEvents": {"featureId": "<id>"}}`.
OBJECT_ID_PARAM = {"featureEvents": "featureId", "pageEvents": "pageId", "trackEvents": "trackTypeId"}
# The primary key of an `events` rollup row (manifest.yaml's events stream), for visitor history's reads of it.
EVENTS_PRIMARY_KEY = ["appId", "visitorId", "accountId", "server", "remoteIp", "userAgent", "periodStart"]


# ---------------------------------------------------------------------------------------------- requests
def aggregation_body(name: str, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of `POST /aggregation`: the pipeline, named `source-pendo-<name>` in Pendo's logs."""
    return {
        "response": {"mimeType": "application/json"},
        "request": {"name": f"source-pendo-{name}", "pipeline": pipeline},
    }


def literal(value: Any) -> str:
    """A literal in a Pendo filter expression: strings JSON-escaped (`\\"`, `\\\\`), None as "", numbers as is."""
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if value is None:
        return '""'
    return str(value)


def count_in(answer: Any) -> int:
    """The count in an answer to a pipeline ended by `{"count": null}` (BEHAVIOR.md §B-13, §B-22): the sum of the
    `count` of its rows (one row, or one per period when each period runs the pipeline on its own, §R-1;
    `results: null` is none, §R-5). ValueError for anything else: an answer that is not a count is never 0."""
    if not isinstance(answer, dict) or "results" not in answer:
        raise ValueError("not an aggregation answer (no `results`)")
    rows = answer["results"] if answer["results"] is not None else []
    if not isinstance(rows, list):
        raise ValueError("`results` is not a list of rows")
    counts = [row.get("count") if isinstance(row, dict) else None for row in rows]
    if not all(type(c) is int and c >= 0 for c in counts):
        raise ValueError("a row holds no whole-number `count`")
    return sum(c for c in counts if isinstance(c, int))
