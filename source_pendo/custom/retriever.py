"""Reads a custom aggregation stream (spec option `custom_aggregations`; custom/bodies.py builds the bodies).

Activity sources: the stream is built like the built-in activity streams (activity/streams.py: the per-app
window cursor with its checkpoints, lookback and state; the RecordBatch path to stdout); only the window's
reading differs: one request per Pendo bucket (a day of the subscription's time zone under DAY, an hour under
HOUR) that starts in a UTC-aligned period whose start lies in the window, the source's `timeSeries` asking that
one bucket (`first` an instant inside it, `count` 1); every row gets `periodStart`, the bucket's start as Pendo
names it (the answer's `startTime`, as a built-in rollup row's `day`/`hour`), the stream's cursor. A local day
of 23 or 25 hours (a daylight-saving change) is asked once and emitted once (`_buckets_starting_in`).

Why one period per request, not the rollups' keyset over (bucket, visitorId): the user's stages decide the
output rows, which need not carry a bucket or a visitor, so there is nothing to key a multi-period answer on;
and whether Pendo runs the stages once over all periods of a `timeSeries` or once per period is not settled
(BEHAVIOR.md §R-1): a `group` or `reduce` over a multi-period answer would give different rows under the two
readings. Over one period both readings give the same rows. Paging inside a period (§B-17 has no cursor): a
primary key of one field (besides periodStart) is a keyset after the user's stages (`sort`, `k > last`,
`limit`); without one, the period is asked in one request whose `limit` holds Pendo's count of its rows.

Every request unit (a period, or a full-refresh stream) starts with Pendo's count of its output rows (the same
source and stages ended by `{"count": null}`, BEHAVIOR.md §B-22); a unit counted empty is not read. A keyed
unit pages until it has as many distinct rows as counted (a short page that leaves it short is read on from: a
server capping answers). A unit still short is asked once more in one request whose `limit` holds its count,
rows already emitted not emitted again; still short, the stream stops with one error naming the stream, the
period and both numbers.

Other sources (visitors, accounts, the catalogue, guidesSeen, pollsSeen...): full refresh, the same paging.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from airbyte_cdk.models import AirbyteStreamStatus, FailureType, StreamDescriptor
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..activity.pager import MAX_PAGE_SIZE, counted
from ..activity.pages import BODY_ERRORS, PageState, RecordSink, WindowRun, broke_from, whole_body
from ..activity.record_batch import RecordBatch, RecordBatchBuilder
from ..activity.retriever import ActivityRetriever
from ..activity.rows import QUOTED_START, without_lone_surrogates
from ..activity.windows import iso_minute
from ..http.messages import quoted
from ..pendo import PERIOD_MS
from ..settings.custom_aggregations import CustomAggregation, custom_aggregation
from .bodies import request_body

LOGGER = logging.getLogger("airbyte")
T = TypeVar("T")


@dataclass(frozen=True)
class Bucket:
    """One bucket of an activity source: asked by an instant inside it (the `timeSeries` `first`), named by its
    start as Pendo gives it (the records' `periodStart`)."""

    at: int
    start: int


@dataclass
class CustomAggregationRetriever(ActivityRetriever):
    """The retriever of one custom aggregation stream, found in the config by the stream's name."""

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        super().__post_init__(parameters)
        self.entry: CustomAggregation = custom_aggregation(self.config, self.name)
        self._period_length = PERIOD_MS[self._period]
        self._unnamed_warned = False

    # ------------------------------------------------------------------ full refresh (other sources)
    def read_records(
        self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None
    ) -> Iterable[StreamData]:
        if self.entry.is_activity:
            yield from super().read_records(records_schema, stream_slice)
            return
        # Records travel as RecordBatch messages, which the CDK does not count as records: say RUNNING here, as
        # ActivityRetriever.read_records does for the activity streams.
        yield stream_status_message(StreamDescriptor(name=self.name), AirbyteStreamStatus.RUNNING)
        builder = RecordBatchBuilder(self.name)
        run = WindowRun("*", 0, 0, builder)
        yield from self._read_unit(run, None)
        batch = builder.flush()
        if batch is not None:
            yield batch
        LOGGER.info(
            f"{self.name}: {builder.total} records (Pendo counts {run.expected}) in {run.pages} request(s)"
        )

    # ------------------------------------------------------------------ one window (activity sources)
    def _read_window(
        self,
        app: str,
        start: int,
        end: int,
        builder: RecordSink,
        object_id: str | None = None,
        expected: int | None = None,
    ) -> Generator[RecordBatch, None, WindowRun]:
        """Each Pendo bucket that starts in a UTC-aligned period whose start lies in [start, end), one after the
        other, each asked and emitted once (BEHAVIOR.md §B-21; windows may start mid-period when start_date has a
        time: the period holding it started before start_date and is not read). Custom streams have no
        per-object lanes (a new tag's history is read for feature_events and page_events only)."""
        if object_id is not None:
            raise AssertionError(f"{self.name}: a custom aggregation stream has no per-object windows")
        run = WindowRun(app, start, end, builder)
        length = self._period_length
        period = -(-start // length) * length
        counted = read = 0
        previous: int | None = None  # the bucket holding the previous period's last millisecond
        while period < end:
            units, previous = self._buckets_starting_in(run, period, previous)
            for unit, count in units:
                yield from self._read_unit(run, unit, count)
                counted, read = counted + (run.expected or 0), read + run.rows_read
            period += length
        run.expected, run.rows_read = counted, read  # the window's, for the cursor
        return run

    def _buckets_starting_in(
        self, run: WindowRun, period: int, previous: int | None
    ) -> tuple[list[tuple[Bucket, int]], int]:
        """The buckets (subscription time zone) that start in the UTC-aligned period, each with Pendo's count of
        its rows, and the start of the bucket holding the period's last millisecond.

        Each bucket is named by Pendo: the answer's `startTime` (BEHAVIOR.md §B-21). The bucket holding the
        period's last millisecond is asked first (one count); it started in the period, or before it (a local day
        longer than the period, as in autumn: the period that holds its start read it, so none is asked here). A
        bucket between it and the previous period's (a local day shorter than the period, as in spring) is asked
        by the millisecond before it, and so on back; only when the gap leaves room for one: more than a period
        since the previous period's bucket, or, for a window's first period, at least half a period since the
        period's start."""
        length = self._period_length
        last_ms = period + length - 1
        count, holding = self._count(run, last_ms)
        if holding is None:  # no bucket start in the answer: the period names the bucket (logged once)
            return [(Bucket(last_ms, period), count)], period
        units = [] if holding < period else [(Bucket(last_ms, holding), count)]
        bucket = holding
        while bucket > period and (
            bucket - previous > length if previous is not None else bucket - period >= length // 2
        ):
            count, earlier = self._count(run, bucket - 1)
            if earlier is None or earlier < period or earlier == previous:
                break
            units.insert(0, (Bucket(bucket - 1, earlier), count))
            bucket = earlier
        return units, holding

    def _read_unit(
        self, run: WindowRun, bucket: Bucket | None, counted: int | None = None
    ) -> Generator[RecordBatch, None, None]:
        """One bucket (or a full-refresh stream): Pendo's count (given, or asked here), then its pages, then the
        comparison."""
        if counted is None:
            counted, _ = self._count(run, None if bucket is None else bucket.at)
        run.expected, run.rows_read = counted, 0
        if counted == 0:
            return
        read: set[Any] = set()  # the identities of the rows read (the key, or the whole row without one)
        key = self.entry.keyset_field
        limit = self.pager.page_size if key is not None else self._holding(counted)
        yield from self._read_pages(run, bucket, read, limit, keyed=key is not None)
        if len(read) < counted:
            LOGGER.warning(
                f"{self.name}: {self._where(run, bucket)}: read {len(read)} rows where Pendo counts {counted}; "
                "asking again in one request (rows already emitted are not emitted again)"
            )
            yield from self._read_pages(run, bucket, read, self._holding(counted), keyed=False)
        if len(read) < counted:
            message = (
                f"{self.name}: Pendo counts {counted} rows {self._where(run, bucket)}, but its answers held "
                f"{len(read)}. The sync stopped rather than save progress past rows it could not read; progress "
                "is saved up to the last complete window. Retry the sync; if it fails again at the same place, "
                "report it with the sync logs."
            )
            raise AirbyteTracedException(
                message=message, internal_message=message, failure_type=FailureType.system_error
            )
        run.rows_read = len(read)

    def _holding(self, counted: int) -> int:
        """A `limit` that holds `counted` rows and some that arrive meanwhile."""
        return min(MAX_PAGE_SIZE, max(self.pager.page_size, counted + counted // 10 + 1))

    def _count(self, run: WindowRun, at_ms: int | None) -> tuple[int, int | None]:
        """Pendo's count of the unit's output rows (an answer that is not a count is asked again, pager.counted)
        and, for a bucket asked by an instant inside it (`at_ms`), the bucket's start: the answer's `startTime`,
        None when the answer has none that can be the start of a bucket holding `at_ms`."""
        body = request_body(self.entry, self.config, 0, run.app, at_ms, count=True)
        answer = self._whole_answer(
            body,
            run,
            lambda text: (counted(text), None if at_ms is None else self._bucket_start(text, at_ms)),
        )
        return (0, None) if answer is None else answer

    def _whole_answer(self, body: Mapping[str, Any], run: WindowRun, parse: Callable[[bytes], T]) -> T | None:
        """`parse` of Pendo's whole answer to `body`; a body that breaks off, or that `parse` finds malformed,
        is asked again (the pager's rule for broken reads); None when the pager gives up without an answer."""
        while True:
            response = self.pager.send(body, run)
            if response is None:
                return None
            try:
                return parse(whole_body(response, self.pager.deadline_s))
            except BODY_ERRORS as error:
                self.pager.broke(run, PageState(None, set(), self.rows.group_pks, 0), broke_from(error))
            finally:
                response.close()

    def _bucket_start(self, text: bytes, at_ms: int) -> int | None:
        """The answer's `startTime` when it is the start of a bucket holding `at_ms` (at or before it, less than
        two periods before); else None, and one WARNING per stream: the UTC-aligned period names the bucket, as
        before 1.0 (a day that Pendo's time zone makes shorter or longer than 24 hours is then read wrong)."""
        try:
            start = orjson.loads(text).get("startTime")
        except (orjson.JSONDecodeError, AttributeError):
            start = None
        if type(start) is int and at_ms - 2 * self._period_length < start <= at_ms:
            return start
        if not self._unnamed_warned:
            self._unnamed_warned = True
            LOGGER.warning(
                f"{self.name}: Pendo's answer for the bucket holding {iso_minute(at_ms)} has no `startTime` that "
                f"is a bucket start ({str(start)[:40]}): periodStart is the UTC-aligned period's start instead, and "
                "a day the subscription's time zone makes shorter or longer than 24 hours may be missed or read twice."
            )
        return None

    def _read_pages(
        self, run: WindowRun, bucket: Bucket | None, read: set[Any], limit: int, keyed: bool
    ) -> Generator[RecordBatch, None, None]:
        """The unit's pages: keyed on the one-field key while pages are full, else one page; a row read before
        (`read`) is not emitted again."""
        key = self.entry.keyset_field if keyed else None
        after: Any = None
        while True:
            body = request_body(
                self.entry, self.config, limit, run.app, None if bucket is None else bucket.at, after
            )
            text = self._whole_answer(body, run, bytes)  # nothing is emitted from a page read again
            if text is None:
                return
            rows = self._rows(text, run, bucket)
            for row in rows:
                identity = _identity(row, self.entry.keyset_field)
                if identity in read:
                    continue
                read.add(identity)
                batch = (
                    run.builder.add(orjson.dumps(row), self.rows.time_bytes, bucket.start)
                    if bucket is not None
                    else run.builder.add(orjson.dumps(row))
                )
                if batch is not None:
                    yield batch
            run.rows_read = len(read)
            if len(rows) < limit:  # the last page; a unit short of its count is read again (_read_unit)
                return
            if key is None:
                raise AirbyteTracedException(
                    message=f"{self.name}: Pendo answered {len(rows)} rows {self._where(run, bucket)}, as many as its limit (set from Pendo's count of {run.expected}), so the answer may be cut: more rows arrived than were counted, and a pipeline without a one-field primary_key cannot be paged. Retry the sync; if it recurs, declare a primary_key of one field that is unique in the pipeline's output. Progress is saved up to the last complete window.",
                    failure_type=FailureType.transient_error,
                )
            last = rows[-1].get(key) if rows and isinstance(rows[-1], dict) else None
            if last is None:
                raise AirbyteTracedException(
                    message=f"{self.name}: a row of the pipeline's output has no `{key}` (its primary_key), {self._where(run, bucket)}: pages cannot be keyed on it. Make the pipeline output `{key}` on every row, or change primary_key.",
                    failure_type=FailureType.config_error,
                )
            if after is not None and not _after(last, after):
                raise AirbyteTracedException(
                    message=f"{self.name}: Pendo answered the next page {self._where(run, bucket)} with rows not after the last one read ({key} > {after!r}): the keyset is not kept, paging would not end. The sync stopped; progress is saved up to the last complete window.",
                    failure_type=FailureType.system_error,
                )
            after = last

    def _rows(self, text: bytes, run: WindowRun, bucket: Bucket | None) -> list[dict[str, Any]]:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:  # an escaped lone surrogate (valid JSON no UTF-8 output carries) is U+FFFD, as in activity rows
                parsed = orjson.loads(without_lone_surrogates(text)) if b"\\u" in text else None
            except orjson.JSONDecodeError:
                parsed = None
        results = parsed.get("results", None) if isinstance(parsed, dict) else None
        if isinstance(parsed, dict) and "results" in parsed and results is None:
            results = []  # `results: null`: no rows (BEHAVIOR.md §B-9); an object without `results` is no answer
        if not isinstance(results, list) or not all(isinstance(row, dict) for row in results):
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo's answer {self._where(run, bucket)} is not an aggregation result (an object with a list of rows under `results`).",
                internal_message=quoted(
                    text[:QUOTED_START].decode(errors="replace"), self.config, whole=len(text) <= QUOTED_START
                ),
                failure_type=FailureType.system_error,
            )
        return results

    def _where(self, run: WindowRun, bucket: Bucket | None) -> str:
        if bucket is None:
            return "to the full-refresh request"
        return f"for app {run.app}, period {iso_minute(bucket.start)}"


def _identity(row: dict[str, Any], key: str | None) -> Any:
    """What tells a row apart within its unit: its key's value (a keyed stream), else the whole row."""
    value = row.get(key) if key is not None else None
    return value if value is not None else orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def _after(value: Any, after: Any) -> bool:
    try:
        return bool(value > after)
    except TypeError:
        return True  # values of another kind: Pendo's cross-kind order is not documented
