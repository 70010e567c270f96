"""The saved cursor of the declarative incremental streams (accounts, visitors, the catalogue) as an integer.

Why: their cursors are Pendo's epoch-millisecond times (`lastupdated`, `lastUpdatedAt`), integers in the
records and in the streams' schemas, but the CDK's datetime cursor with `datetime_format: "%ms"` saves its
value as text (`"1779282485335"`). Airbyte expects a state's cursor to have the type of the schema's cursor
field (its acceptance tests compare them). The value is written back as the integer it is; the CDK reads an
integer and the old text form alike (DatetimeParser `%ms` takes `int(value)`), so states saved by earlier
versions still resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def epoch_ms_cursors(streams: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Stream name -> cursor field, for the resolved manifest's streams whose cursor is a `%ms` datetime."""
    cursors: dict[str, str] = {}
    for stream in streams:
        cursor = stream.get("incremental_sync") or {}
        if cursor.get("type") == "DatetimeBasedCursor" and cursor.get("datetime_format") == "%ms":
            cursors[str(stream.get("name"))] = str(cursor.get("cursor_field"))
    return cursors


def with_integer_cursor(message: Any, cursors: Mapping[str, str]) -> Any:
    """A STATE message of one of `cursors`' streams with its cursor value as an integer (digits only)."""
    state = getattr(message, "state", None)
    stream = getattr(state, "stream", None) if state is not None else None
    if stream is None or stream.stream_state is None:
        return message
    field = cursors.get(stream.stream_descriptor.name)
    value = getattr(stream.stream_state, field, None) if field else None
    if field and isinstance(value, str) and value.isascii() and value.isdigit():
        setattr(stream.stream_state, field, int(value))
    return message
