"""Progress of an activity stream from Pendo's counts: the ESTIMATE the Airbyte UI draws its progress bar from, and
the one line a stream ends with.

Every window starts with Pendo's count of its rows (pager.py), so the rows a stream will emit are known window by
window. The estimate is the rows counted so far plus, for each lane (an app, or one tag's history), the time it
has left to read at the density of the windows it has read: exact once the last window is counted. Sent after
every window as a stream ESTIMATE trace message; the platform shows records emitted against it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteMessage,
    AirbyteTraceMessage,
    EstimateType,
    TraceType,
    Type,
)


@dataclass
class _Lane:
    span: int  # the time the lane reads in this sync, ms
    counted_span: int = 0
    counted: int = 0
    read: int = 0
    windows: int = 0


class StreamProgress:
    """The counts and reads of one stream's windows in this sync (thread-safe)."""

    def __init__(self, stream: str, counted_by_pendo: bool = True) -> None:
        self._stream = stream
        self._counted_by_pendo = (
            counted_by_pendo  # visitor_history: its records are history items Pendo does not count
        )
        self._lock = threading.Lock()
        self._lanes: dict[Any, _Lane] = {}

    def plan(self, lane: Any, span: int) -> None:
        """A lane will read `span` ms in this sync."""
        with self._lock:
            self._lanes[lane] = _Lane(span=max(0, span))

    def observe(self, lane: Any, span: int, counted: int, read: int) -> AirbyteMessage:
        """A window of `span` ms was read: Pendo counted `counted` rows in it, `read` were read. Returns the
        stream's ESTIMATE message."""
        with self._lock:
            entry = self._lanes.setdefault(lane, _Lane(span=span))
            entry.counted_span += span
            entry.counted += counted
            entry.read += read
            entry.windows += 1
            estimate = sum(
                e.counted
                + (e.counted * max(0, e.span - e.counted_span) // e.counted_span if e.counted_span else 0)
                for e in self._lanes.values()
            )
        return AirbyteMessage(
            type=Type.TRACE,
            trace=AirbyteTraceMessage(
                type=TraceType.ESTIMATE,
                emitted_at=time.time() * 1000,
                estimate=AirbyteEstimateTraceMessage(
                    name=self._stream, type=EstimateType.STREAM, row_estimate=estimate
                ),
            ),
        )

    def summary(self) -> str | None:
        """The stream's closing line: its rows against Pendo's count, its windows and lanes; None without any."""
        with self._lock:
            lanes = {key: e for key, e in self._lanes.items() if e.windows}
        if not lanes:
            return None
        counted = sum(e.counted for e in lanes.values())
        read = sum(e.read for e in lanes.values())
        windows = sum(e.windows for e in lanes.values())
        apps = sum(1 for key in lanes if not isinstance(key, tuple))
        tags = len(lanes) - apps
        if not self._counted_by_pendo:
            rows = f"{read:,} rows (each window's active visitors checked against Pendo's count of their events rows)"
        elif read == counted:
            rows = f"{read:,} rows = Pendo's count"
        else:  # more (rows arrived while the sync ran): a shortfall never gets this far (pager.py)
            rows = f"{read:,} rows (Pendo counted {counted:,}; more arrived while the sync ran)"
        parts = [rows, _plural(windows, "window"), _plural(apps, "app")]
        if tags:
            parts.append(_plural(tags, "tag history", "tag histories"))
        return f"{self._stream}: {', '.join(parts)}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"
