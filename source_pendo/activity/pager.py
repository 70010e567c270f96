"""Pages of one activity window: its rows asked for, page after page, checked against Pendo's own count.

Why: the aggregation API has no pagination (BEHAVIOR.md §B-17), so paging is a keyset on the sort order
(bucket, visitorId); a body that breaks after some rows were emitted resumes after those rows instead of
starting over; and a part of a window the API cannot answer (timeout, 5xx after retries) is split in half down
to one period.

Count, then read, then compare (`read`, BEHAVIOR.md §B-22). Every window starts with Pendo's count of its rows
(the read's source, `identified`, time series and filters, ended by `{"count": null}`; under per-period
pipelines one row per period, summed). A window Pendo counts no rows in is not read. The read pages until it
has as many distinct rows as counted: a short answer that brings the window to its count is complete, one that
leaves it short is read on from as a full page is (a server capping answers, §B-17). When the read still comes
up short, the window is read again period by period, each period counted and asked in one request whose
`limit` holds its count (so no keyset is needed); rows read before are not emitted twice (`WindowRun.seen`).
A period still short stops the stream with one error naming the stream, the lane, the period and both numbers,
and the state never moves past the window. More rows than counted is accepted (rows arrive while a sync runs).

Rollups (`read_range`): `timeSeries` over the range, `filter: t >= start && t < end` (plus the keyset),
`sort: [t, visitorId]`, `limit`. After a full page the rest of the boundary (t, visitorId) group's bucket is
asked alone (`t == B && visitorId >= V`, its one period up to its last millisecond, `_read_bucket`), then the
buckets after it (`t > B`): `&&` only (§R-11), and exact whether Pendo runs one pipeline over the periods or
one per period (§R-1). An answer longer than `limit` proves per-period pipelines: its buckets with `limit` rows
are each paged alone, the others are complete.

Raw guide/poll events (`read_raw`, §R-4): Pendo may select them into periods by a receive time while
`browserTime` is hours off, so they are selected by the `timeSeries` alone (hourly periods; windows start on
whole hours, so every event is in exactly one window's answer) with no `browserTime` window check. A
multi-period answer cannot be paged (no order across periods): a range counted at `limit` or more is split in
halves without being asked, and an answer is held (at most `limit` rows) until it is known to be short; one
period pages by keyset.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import orjson
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.types import Config, StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..http.messages import quoted
from ..http.transport import origin_text
from ..pendo import DAY_MS, HOUR_MS, count_in
from ..settings.config import DEFAULTS, api_base
from .bodies import WindowBodies
from .pages import (
    BODY_ERRORS,
    BodyBroke,
    PageState,
    ResponseDeadline,
    WindowRun,
    body_chunks,
    broke_from,
    resume,
    whole_body,
)
from .record_batch import RecordBatch
from .records import RowFormat
from .rows import QUOTED_START, AggregationRowReader, MalformedBody, TooDeep
from .windows import iso_minute

LOGGER = logging.getLogger("airbyte")
MAX_BODY_RESUMES = 8
MAX_DEADLINE_RESUMES = (
    2  # an answer past response_deadline_seconds is asked again twice, then the stream stops
)
MAX_PAGE_SIZE = 2_000_000
# A window Pendo counts more rows in is read without remembering each row's key (memory): a shortfall then
# stops the sync instead of reading the window again (it could not tell the rows already emitted).
MAX_TRACKED_ROWS = 1_000_000


class WindowPager:
    """Reads the windows of one activity stream: its requests, pages, keyset follow-ups, splits and resumes."""

    def __init__(
        self,
        requester: HttpRequester,
        config: Config,
        rows: RowFormat,
        bodies: WindowBodies,
        page_size: int,
        period: str,
    ) -> None:
        self.requester = requester
        self.config = config
        self.name = rows.name
        self.rows = rows
        self.bodies = bodies
        self.page_size = page_size
        self.is_rollup = rows.is_rollup
        self._min_window = DAY_MS if period == "DAY" else HOUR_MS
        # The least time between two bucket starts: an hour, or a day of the app's time zone (23 h on the
        # day clocks move forward): a bucket B with B + gap >= the range's end is its last.
        self._min_bucket_gap = 23 * HOUR_MS if period == "DAY" else HOUR_MS
        self._lock = threading.Lock()
        self._per_period = False  # §R-1 seen: remembered for the sync
        self._cap_warned = False  # a capped answer was logged (§B-17)
        self.deadline_s = float(
            config.get("response_deadline_seconds") or DEFAULTS["response_deadline_seconds"]
        )

    def read(self, run: WindowRun) -> Generator[RecordBatch, None, int]:
        """Every row of the window `run` into its builder (batches yielded as the builder makes them), checked
        against Pendo's count (module docstring); returns the count."""
        counted = run.expected if run.expected is not None else self.count(run, run.start, run.end)
        if counted == 0:
            return 0
        run.start_attempt(counted <= MAX_TRACKED_ROWS, counted)
        yield from self._read_part(run, run.start, run.end, counted)
        if run.read > counted:
            LOGGER.debug(
                f"{self.name}: {self._where(run)}: {run.read} rows read, {counted} counted (rows arrived meanwhile)"
            )
        elif run.read < counted:
            yield from self._read_again(run, run.read, counted)
        return counted

    def _read_part(
        self, run: WindowRun, lo: int, hi: int, counted: int
    ) -> Generator[RecordBatch, None, None]:
        if self.is_rollup:
            yield from self.read_range(run, lo, hi)
        else:
            yield from self.read_raw(run, lo, hi, counted)

    def _read_again(self, run: WindowRun, read: int, counted: int) -> Generator[RecordBatch, None, None]:
        """The window read fewer rows than Pendo counts: its parts are read again, halves within halves down to
        one period, each counted first; a part whose rows were all read already (rollups keep a tally per bucket)
        is not asked again; one period is asked with a `limit` that holds its count and read on while short of
        it (a server cap). A period still short stops the stream; rows read before are not emitted again."""
        if run.rows is None:
            raise self._short(
                run,
                run.start,
                run.end,
                read,
                counted,
                f"more than {MAX_TRACKED_ROWS} rows: too many to read again without emitting rows twice",
            )
        LOGGER.warning(
            f"{self.name}: {self._where(run)}: read {read} rows where Pendo counts {counted}; reading the window "
            "again in smaller parts (rows already emitted are not emitted again)"
        )
        yield from self._read_short_part(run, run.start, run.end, counted, whole=False)

    def _read_short_part(
        self, run: WindowRun, lo: int, hi: int, counted: int, whole: bool = True
    ) -> Generator[RecordBatch, None, None]:
        unit = self._min_window if self.is_rollup else HOUR_MS
        if self.is_rollup and run.tally(lo, hi) >= counted:
            return  # every row of this part was read the first time
        single = hi - lo <= unit or (self.is_rollup and hi - lo <= self._min_bucket_gap)
        if single or whole:  # asked whole, in one request that holds its count
            run.start_attempt(True, counted, read_on=single)
            yield from self._read_part_whole(run, lo, hi, counted)
            if run.read >= counted:
                return
            if single:
                raise self._short(run, lo, hi, run.read, counted, "read again in one request")
        middle = _split_point(lo, hi, unit)
        for part_lo, part_hi in ((lo, middle), (middle, hi)):
            part = self.count(run, part_lo, part_hi)
            if part:
                yield from self._read_short_part(run, part_lo, part_hi, part)

    def _read_part_whole(
        self, run: WindowRun, lo: int, hi: int, counted: int
    ) -> Generator[RecordBatch, None, None]:
        limit = min(MAX_PAGE_SIZE, max(self.page_size, counted + counted // 10 + 1))
        if self.is_rollup or hi - lo <= HOUR_MS:
            yield from self.read_range(run, lo, hi, limit)
        else:
            yield from self.read_raw(run, lo, hi, None, limit)

    def _short(
        self, run: WindowRun, lo: int, hi: int, read: int, counted: int, how: str
    ) -> AirbyteTracedException:
        message = (
            f"{self.name}: Pendo counts {counted} rows in {self._where(run, lo, hi)}, but its answers held {read} "
            f"({how}). The sync stopped rather than save progress past rows it could not read; progress is saved "
            "up to the last complete window. Retry the sync; if it fails again at the same place, report it with "
            "the sync logs (Pendo may answer in a way this connector version does not read right)."
        )
        return AirbyteTracedException(
            message=message, internal_message=message, failure_type=FailureType.system_error
        )

    def _where(self, run: WindowRun, lo: int | None = None, hi: int | None = None) -> str:
        lane = f"app {run.app}" + (f", tag {run.object_id}" if run.object_id else "")
        lo, hi = (run.start, run.end) if lo is None or hi is None else (lo, hi)
        return f"{lane}, {iso_minute(lo)} to {iso_minute(hi)}"

    def count(self, run: WindowRun, lo: int, hi: int) -> int:
        """Pendo's count of the rows of [lo, hi): the sum of every row of the answer (one per period when each
        period runs the pipeline on its own, §R-1; `results: null` is none, §R-5). A range Pendo cannot answer
        (a timeout, 5xx after the retries) is counted by halves, as it is read; an answer that is not a count
        (a maintenance page, an error object, a cut body) is asked again, as a read's is, never taken for 0."""
        body = self.bodies.count(run.app, run.object_id, lo, hi)
        while True:
            try:
                response = self.send(body, run)
            except AirbyteTracedException as error:  # Pendo could not count it whole: counted by halves
                unit = self._min_window if self.is_rollup else HOUR_MS
                middle = self._split(run, lo, hi, unit, error)
                return self.count(run, lo, middle) + self.count(run, middle, hi)
            if response is None:
                raise self._no_count(run, lo, hi, "no answer")
            try:
                return counted(whole_body(response, self.deadline_s))
            except BODY_ERRORS as error:
                self.broke(run, PageState(None, set(), self.rows.group_pks, 0), broke_from(error))
            finally:
                response.close()

    def _no_count(self, run: WindowRun, lo: int, hi: int, answer: str) -> AirbyteTracedException:
        return AirbyteTracedException(
            message=f"{self.name}: Pendo did not answer the count of {self._where(run, lo, hi)} with a count ({answer}). The sync stopped; progress is saved up to the last complete window.",
            internal_message=answer,
            failure_type=FailureType.system_error,
        )

    def _body(self, run: WindowRun, lo: int, hi: int, limit: int, **keyset: Any) -> dict[str, Any]:
        return self.bodies.read(run.app, run.object_id, lo, hi, limit, **keyset)

    def send(self, body: Mapping[str, Any], run: WindowRun) -> requests.Response | None:
        response = self.requester.send_request(
            request_body_json=body,
            stream_slice=StreamSlice(partition={"app_id": run.app}, cursor_slice={}),
        )
        if response is not None:
            run.pages += 1
        return response

    def broke(self, run: WindowRun, page: PageState, broke: BodyBroke) -> None:
        run.resumes += 1
        cause = broke.__cause__
        shown = (
            quoted(str(cause), self.config, whole=not cause.cut)
            if isinstance(cause, MalformedBody)
            else repr(cause)
        )
        if run.resumes > MAX_BODY_RESUMES and isinstance(cause, MalformedBody):
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo answered the aggregation request of app {run.app}, {iso_minute(run.start)} to {iso_minute(run.end)} ({self._host()}) with HTTP 200 and a body that is not an aggregation answer ({shown}), {run.resumes} times. The sync stopped rather than read it as an empty answer; progress is saved up to the last complete window. Retry the sync later (a maintenance page or a proxy in the way answers like this); if it persists, check `base_url`. Lowering page_size does not help.",
                internal_message=shown,
                failure_type=FailureType.transient_error,
            ) from None
        if run.resumes > MAX_DEADLINE_RESUMES and isinstance(broke.__cause__, ResponseDeadline):
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo's answer to the aggregation request of app {run.app}, {iso_minute(run.start)} to {iso_minute(run.end)}, from {self._host()}, was still arriving after response_deadline_seconds ({broke.__cause__.deadline_s:g} s), {run.resumes} times: the server (or a proxy in front of it, check `base_url`) sends it too slowly. The sync stopped; progress is saved up to the last complete window. Retry the sync later; raise `response_deadline_seconds` only if Pendo's answers are legitimately that slow.",
                internal_message=str(broke.__cause__),
                failure_type=FailureType.transient_error,
            ) from None
        if run.resumes > MAX_BODY_RESUMES and isinstance(broke.__cause__, zlib.error):
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo's answers to the aggregation request of app {run.app}, {iso_minute(run.start)} to {iso_minute(run.end)}, from {self._host()}, said `Content-Encoding: gzip` but their body could not be decompressed ({broke.__cause__}), {run.resumes} times. The body was altered on the way or was never gzip: a proxy or load balancer in front of the API (check `base_url`) rewrites the body or the Content-Encoding header; lowering page_size does not help. The sync stopped; progress is saved up to the last complete window.",
                internal_message=str(broke.__cause__),
                failure_type=FailureType.system_error,
            ) from None
        if run.resumes > MAX_BODY_RESUMES:
            raise AirbyteTracedException(
                message=f"Pendo kept breaking off responses for {self.name} (app {run.app}, {iso_minute(run.start)} to {iso_minute(run.end)}, from {self._host()}: {_cause(broke)}); the sync stopped without saving progress past the last complete window. The connection broke before the body was complete: retry the sync; lower page_size if it keeps happening.",
                internal_message=str(broke.__cause__ or broke),
                failure_type=FailureType.transient_error,
            ) from broke
        LOGGER.warning(
            f"{self.name}: app {run.app}: response broke off after {page.rows} rows ({shown}); resuming after the last emitted row"
        )

    def _host(self) -> str:
        """The API's origin, as `base_url` (or `region`) names it, for a message."""
        return origin_text(api_base(self.config))

    def _capped(self, run: WindowRun, rows: int, limit: int) -> None:
        """More rows followed a short answer: the server caps answers (BEHAVIOR.md §B-17); said once."""
        with self._lock:
            if self._cap_warned:
                return
            self._cap_warned = True
        LOGGER.warning(
            f"{self.name}: Pendo answered {rows} rows to a request limited to {limit} (app {run.app}, "
            f"{iso_minute(run.start)} to {iso_minute(run.end)}) although more rows followed: the server caps "
            f"answers below `limit` (or rows arrived between two requests). The connector reads on until it has "
            f"Pendo's count of rows: no rows are lost, at the cost of more requests (a page_size at or below the "
            f"cap saves them)."
        )

    def _too_deep(self, run: WindowRun, error: TooDeep) -> AirbyteTracedException:
        return AirbyteTracedException(
            message=f"{self.name}: Pendo sent a row (app {run.app}, window {iso_minute(run.start)} to {iso_minute(run.end)}) with {str(error).removeprefix('an aggregation row holds ')}, which cannot be read. The sync stopped; progress is saved up to the last complete window.",
            internal_message=str(error),
            failure_type=FailureType.system_error,
        )

    def _split(self, run: WindowRun, lo: int, hi: int, unit: int, error: AirbyteTracedException) -> int:
        """Where a part of the window Pendo could not answer is cut in two; raises when it cannot be."""
        if error.failure_type == FailureType.config_error or hi - lo <= unit:
            raise error
        middle = _split_point(lo, hi, unit)
        LOGGER.warning(
            f"{self.name}: app {run.app}, {iso_minute(lo)} to {iso_minute(hi)} failed ({error.message}); splitting at {iso_minute(middle)}"
        )
        return middle

    def read_range(
        self, run: WindowRun, lo: int, hi: int, limit: int | None = None
    ) -> Generator[RecordBatch, None, None]:
        """Rollups: every row of [lo, hi), one `timeSeries` over it, paged on (bucket, visitorId).

        Each answer is complete, or continued exactly under both readings of §R-1 (one pipeline over the
        periods, or one per period; the rows come sorted by (bucket, visitorId) under both):
        * fewer rows than `limit`: complete under both.
        * exactly `limit`: the rest of the last (bucket, visitor) group's bucket (`_read_bucket`), then the
          buckets after it (`t > B`, the next turn of this loop): exact under both.
        * more than `limit` (only per-period pipelines do that; remembered for the rest of the sync) or
          exactly `limit` once that is known: a bucket with `limit` rows may be truncated, every other one is
          complete; each truncated bucket is paged alone from its last group, and the range is done.
        The keyset needs no `||` (§R-11): the rest of bucket B is `t == B && visitorId >= V`, the rest of
        the range `t > B`; the range's bounds stay in every filter.

        When one period is read again (`run.read_on`), a short answer that leaves it short of its count is read on
        from as a full page is (a server may cap answers below `limit`, §B-17). `limit` (default page_size) is
        the first request's."""
        after: Any = None
        base_limit = limit or self.page_size
        limit = base_limit
        suspect = 0  # the rows of a short page read on from because the window is short of its count
        while True:
            body = self._body(run, lo, hi, limit, after=after)
            try:
                response = self.send(body, run)
            except AirbyteTracedException as error:
                if after is not None or not self.is_rollup:
                    raise
                middle = self._split(run, lo, hi, self._min_window, error)
                yield from self.read_range(run, lo, middle)
                yield from self.read_range(run, middle, hi)
                return
            if response is None:
                return
            page = PageState(None, set(), self.rows.group_pks, limit if self.is_rollup else 0)
            page.after = after
            broken = False
            try:
                yield from self.read_page(response, page, run)
            except BodyBroke as broke:
                self.broke(run, page, broke)
                broken = True
            finally:
                response.close()
            page.finish()
            if suspect and page.emitted:
                self._capped(run, suspect, limit)
            if not broken and page.rows < limit and not (run.read_on and run.short):
                return
            suspect = page.rows if not broken and page.rows < limit else 0
            if (
                not broken
                and self.is_rollup
                and page.rows >= limit
                and (page.rows > limit or self._per_period)
            ):
                if page.rows > limit and not self._per_period:
                    self._per_period = True
                    LOGGER.info(
                        f"{self.name}: Pendo answered {page.rows} rows to a request limited to {limit}: each period of a time series runs the pipeline on its own (BEHAVIOR.md R-1); truncated buckets are paged one by one"
                    )
                for bucket, visitor, seen in page.truncated:
                    yield from self._read_bucket(run, lo, hi, (bucket, visitor), seen)
                return
            last = page.last_group
            for bucket, visitor, seen in page.truncated:  # per-period answers truncated before the break
                if last is None or bucket != last[0]:
                    yield from self._read_bucket(run, lo, hi, (bucket, visitor), seen)
            if last is None:  # nothing emitted: the same request again (a wider one if the page was full)
                if not broken:
                    if page.rows < limit:  # a short page of rows all left out: nothing to read on from
                        return
                    limit = self._widened(limit, page)
                continue
            keyset, seen = page.resume_point()
            assert keyset is not None
            if (yield from self._read_bucket(run, lo, hi, keyset, seen)) and suspect:
                self._capped(run, suspect, limit)
                suspect = 0
            if self.is_rollup and int(keyset[0]) + self._min_bucket_gap >= hi:
                return  # no bucket can start after B inside the range: `t > B` would answer nothing
            after, limit = keyset[0], base_limit

    def _read_bucket(
        self, run: WindowRun, lo: int, hi: int, keyset: tuple[Any, Any], seen: set[tuple[Any, ...]]
    ) -> Generator[RecordBatch, None, int]:
        """The rows of one bucket (one rollup period, or one browserTime value of a single raw period) from
        visitor keyset[1] on, skipping the primary keys in `seen`; a request for one period is answered the
        same under both readings of §R-1. Returns how many records it emitted.

        A short page ends the bucket unless one period read again is still short of its count (`run.read_on`):
        then the bucket is read on from its last row; when such a page brought nothing new (every row was of the group already read), the
        visitors after that group are asked (`visitorId > V`): a cap may have stopped the answer inside it."""
        limit = self.page_size
        emitted = 0
        strict = False  # `visitorId > V`: the visitors after the keyset's group
        while True:
            body = self._body(run, lo, hi, limit, keyset=keyset, strict=strict)
            response = self.send(body, run)
            if response is None:
                return emitted
            page = PageState(keyset, seen, self.rows.group_pks, 0)
            try:
                yield from self.read_page(response, page, run)
            except BodyBroke as broke:
                emitted += page.emitted
                self.broke(run, page, broke)
                keyset, seen = resume(page, keyset, seen)
                continue
            finally:
                response.close()
            emitted += page.emitted
            new_keyset, new_seen = resume(page, keyset, seen)
            stuck = new_keyset == keyset and page.emitted == 0
            if page.rows < limit:
                if not (run.read_on and run.short) or (stuck and strict):
                    return emitted
                if stuck:  # perhaps capped inside the group already read: the visitors after it
                    strict, seen = True, set()
                    continue
            elif stuck:
                limit = self._widened(limit, page)
            strict = False
            keyset, seen = new_keyset, new_seen

    def _widened(self, limit: int, page: PageState) -> int:
        """One (bucket, visitor) group fills a page: a wider one."""
        if limit >= MAX_PAGE_SIZE and page.rows >= MAX_PAGE_SIZE:
            raise AirbyteTracedException(
                message=f"{self.name}: a single visitor has more than {MAX_PAGE_SIZE} rows in one bucket",
                failure_type=FailureType.system_error,
            )
        return min(limit * 2, MAX_PAGE_SIZE)

    def read_raw(
        self, run: WindowRun, lo: int, hi: int, counted: int | None = None, limit: int | None = None
    ) -> Generator[RecordBatch, None, None]:
        """Raw guide/poll events of the hourly periods of [lo, hi), selected by the `timeSeries` alone (§R-4:
        Pendo may select them into periods by a receive time while `browserTime` is hours off, so a
        `browserTime` filter would lose them for good). Under §R-1+§R-4 a multi-period answer is not sorted
        across periods, so no keyset is taken over it: a range `counted` at `limit` rows or more is split in
        halves at once; otherwise a page is held (at most `limit` rows) until it is known to be short, then
        emitted, and a full one is dropped and the span split in halves down to one period, which pages by
        keyset (`read_range`)."""
        if hi - lo <= HOUR_MS:
            yield from self.read_range(run, lo, hi, limit)
            return
        limit = limit or self.page_size
        if counted is not None and counted >= limit:
            middle = _split_point(lo, hi, HOUR_MS)
            yield from self.read_raw(run, lo, middle)
            yield from self.read_raw(run, middle, hi)
            return
        while True:
            body = self._body(run, lo, hi, limit)
            try:
                response = self.send(body, run)
            except AirbyteTracedException as error:
                middle = self._split(run, lo, hi, HOUR_MS, error)
                yield from self.read_raw(run, lo, middle)
                yield from self.read_raw(run, middle, hi)
                return
            if response is None:
                return
            held: list[tuple[bytes, list[Any]]] = []
            rows = 0
            try:
                reader = AggregationRowReader(self.rows.head_type)
                for chunk in body_chunks(response, self.deadline_s):
                    block = reader.feed_block(chunk)
                    if block is not None:
                        held.append(block)
                        rows += len(block[1])
                        if rows >= limit:
                            break
                    if reader.done:  # the answer is complete: no wait for the server to close
                        break
                if rows < limit:
                    reader.close()
            except TooDeep as error:
                raise self._too_deep(run, error) from None
            except BODY_ERRORS as error:
                self.broke(run, PageState(None, set(), self.rows.group_pks, 0), broke_from(error))
                continue  # nothing was emitted: ask again
            finally:
                response.close()
            if rows >= limit:  # full: by halves
                middle = _split_point(lo, hi, HOUR_MS)
                yield from self.read_raw(run, lo, middle)
                yield from self.read_raw(run, middle, hi)
                return
            page = PageState(None, set(), self.rows.group_pks, 0)
            for text, heads in held:
                yield from self.rows.read_block(text, heads, page, run)
            batch = run.builder.flush()
            if batch is not None:
                yield batch
            return

    def read_page(
        self, response: requests.Response, page: PageState, run: WindowRun
    ) -> Iterator[RecordBatch]:
        reader = AggregationRowReader(self.rows.head_type)
        builder = run.builder
        try:
            for chunk in body_chunks(response, self.deadline_s):
                block = reader.feed_block(chunk)
                if block is not None:
                    yield from self.rows.read_block(block[0], block[1], page, run)
                if reader.done:  # the answer is complete: no wait for the server to close the connection
                    break
            reader.close()
        except TooDeep as error:
            raise self._too_deep(run, error) from None
        except BODY_ERRORS as error:
            batch = builder.flush()  # rows parsed before the break are whole rows: emit them
            if batch is not None:
                yield batch
            raise broke_from(error) from error
        batch = builder.flush()
        if batch is not None:
            yield batch


def counted(text: bytes) -> int:
    """The count in an answer to `{"count": null}` (pendo.count_in); MalformedBody for anything else (a body
    that is not JSON, an object without `results`, a row without a whole-number `count`): asked again as a
    broken read is, never taken for an empty window."""
    try:
        return count_in(orjson.loads(text))
    except (orjson.JSONDecodeError, ValueError) as error:
        raise MalformedBody(
            f"the answer to a count is not a count ({error}): {text[:QUOTED_START].decode('utf-8', errors='replace')}",
            cut=True,
        ) from None


def _cause(broke: BodyBroke) -> str:
    """What broke a body off, in a few words (the exception's class and its first line)."""
    cause = broke.__cause__
    if cause is None:
        return "the body ended early"
    text = str(cause).splitlines()[0][:160] if str(cause) else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _split_point(start: int, end: int, unit: int) -> int:
    middle = start + (end - start) // 2
    middle -= (middle - start) % unit
    return middle if start < middle < end else start + unit
