"""The windows of an activity lane (an app partition, or one tag's history): which ones, how big, how far done.

* `WindowPolicy`: which windows a sync reads and how big they may get (built by streams.py from the manifest's
  declaration and the config).
* `WindowPlanner`: the next window of a lane; windows grow after sparse windows and shrink after dense ones,
  aiming at `target_rows` rows each.
* `AppProgress`: the windows of a lane completed in this sync, and the frontier they allow: it moves only
  through windows completed contiguously from the lane's first one, so state never runs ahead of records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airbyte_cdk.sources.types import StreamSlice

# The key of a run of windows: an app partition, or (app partition, object id) for a new tag's history (backfill.py)
LaneKey = str | tuple[str, str]


@dataclass(frozen=True)
class WindowPolicy:
    """Which windows a sync reads, and how big they may get."""

    period: str  # DAY or HOUR: the smallest window, and the grain the state is saved under
    start_ms: int  # no window starts earlier
    lookback_ms: int  # re-read before a saved frontier
    settle_ms: int  # a bucket read less than this after it started may still change
    initial_window_ms: int
    max_window_ms: int
    target_rows: int  # rows per window the planner aims at
    max_windows_ahead: int  # windows handed out and not yet read
    end_ms: int | None = None  # end_date's exclusive end (config.end_ms): no window ends later


@dataclass
class WindowPlanner:
    """Window sizes for one lane, within bounds. With Pendo's count (`next_counted_window`, BEHAVIOR.md §B-22): each
    window is counted before it is handed out, shrunk while it holds more than twice `target_rows`, and the next
    one sized from its density. Without (`next_window`, custom streams): windows grow after sparse windows and
    shrink after dense ones (`observe`)."""

    start: int
    end: int
    size: int
    min_size: int
    max_size: int
    target_rows: int
    next_start: int = field(init=False)

    def __post_init__(self) -> None:
        self.next_start = self.start

    def next_window(self) -> tuple[int, int] | None:
        if self.next_start >= self.end:
            return None
        window = (self.next_start, min(self.end, self.next_start + self.size))
        self.next_start = window[1]
        return window

    def next_counted_window(self, count: Callable[[int, int], int]) -> tuple[int, int, int] | None:
        """The next window and Pendo's count of it (`count(lo, hi)`), or None after the last."""
        if self.next_start >= self.end:
            return None
        lo, size = self.next_start, self.size
        while True:
            hi = min(self.end, lo + size)
            rows = count(lo, hi)
            if rows <= 2 * self.target_rows or hi - lo <= self.min_size:
                break
            size = self._aligned((hi - lo) * self.target_rows // rows)  # at most half the span: it ends
        self.next_start = hi
        self.size = self._aligned(self.max_size if rows == 0 else (hi - lo) * self.target_rows // rows)
        return lo, hi, rows

    def observe(self, span: int, rows: int) -> None:
        """Aim at about `target_rows` rows per window; never more than double at a time."""
        wanted = self.size * 2 if rows == 0 else int(span * self.target_rows / rows)
        self.size = self._aligned(min(wanted, self.size * 2))

    def _aligned(self, size: int) -> int:
        """A size of whole periods, within bounds."""
        return max(self.min_size, min(self.max_size, size - size % self.min_size or self.min_size))


@dataclass
class AppProgress:
    """Windows of one app partition handed out and completed in this sync."""

    begin: int
    frontier: int | None
    completed: dict[int, int] = field(default_factory=dict)  # window start -> window end
    settled: dict[int, int] = field(default_factory=dict)  # window start -> frontier that window allows

    def complete(self, start: int, end: int, settled_at: int) -> None:
        self.completed[start] = end
        self.settled[start] = min(end, settled_at)
        cursor = self.begin
        new_frontier = self.frontier
        while cursor in self.completed:
            new_frontier = max(new_frontier or 0, self.settled[cursor])
            cursor = self.completed[cursor]
        self.frontier = new_frontier


def iso_minute(ms: int) -> str:
    """Epoch ms as `2026-11-23T11:00Z`, for log lines."""
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(ms / 1000))


def lane_of(stream_slice: Mapping[str, Any]) -> LaneKey:
    """The lane a window belongs to: its app partition, or (app partition, object id) for a tag's history."""
    partition = stream_slice.partition if isinstance(stream_slice, StreamSlice) else stream_slice
    app = str(partition["app_id"])
    object_id = partition.get("object_id")
    return app if object_id is None else (app, str(object_id))
