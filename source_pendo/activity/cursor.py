"""Per-app, per-window state for the activity streams, checkpointed after every window.

Why not the CDK's cursors: with a partition router the manifest's DatetimeBasedCursor becomes a
ConcurrentPerPartitionCursor, which emits state at most every 10 minutes (a killed sync loses up to
10 minutes of progress) and starts a partition it has no state for from the global cursor (an app
added to `app_ids` would silently skip its history). This cursor keeps one frontier per app partition
(`*` = all apps in one request when `app_ids` is empty) and emits the whole state after each window.

State (one per stream):
    {"version": 1, "period": "DAY", "start_date": "2024-01-01",
     "apps": {"-323232": {"periodStart": 1709251200000}, ...}}
A frontier F means every bucket starting before F was read after it had closed; the next sync starts
each app at F - lookback. F only moves through windows that completed contiguously from the app's
first window, so state never runs ahead of emitted records, even with windows read in parallel.

Settings changes: a new period fails with a message saying what to reset (day and hour rows cannot
share a table); an earlier start_date re-reads from it; an app new to the state starts at start_date,
or at the `*` frontier when the previous syncs read all apps at once; switching from a list of apps to
all apps re-reads from start_date (apps outside the old list have no history yet).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor, CursorField
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.types import Record, StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..clock import now_ms
from ..pendo import DAY_MS, HOUR_MS

STATE_VERSION = 1
ALL_APPS = "*"
LOGGER = logging.getLogger("airbyte")


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


@dataclass(frozen=True)
class StateContext:
    """The state a stream resumes from, the settings it was saved under, and where new state goes."""

    stream_state: Mapping[str, Any]
    start_date: str  # the config's, saved in the state: an earlier one re-reads from it
    period_sensitive: bool  # rollups: a saved state of another period is a config error
    message_repository: MessageRepository
    connector_state_manager: ConnectorStateManager


class WindowFeedback(Protocol):
    """What a retriever tells the cursor about each window it was given (ActivityCursor implements it)."""

    def observe_window(self, stream_slice: Mapping[str, Any], rows: int) -> None:
        """The window was read with `rows` records: feeds the window-size planner."""

    def release_window(self) -> None:
        """The retriever is done with the window (read or failed): another one may be handed out."""

    def abandon_window(self, stream_slice: Mapping[str, Any]) -> None:
        """The window ends without error but was not read: the state must not move past its start."""


@dataclass
class WindowPlanner:
    """Window sizes for one app: grow after sparse windows, shrink after dense ones, within bounds."""

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

    def observe(self, span: int, rows: int) -> None:
        """Aim at about `target_rows` rows per window; never more than double at a time."""
        wanted = self.size * 2 if rows == 0 else int(span * self.target_rows / rows)
        wanted = min(wanted, self.size * 2)
        self.size = max(self.min_size, min(self.max_size, wanted - wanted % self.min_size or self.min_size))


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


class ActivityCursor(Cursor):
    """Generates (app, window) partitions and keeps the per-app frontier state described above."""

    def __init__(
        self,
        *,
        stream_name: str,
        cursor_field: str,
        partitions: list[str],
        windows: WindowPolicy,
        state_context: StateContext,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._stream_name = stream_name
        self._cursor_field = CursorField(cursor_field)
        self._period = windows.period
        self._start_date = state_context.start_date
        self._start_ms = windows.start_ms
        self._lookback_ms = windows.lookback_ms
        self._settle_ms = windows.settle_ms
        self._min_window = DAY_MS if windows.period == "DAY" else HOUR_MS
        self._initial_window = max(self._min_window, windows.initial_window_ms)
        self._max_window = max(self._min_window, windows.max_window_ms)
        self._target_rows = windows.target_rows
        self._message_repository = state_context.message_repository
        self._state_manager = state_context.connector_state_manager
        self._clock = clock
        self._lock = threading.Lock()
        self._ahead = threading.BoundedSemaphore(max(1, windows.max_windows_ahead))
        self._planners: dict[str, WindowPlanner] = {}
        self._read_started: dict[tuple[str, int], int] = {}
        self._abandoned: set[tuple[str, int]] = set()  # windows ended unread (abandon_window)
        previous = self._migrate(
            dict(state_context.stream_state or {}), partitions, state_context.period_sensitive
        )
        self._progress = {app: AppProgress(begin=0, frontier=frontier) for app, frontier in previous.items()}
        self._partitions = partitions

    # ------------------------------------------------------------------ state
    def _migrate(
        self, state: dict[str, Any], partitions: list[str], period_sensitive: bool
    ) -> dict[str, int | None]:
        """Frontier per app to resume from, after applying the settings-change rules."""
        self._saved_apps: dict[str, Any] = {}
        if not state:
            return {app: None for app in partitions}
        if state.get("version") != STATE_VERSION or not isinstance(state.get("apps"), dict):
            raise AirbyteTracedException(
                message=f"The saved state of stream {self._stream_name} is not in a format this connector version knows. Clear the stream's data (reset it) to sync it from start_date again.",
                internal_message=f"unrecognised state {state!r}",
                failure_type=FailureType.config_error,
            )
        if period_sensitive and state.get("period") not in (None, self._period):
            raise AirbyteTracedException(
                message=(
                    f"The period changed from {state.get('period')} to {self._period} since the last sync of {self._stream_name}. "
                    f"Day rows and hour rows have a different grain and cannot share one table: clear the data of the activity streams "
                    f"(events, feature_events, page_events, track_events) to re-sync them by {self._period}, or set period back to {state.get('period')}."
                ),
                failure_type=FailureType.config_error,
            )
        saved: dict[str, Any] = state["apps"]
        frontiers: dict[str, int | None] = {}
        earlier_start = state.get("start_date") and self._start_date < str(state["start_date"])
        for app in partitions:
            entry = saved.get(app)
            if earlier_start:
                frontiers[app] = None
            elif entry is not None:
                frontiers[app] = int(entry[self._cursor_field.cursor_field_key])
            elif app != ALL_APPS and ALL_APPS in saved:
                frontiers[app] = int(saved[ALL_APPS][self._cursor_field.cursor_field_key])
            else:
                frontiers[app] = None
        if earlier_start:
            LOGGER.info(
                f"{self._stream_name}: start_date moved back to {self._start_date}; re-reading every app from it."
            )
        new_apps = [a for a in partitions if frontiers[a] is None and saved]
        if new_apps and not earlier_start:
            LOGGER.info(
                f"{self._stream_name}: no saved progress for app partition(s) {', '.join(new_apps)}; reading them from start_date."
            )
        self._saved_apps = {k: v for k, v in saved.items() if k not in partitions}
        return frontiers

    @property
    def state(self) -> MutableMapping[str, Any]:
        key = self._cursor_field.cursor_field_key
        apps: dict[str, Any] = dict(self._saved_apps)
        for app, progress in self._progress.items():
            if progress.frontier is not None:
                apps[app] = {key: progress.frontier}
        return {
            "version": STATE_VERSION,
            "period": self._period,
            "start_date": self._start_date,
            "apps": apps,
        }

    @property
    def cursor_field(self) -> CursorField:
        return self._cursor_field

    def _emit_state(self) -> None:
        self._state_manager.update_state_for_stream(self._stream_name, None, self.state)
        self._message_repository.emit_message(
            self._state_manager.create_state_message(self._stream_name, None)
        )

    # ------------------------------------------------------------------ slices
    def stream_slices(self) -> Iterable[StreamSlice]:
        """Windows of every app, round-robin, at most `max_windows_ahead` outstanding at a time."""
        now = self._clock()
        with self._lock:
            for app in self._partitions:
                progress = self._progress[app]
                begin = (
                    self._start_ms
                    if progress.frontier is None
                    else max(self._start_ms, progress.frontier - self._lookback_ms)
                )
                begin -= begin % HOUR_MS
                progress.begin = begin
                self._planners[app] = WindowPlanner(
                    begin, now, self._initial_window, self._min_window, self._max_window, self._target_rows
                )
                span = max(0, now - begin)
                LOGGER.info(
                    f"{self._stream_name}: app {app}: reading {iso_minute(begin)} to {iso_minute(now)} ({span / DAY_MS:.1f} days) in "
                    f"{-(-span // self._max_window)} to {-(-span // self._min_window)} windows (they grow while windows are sparse)"
                )
        active = list(self._partitions)
        while active:
            for app in list(active):
                self._ahead.acquire(timeout=600)  # bounded: a lost release must never hang the sync
                with self._lock:
                    window = self._planners[app].next_window()
                    if window is not None:
                        self._read_started[(app, window[0])] = now
                if window is None:
                    self._ahead.release()
                    active.remove(app)
                    continue
                yield StreamSlice(
                    partition={"app_id": app}, cursor_slice={"start": str(window[0]), "end": str(window[1])}
                )

    def observe_window(self, stream_slice: Mapping[str, Any], rows: int) -> None:
        """Called by the retriever when a window is read: feeds the window-size planner."""
        app = stream_slice["app_id"] if "app_id" in stream_slice else stream_slice.partition["app_id"]  # type: ignore[attr-defined]
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        with self._lock:
            planner = self._planners.get(app)
            if planner is not None:
                planner.observe(end - start, rows)

    def abandon_window(self, stream_slice: Mapping[str, Any]) -> None:
        """A window the retriever ends without reading it (visitor history refused): never completed."""
        app = stream_slice["app_id"] if "app_id" in stream_slice else stream_slice.partition["app_id"]  # type: ignore[attr-defined]
        with self._lock:
            self._abandoned.add((app, int(stream_slice["start"])))

    def close_partition(self, partition: Partition) -> None:
        stream_slice = partition.to_slice()
        assert stream_slice is not None
        app = stream_slice.partition["app_id"]  # type: ignore[attr-defined]
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        with self._lock:
            if (app, start) in self._abandoned:  # not read: the frontier stays before it
                self._abandoned.discard((app, start))
                self._read_started.pop((app, start), None)
                self._emit_state()
                return
            started = self._read_started.pop((app, start), self._clock())
            settled_at = started - self._settle_ms
            settled_at -= settled_at % HOUR_MS
            self._progress[app].complete(start, end, settled_at)
            self._emit_state()

    def release_window(self) -> None:
        """The retriever is done with a window (read or failed): another one may be generated."""
        with contextlib.suppress(ValueError):
            self._ahead.release()

    def ensure_at_least_one_state_emitted(self) -> None:
        with self._lock:
            self._emit_state()

    def observe(self, record: Record) -> None:
        """Records of these streams travel as batches; window completion, not records, moves state."""

    def should_be_synced(self, record: Record) -> bool:
        return True
