"""The retriever of an activity stream: one (app, window) partition of events, feature/page/track events, guide
or poll events, read from the aggregation API.

The manifest names it (`activity_retriever`). It is the face the CDK calls (`read_records`, once per window the
cursor hands out) over the parts that do the reading: the stream's request bodies (bodies.py), its pages and
keyset follow-ups (pager.py), and the record path that turns blocks of rows into RECORD lines (records.py,
record_batch.py). It says RUNNING once, logs each window's records and requests, and tells the cursor how many
rows a window held (the next windows' size) or that the stream failed (no more windows).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Iterable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from airbyte_cdk.models import AirbyteStreamStatus, StreamDescriptor
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.retrievers.retriever import Retriever
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.types import Config, StreamSlice
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_message

from ..settings.filters import stream_filter
from .bodies import WindowBodies
from .cursor import WindowFeedback
from .pager import WindowPager
from .pages import RecordSink, WindowRun
from .record_batch import RecordBatch, RecordBatchBuilder
from .records import RowFormat, row_time_field
from .windows import iso_minute

LOGGER = logging.getLogger("airbyte")
_NO_RECORDS = RecordBatchBuilder(
    "count"
)  # a count writes no record: the sink of the WindowRun it is sent for
TEST_PAGE_SIZE_ENV = "SOURCE_PENDO_TEST_PAGE_SIZE"


@dataclass
class ActivityRetriever(Retriever):
    requester: HttpRequester
    config: Config
    parameters: InitVar[Mapping[str, Any]]
    name: str
    source: str
    time_field: str  # "bucket" (day/hour by period) or a raw-event field such as "browserTime"
    primary_key: Any = None
    cursor: WindowFeedback | None = None
    _running_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _running_sent: bool = field(default=False, init=False, repr=False)
    _records_so_far: int = field(default=0, init=False, repr=False)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.requester.stream_response = True  # headers first, body read incrementally (pager.py)
        self._period = str(self.config.get("period") or "DAY")
        anonymous = bool(self.config.get("include_anonymous_visitors", False))
        # `filters` (settings/filters.py): confirmed forms go into every request's filter, the rest is tested
        # on each row (which takes the row-by-row path)
        filters = stream_filter(self.config, self.name)
        time = row_time_field(self.time_field, self._period)
        self.rows = RowFormat(
            self.name, self.time_field, self._period, self.primary_key, anonymous, filters.row_predicate(time)
        )
        bodies = WindowBodies(
            name=self.name,
            source=self.source,
            period=self._period,
            is_rollup=self.rows.is_rollup,
            time=self.rows.time,
            anonymous=anonymous,
            filter_conditions=tuple(filters.server_conditions(self.rows.time)),
        )
        # SOURCE_PENDO_TEST_PAGE_SIZE: tests only, a limit below the spec's minimum (pages of a few rows).
        page_size = int(os.environ.get(TEST_PAGE_SIZE_ENV) or self.config.get("page_size") or 50_000)
        self.pager = WindowPager(self.requester, self.config, self.rows, bodies, page_size, self._period)

    # ------------------------------------------------------------------ Retriever
    # ------------------------------------------------------------------ Retriever
    def read_records(
        self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None
    ) -> Iterable[StreamData]:
        assert stream_slice is not None
        app = stream_slice.partition["app_id"]
        object_id = stream_slice.partition.get("object_id")  # a new tag's history (backfill.py)
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        builder = RecordBatchBuilder(self.name)
        try:
            if not self._running_sent:
                with self._running_lock:
                    first, self._running_sent = not self._running_sent, True
                if first:
                    yield stream_status_message(StreamDescriptor(name=self.name), AirbyteStreamStatus.RUNNING)
            counted = stream_slice.get("count")  # Pendo's count, taken by the cursor when it sized the window
            expected = int(counted) if counted is not None else None
            run = yield from self._read_window(app, start, end, builder, object_id, expected)
            batch = builder.flush()
            if batch is not None:
                yield batch
            counted = run.expected or 0
            with self._running_lock:  # logged under the lock: the running totals appear in increasing order
                self._records_so_far += builder.total
                LOGGER.info(
                    f"{self.name}: app {app}{f', tag {object_id}' if object_id else ''}, {iso_minute(start)} to "
                    f"{iso_minute(end)}: {builder.total} records (Pendo counts {counted}) in {run.pages} request(s); "
                    f"{self._records_so_far} records so far"
                )
            if self.cursor is not None:
                self.cursor.observe_window(stream_slice, counted, run.read if run.expected else 0)
        except Exception:
            if self.cursor is not None:
                self.cursor.stop_windows()  # the stream fails: no window after this one is started
            raise
        finally:
            if self.cursor is not None:
                self.cursor.release_window()

    # ------------------------------------------------------------------ one window
    def read_window(
        self, app: str, start: int, end: int, sink: RecordSink, expected: int | None = None
    ) -> Generator[RecordBatch, None, WindowRun]:
        """The records of one (app, window) into `sink` (batches yielded when it makes them), checked against
        Pendo's count (`expected`, or counted here); returns what was read."""
        return (yield from self._read_window(app, start, end, sink, None, expected))

    def count_window(self, app: str, object_id: str | None, start: int, end: int) -> int:
        """Pendo's count of the rows of one (app, window), of one object when `object_id` is given."""
        return self.pager.count(WindowRun(app, start, end, _NO_RECORDS, object_id), start, end)

    def _read_window(
        self,
        app: str,
        start: int,
        end: int,
        builder: RecordSink,
        object_id: str | None = None,
        expected: int | None = None,
    ) -> Generator[RecordBatch, None, WindowRun]:
        """The window's records (batches yielded), of one object when `object_id` is given: Pendo's count (given,
        or asked here), the read, the comparison (pager.py); returns what was read and what it cost."""
        run = WindowRun(app, start, end, builder, object_id, expected)
        yield from self.pager.read(run)
        return run
