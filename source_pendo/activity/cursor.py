"""Per-app, per-window state for the activity streams, checkpointed after every window.

Why not the CDK's cursors: with a partition router the manifest's DatetimeBasedCursor becomes a
ConcurrentPerPartitionCursor, which emits state at most every 10 minutes (a killed sync loses up to
10 minutes of progress) and starts a partition it has no state for from the global cursor (an app
added to `app_ids` would silently skip its history). This cursor keeps one frontier per app partition
(`*` = all apps in one request when `app_ids` is empty) and emits the whole state after each window.

State (one per stream):
    {"version": 1, "period": "DAY", "start_date": "2024-01-01", "include_anonymous_visitors": false,
     "apps": {"-323232": {"periodStart": 1709251200000}, ...}}
The saved state is validated before it is trusted (_valid_apps): a frontier that is not a whole number of
epoch ms, is negative, beyond year 9999 or after now, or an app key that is not an app id or `*`, is one
config_error naming the stream and the key, never read and never written back. App keys are trimmed.
With `backfill_new_tags`, an app's entry also holds `"backfill": {"watermark": <ms>, "objects": {<id>: <ms>}}`,
the history of new or re-ruled tags still being read (backfill.py), checked by TagBackfill.load.
A frontier F means every bucket starting before F was read after it had closed; the next sync starts
each app at F - lookback. F only moves through windows that completed contiguously from the app's
first window, so state never runs ahead of emitted records, even with windows read in parallel.

With `end_date` (WindowPolicy.end_ms) no window ends after it and the frontier stops there; once an app's
frontier has reached it, later syncs read nothing for that app (no lookback either).

Settings changes: a new period fails with a message saying what to reset (day and hour rows cannot
share a table); an earlier start_date re-reads from it (instants are compared: 2024-01-01 and
2024-01-01T00:00:00Z are one start); include_anonymous_visitors turned on since the last sync (the state
saves it) re-reads every app from start_date, a backfill of the anonymous rows the earlier syncs left out; an app new to the state starts at start_date,
or at the `*` frontier when the previous syncs read all apps at once; switching from a list of apps to
all apps re-reads from start_date (apps outside the old list have no history yet); changed `filters` (the
state saves their fingerprint under "filters") re-read every app from start_date, with a WARNING that says
so and how to drop rows the new filters leave out.
"""

from __future__ import annotations

import contextlib
import json
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
from ..settings.config import is_app_id
from ..settings.dates import parse_start_date
from .answers import AnswerLedger, WindowAnswers
from .backfill import BACKFILL_KEY, LANE_INITIAL_WINDOW_MS, TagBackfill

STATE_VERSION = 1
ALL_APPS = "*"
ANONYMOUS_KEY = "include_anonymous_visitors"
FILTERS_KEY = "filters"  # the stream's filters fingerprint, only when it has conditions
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: no epoch-ms time is later
LOGGER = logging.getLogger("airbyte")
# The key of a run of windows: an app partition, or (app partition, object id) for a new tag's history (backfill.py)
LaneKey = str | tuple[str, str]


def _shown(value: Any) -> str:
    """A saved value as JSON for a message, cut short (a corrupted state may hold anything)."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:40] + "…"


def _instant(date: str) -> float:
    return parse_start_date(date).timestamp()


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


@dataclass(frozen=True)
class StateContext:
    """The state a stream resumes from, the settings it was saved under, and where new state goes."""

    stream_state: Mapping[str, Any]
    start_date: str  # the config's, saved in the state: an earlier one re-reads from it
    period_sensitive: bool  # rollups: a saved state of another period is a config error
    message_repository: MessageRepository
    connector_state_manager: ConnectorStateManager
    # The config's include_anonymous_visitors, saved in the state: turned on since, every app is re-read
    include_anonymous: bool = False
    # The fingerprint of the stream's `filters` (filters.StreamFilter), saved in the state: changed since, every
    # app is re-read from start_date; `filters_summary` says what the conditions are now, for the log line
    filters: str | None = None
    filters_summary: str = ""


class WindowFeedback(Protocol):
    """What a retriever tells the cursor about each window it was given (ActivityCursor implements it)."""

    def observe_window(self, stream_slice: Mapping[str, Any], rows: int) -> None:
        """The window was read with `rows` records: feeds the window-size planner."""

    def release_window(self) -> None:
        """The retriever is done with the window (read or failed): another one may be handed out."""

    def abandon_window(self, stream_slice: Mapping[str, Any]) -> None:
        """The window ends without error but was not read: the state must not move past its start."""

    def stop_windows(self) -> None:
        """A window failed (the stream fails): hand out no more windows; the ones being read end as they do."""

    def window_answers(self, stream_slice: Mapping[str, Any]) -> WindowAnswers:
        """The window's place among the answer sizes of its lane (answers.py: whether a short page may be capped)."""


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
        backfill: TagBackfill | None = None,
    ) -> None:
        self._stream_name = stream_name
        self._cursor_field = CursorField(cursor_field)
        self._period = windows.period
        self._start_date = state_context.start_date
        self._include_anonymous = state_context.include_anonymous
        self._filters = state_context.filters
        self._filters_summary = state_context.filters_summary
        self._end_ms = windows.end_ms
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
        self._backfill = backfill
        self._lock = threading.Lock()
        self._ahead = threading.BoundedSemaphore(max(1, windows.max_windows_ahead))
        self._planners: dict[LaneKey, WindowPlanner] = {}
        self._read_started: dict[tuple[LaneKey, int], int] = {}
        self._abandoned: set[tuple[LaneKey, int]] = set()  # windows ended unread (abandon_window)
        self._lane_progress: dict[tuple[str, str], AppProgress] = {}
        self._stopped = False  # a window failed: no more windows (stop_windows)
        self._answers = AnswerLedger()  # opened here as windows are handed out, fed by the retriever
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
        saved = self._valid_apps(state["apps"])
        earlier_start = self._start_moved_back(state.get("start_date"))
        anonymous_on = self._include_anonymous and state.get(ANONYMOUS_KEY) is False
        filters_changed = state.get(FILTERS_KEY) != self._filters
        reread = earlier_start or anonymous_on or filters_changed
        frontiers: dict[str, int | None] = {}
        for app in partitions:
            if reread:
                frontiers[app] = None
            elif app in saved:
                frontiers[app] = saved[app]
            elif app != ALL_APPS and ALL_APPS in saved:
                frontiers[app] = saved[ALL_APPS]
            else:
                frontiers[app] = None
        if earlier_start:
            LOGGER.info(
                f"{self._stream_name}: start_date moved back to {self._start_date}; re-reading every app from it."
            )
        elif anonymous_on:
            LOGGER.warning(
                f"{self._stream_name}: include_anonymous_visitors was turned on since the last sync, whose rows left "
                f"anonymous visitors out: re-reading every app from start_date {self._start_date} (a backfill: with "
                "append_dedup the rows already synced merge on the primary key; with append they arrive again)."
            )
        elif filters_changed:
            now = f"now {self._filters_summary}" if self._filters else "now none"
            LOGGER.warning(
                f"{self._stream_name}: its filters changed since the last sync ({now}): re-reading every app from "
                f"start_date {self._start_date} under the new filters. Rows the old filters let through and the new "
                f"ones leave out stay in the destination: clear the stream's data (reset {self._stream_name}) to drop "
                "them; with append_dedup the rows read again merge on the primary key."
            )
        new_apps = [a for a in partitions if frontiers[a] is None and saved]
        if new_apps and not reread:
            LOGGER.info(
                f"{self._stream_name}: no saved progress for app partition(s) {', '.join(new_apps)}; reading them from start_date."
            )
        key = self._cursor_field.cursor_field_key
        self._saved_apps = {app: {key: f} for app, f in saved.items() if app not in partitions}
        return frontiers

    def _invalid(self, what: str, fix: str = "") -> AirbyteTracedException:
        message = (
            f"The saved state of stream {self._stream_name} is invalid: {what}. {fix or 'Correct it in the connection state, or '}"
            f"clear the stream's data (reset {self._stream_name}) to sync it from start_date again."
        )
        return AirbyteTracedException(
            message=message, internal_message=message, failure_type=FailureType.config_error
        )

    def _valid_apps(self, apps: Mapping[Any, Any]) -> dict[str, int]:
        """The saved frontier of each app partition, each checked: a frontier is a past time in epoch ms, under
        a trimmed app id or `*`. A value the connector could never have saved is a config error, never trusted
        (a frontier in the future would skip every window silently) and never written back."""
        key = self._cursor_field.cursor_field_key
        now = self._clock()
        frontiers: dict[str, int] = {}
        for raw_app, entry in apps.items():
            app = str(raw_app).strip()
            where = f"apps[{_shown(raw_app)}]"
            if app != ALL_APPS and not is_app_id(app):
                raise self._invalid(f"{where} is not an app id (a whole number) or * (all apps)")
            if not isinstance(entry, Mapping) or key not in entry:
                raise self._invalid(f"{where} has no {key}")
            value = entry[key]
            where = f"{where}.{key}"
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._invalid(f"{where} is {_shown(value)}, not a time in epoch milliseconds")
            if not 0 <= value <= MAX_MS or (isinstance(value, float) and not value.is_integer()):
                raise self._invalid(
                    f"{where} is not a time in epoch milliseconds (a whole number from 0 to year 9999)"
                )
            frontier = int(value)
            if frontier > now:
                raise self._invalid(
                    f"{where} is {iso_minute(frontier)}, after now ({iso_minute(now)}); the connector never saves a "
                    "position it has not read, so the state was edited or saved by a machine whose clock was ahead",
                    "Set it to a past time in the connection state (the last time you know was synced), or ",
                )
            # two keys that trim to one app (" 123" and "123"): the earlier frontier, so nothing is skipped
            frontiers[app] = min(frontier, frontiers.get(app, frontier))
            if self._backfill is not None:
                self._backfill.load(app, entry, self._invalid)
        return frontiers

    def _start_moved_back(self, saved: Any) -> bool:
        """Whether the config's start_date is an earlier instant than the saved one (instants, not strings:
        2024-01-01 and 2024-01-01T00:00:00Z are the same start)."""
        if saved is None:
            return False
        if not isinstance(saved, str):
            raise self._invalid(f"start_date is {_shown(saved)}, not a date")
        try:
            return _instant(self._start_date) < _instant(saved)
        except ValueError:
            raise self._invalid(f"start_date is {_shown(saved)}, not a date") from None

    @property
    def state(self) -> MutableMapping[str, Any]:
        key = self._cursor_field.cursor_field_key
        apps: dict[str, Any] = dict(self._saved_apps)
        for app, progress in self._progress.items():
            if progress.frontier is not None:
                apps[app] = {key: progress.frontier}
                backfill = self._backfill.state_of(app) if self._backfill is not None else None
                if backfill is not None:
                    apps[app][BACKFILL_KEY] = backfill
        state = {
            "version": STATE_VERSION,
            "period": self._period,
            "start_date": self._start_date,
            ANONYMOUS_KEY: self._include_anonymous,
            "apps": apps,
        }
        if self._filters is not None:
            state[FILTERS_KEY] = self._filters
        return state

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
        clock = self._clock()
        now = clock if self._end_ms is None else min(clock, self._end_ms)  # no window ends after end_date
        with self._lock:
            for app in self._partitions:
                progress = self._progress[app]
                begin = (
                    self._start_ms
                    if progress.frontier is None
                    else max(self._start_ms, progress.frontier - self._lookback_ms)
                )
                begin -= begin % HOUR_MS
                if (
                    progress.frontier is not None
                    and self._end_ms is not None
                    and progress.frontier >= self._end_ms
                ):
                    begin = now  # read up to end_date and settled: nothing is read again, no lookback
                    LOGGER.info(
                        f"{self._stream_name}: app {app}: read up to end_date ({iso_minute(self._end_ms)}); nothing to read."
                    )
                progress.begin = begin
                self._planners[app] = WindowPlanner(
                    begin, now, self._initial_window, self._min_window, self._max_window, self._target_rows
                )
                span = max(0, now - begin)
                LOGGER.info(
                    f"{self._stream_name}: app {app}: reading {iso_minute(begin)} to {iso_minute(now)} ({span / DAY_MS:.1f} days) in "
                    f"{-(-span // self._max_window)} to {-(-span // self._min_window)} windows (they grow while windows are sparse)"
                )
        active: list[LaneKey] = list(self._partitions)
        active += self._plan_lanes()
        while active:
            for lane in list(active):
                self._ahead.acquire(timeout=600)  # bounded: a lost release must never hang the sync
                with self._lock:
                    window = None if self._stopped else self._planners[lane].next_window()
                    if window is not None:
                        self._read_started[(lane, window[0])] = clock
                        self._answers.open(lane, window[0])
                if window is None:
                    self._ahead.release()
                    active.remove(lane)
                    continue
                partition = (
                    {"app_id": lane} if isinstance(lane, str) else {"app_id": lane[0], "object_id": lane[1]}
                )
                yield StreamSlice(
                    partition=partition, cursor_slice={"start": str(window[0]), "end": str(window[1])}
                )

    def _plan_lanes(self) -> list[LaneKey]:
        """The history of new or changed tags (backfill.py): one lane per object, up to its app's forward windows."""
        if self._backfill is None:
            return []
        # up to where this sync's forward windows begin (the saved frontier - lookback): each row is read once
        forward = {app: self._progress[app] for app in self._partitions}
        lanes = self._backfill.plan(
            {app: p.begin if p.frontier is not None else None for app, p in forward.items()}
        )
        with self._lock:
            for lane in lanes:
                begin = lane.begin - lane.begin % HOUR_MS
                self._lane_progress[lane.key] = AppProgress(begin=begin, frontier=None)
                self._planners[lane.key] = WindowPlanner(
                    begin,
                    lane.end,
                    max(self._min_window, min(self._max_window, LANE_INITIAL_WINDOW_MS)),
                    self._min_window,
                    self._max_window,
                    self._target_rows,
                )
            self._emit_state()  # the objects to read are in the state before their first window
        return [lane.key for lane in lanes]

    def observe_window(self, stream_slice: Mapping[str, Any], rows: int) -> None:
        """Called by the retriever when a window is read: feeds the window-size planner."""
        lane = _lane_of(stream_slice)
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        with self._lock:
            planner = self._planners.get(lane)
            if planner is not None:
                planner.observe(end - start, rows)

    def abandon_window(self, stream_slice: Mapping[str, Any]) -> None:
        """A window the retriever ends without reading it (visitor history refused): never completed."""
        with self._lock:
            self._abandoned.add((_lane_of(stream_slice), int(stream_slice["start"])))

    def close_partition(self, partition: Partition) -> None:
        stream_slice = partition.to_slice()
        assert stream_slice is not None
        app = _lane_of(stream_slice)
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        with self._lock:
            if (app, start) in self._abandoned:  # not read: the frontier stays before it
                self._abandoned.discard((app, start))
                self._read_started.pop((app, start), None)
                self._emit_state()
                return
            started = self._read_started.pop((app, start), self._clock())
            if isinstance(app, tuple):  # a tag's history: before the app's saved frontier, settled
                lane = self._lane_progress[app]
                lane.complete(start, end, end)
                assert self._backfill is not None
                self._backfill.positions[app] = lane.frontier if lane.frontier is not None else lane.begin
                self._emit_state()
                return
            settled_at = started - self._settle_ms
            settled_at -= settled_at % HOUR_MS
            self._progress[app].complete(start, end, settled_at)
            self._emit_state()

    def stop_windows(self) -> None:
        """A window failed, so the stream fails and the frontier never moves past that window: windows after it
        would be read for nothing (and, when every window fails the same way, each would fail again after its
        retries). No more are handed out; the ones being read end as they do."""
        with self._lock:
            self._stopped = True
        self._answers.stop()

    def window_answers(self, stream_slice: Mapping[str, Any]) -> WindowAnswers:
        return self._answers.window(_lane_of(stream_slice), int(stream_slice["start"]))

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


def _lane_of(stream_slice: Mapping[str, Any]) -> LaneKey:
    """The lane a window belongs to: its app partition, or (app partition, object id) for a tag's history."""
    partition = stream_slice.partition if isinstance(stream_slice, StreamSlice) else stream_slice
    app = str(partition["app_id"])
    object_id = partition.get("object_id")
    return app if object_id is None else (app, str(object_id))
