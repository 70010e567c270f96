"""Per-app, per-window state for the activity streams, checkpointed after every window.

Why not the CDK's cursors: with a partition router the manifest's DatetimeBasedCursor becomes a
ConcurrentPerPartitionCursor, which emits state at most every 10 minutes (a killed sync loses up to
10 minutes of progress) and starts a partition it has no state for from the global cursor (an app
added to `app_ids` would silently skip its history). This cursor keeps one frontier per app partition
(`*` = all apps in one request when `app_ids` is empty) and emits the whole state after each window.

The state itself (what a frontier means, how a saved one is checked, what a settings change does) is
state.py's; the windows and their sizes are windows.py's.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Protocol

from airbyte_cdk.sources.streams.concurrent.cursor import Cursor, CursorField
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.types import Record, StreamSlice

from ..clock import now_ms
from ..pendo import DAY_MS, HOUR_MS
from .backfill import LANE_INITIAL_WINDOW_MS, TagBackfill
from .progress import StreamProgress
from .state import SavedState, StateContext
from .windows import AppProgress, LaneKey, WindowPlanner, WindowPolicy, iso_minute, lane_of

LOGGER = logging.getLogger("airbyte")
# Pendo's count of the rows of [lo, hi) of an app partition, or of one object's history (app, object id, lo, hi)
Counter = Callable[[str, str | None, int, int], int]


class WindowFeedback(Protocol):
    """What a retriever tells the cursor about each window it was given (ActivityCursor implements it)."""

    def observe_window(self, stream_slice: Mapping[str, Any], counted: int, read: int) -> None:
        """The window was read: Pendo counted `counted` rows in it and `read` were read (the planner sizes the
        next windows from the count; the stream's progress and closing line add them up)."""

    def release_window(self) -> None:
        """The retriever is done with the window (read or failed): another one may be handed out."""

    def abandon_window(self, stream_slice: Mapping[str, Any]) -> None:
        """The window ends without error but was not read: the state must not move past its start."""

    def stop_windows(self) -> None:
        """A window failed (the stream fails): hand out no more windows; the ones being read end as they do."""


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
        counted_by_pendo: bool = True,
        counter: Counter | None = None,
    ) -> None:
        self._stream_name = stream_name
        self._cursor_field = CursorField(cursor_field)
        self._period = windows.period
        self._saved = SavedState(
            stream_name=stream_name,
            cursor_key=self._cursor_field.cursor_field_key,
            period=windows.period,
            context=state_context,
            clock=clock,
            backfill=backfill,
        )
        self._end_ms = windows.end_ms
        self._start_ms = windows.start_ms
        self._lookback_ms = windows.lookback_ms
        self._settle_ms = windows.settle_ms
        self._min_window = DAY_MS if windows.period == "DAY" else HOUR_MS
        self._initial_window = max(self._min_window, min(windows.max_window_ms, windows.initial_window_ms))
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
        self._counter = counter  # Pendo's count of a window (the retriever's): windows are sized by it
        self._counts = StreamProgress(
            stream_name, counted_by_pendo
        )  # counts and reads: the ESTIMATE and the closing line
        self._summarised = False
        # a state that cannot be used fails this stream's read (stream_slices), not the building of every stream
        previous = self._saved.resume(
            dict(state_context.stream_state or {}), partitions, state_context.period_sensitive
        )
        self._progress = {app: AppProgress(begin=0, frontier=frontier) for app, frontier in previous.items()}
        self._partitions = partitions

    def count_with(self, counter: Counter) -> None:
        """Windows are counted (Pendo's count, the retriever's `count_window`) and sized by it when planned."""
        self._counter = counter

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> MutableMapping[str, Any]:
        return self._saved.to_save(self._progress)

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
        self._saved.raise_if_unusable()
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
                elif app in self._saved.ahead:
                    begin = now  # saved after now (state.py): nothing to read yet, the frontier kept as saved
                progress.begin = begin
                # a first sync probes one day; a resumed lane (the lookback and what came since) is counted whole
                # when its windows are counted, and shrunk if it holds too many rows
                resumed = progress.frontier is not None and self._counter is not None
                first = min(self._max_window, max(self._initial_window, now - begin)) if resumed else None
                self._planners[app] = WindowPlanner(
                    begin,
                    now,
                    first or self._initial_window,
                    self._min_window,
                    self._max_window,
                    self._target_rows,
                )
                span = max(0, now - begin)
                self._counts.plan(app, span)
                LOGGER.info(
                    f"{self._stream_name}: app {app}: reading {iso_minute(begin)} to {iso_minute(now)} ({span / DAY_MS:.1f} days) in "
                    f"{-(-span // self._max_window)} to {-(-span // self._min_window)} windows (sized by Pendo's count of each)"
                )
        active: list[LaneKey] = list(self._partitions)
        active += self._plan_lanes()
        while active:
            for lane in list(active):
                self._ahead.acquire(timeout=600)  # bounded: a lost release must never hang the sync
                window = None if self._stopped else self._next_window(lane)
                if window is not None:
                    with self._lock:
                        self._read_started[(lane, window[0])] = clock
                if window is None:
                    self._ahead.release()
                    active.remove(lane)
                    continue
                partition = (
                    {"app_id": lane} if isinstance(lane, str) else {"app_id": lane[0], "object_id": lane[1]}
                )
                cursor_slice = {"start": str(window[0]), "end": str(window[1])}
                if window[2] is not None:  # Pendo's count of it: the retriever reads and checks against it
                    cursor_slice["count"] = str(window[2])
                yield StreamSlice(partition=partition, cursor_slice=cursor_slice)

    def _next_window(self, lane: LaneKey) -> tuple[int, int, int | None] | None:
        """The lane's next window and, with a counter, Pendo's count of it (the window sized by it)."""
        planner = self._planners[lane]
        if self._counter is None:
            with self._lock:
                plain = planner.next_window()
            return None if plain is None else (plain[0], plain[1], None)
        app, object_id = (lane, None) if isinstance(lane, str) else lane
        counter = self._counter
        return planner.next_counted_window(lambda lo, hi: counter(app, object_id, lo, hi))

    def _plan_lanes(self) -> list[LaneKey]:
        """The history of new or changed tags (backfill.py): one lane per object, up to its app's forward windows."""
        if self._backfill is None:
            return []
        # up to where this sync's forward windows begin (the saved frontier - lookback): each row is read once
        forward = {app: self._progress[app] for app in self._partitions if app not in self._saved.ahead}
        lanes = self._backfill.plan(
            {app: p.begin if p.frontier is not None else None for app, p in forward.items()}
        )
        with self._lock:
            for lane in lanes:
                begin = lane.begin - lane.begin % HOUR_MS
                self._lane_progress[lane.key] = AppProgress(begin=begin, frontier=None)
                self._counts.plan(lane.key, lane.end - begin)
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

    def observe_window(self, stream_slice: Mapping[str, Any], counted: int, read: int) -> None:
        """Called by the retriever when a window is read: Pendo's count sizes the next windows of its lane, and
        the stream's progress (an ESTIMATE message) adds it up."""
        lane = lane_of(stream_slice)
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        with self._lock:
            planner = self._planners.get(lane)
            if planner is not None and self._counter is None:  # counted windows were sized when planned
                planner.observe(end - start, counted)
        self._message_repository.emit_message(self._counts.observe(lane, end - start, counted, read))

    def abandon_window(self, stream_slice: Mapping[str, Any]) -> None:
        """A window the retriever ends without reading it (visitor history refused): never completed."""
        with self._lock:
            self._abandoned.add((lane_of(stream_slice), int(stream_slice["start"])))

    def close_partition(self, partition: Partition) -> None:
        stream_slice = partition.to_slice()
        assert stream_slice is not None
        app = lane_of(stream_slice)
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

    def release_window(self) -> None:
        """The retriever is done with a window (read or failed): another one may be generated."""
        with contextlib.suppress(ValueError):
            self._ahead.release()

    def ensure_at_least_one_state_emitted(self) -> None:
        """The stream is done: its state, and one line with its rows against Pendo's count (once)."""
        if self._saved.error is not None:  # an unusable state is never written back; the saved one stays
            return
        with self._lock:
            self._emit_state()
            summary, self._summarised = None if self._summarised else self._counts.summary(), True
        if summary is not None and not self._stopped:
            LOGGER.info(summary)

    def observe(self, record: Record) -> None:
        """Records of these streams travel as batches; window completion, not records, moves state."""

    def should_be_synced(self, record: Record) -> bool:
        return True
