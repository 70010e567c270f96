"""The one date format of the settings (`start_date`, `end_date`, a filter's time): `YYYY-MM-DD` or RFC 3339 UTC.

Its own module because the config's validation (settings/config.py) and the filters' (settings/filters.py) both read it, and
settings/config.py validates the filters: with the parser in either of them the two would import each other.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

EARLIEST_START = "2013-01-01"  # Pendo was founded in 2013: it holds no earlier data
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?Z)?$")


def parse_start_date(value: str) -> datetime:
    """`YYYY-MM-DD` (midnight UTC) or RFC 3339 UTC with a `Z` suffix; ValueError for anything else."""
    if not _DATE.match(value):
        raise ValueError(value)
    if len(value) == 10:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def date_or_none(value: Any) -> datetime | None:
    """`start_date`/`end_date` parsed (the same formats), or None when it is not text in one of them."""
    try:
        return parse_start_date(value) if isinstance(value, str) else None
    except ValueError:
        return None
