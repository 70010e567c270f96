"""Pages of one activity window: how a window's rows are asked for, page after page, until every one was read.

Why: the aggregation API has no pagination (BEHAVIOR.md §B-17), so paging is a keyset on the sort order
(bucket, visitorId); a body that breaks after some rows were emitted resumes after those rows instead of
starting over; and a part of a window the API cannot answer (timeout, 5xx after retries) is split in half down
to one period.

Rollups (`read_range`): `timeSeries` over the range, `filter: t >= start && t < end` (plus the keyset),
`sort: [t, visitorId]`, `limit`. After a full page the rest of the boundary (t, visitorId) group's bucket is
asked alone (`t == B && visitorId >= V`, its one period, `_read_bucket`), skipping by primary key the rows
already emitted, then the buckets after it (`t > B`): `&&` only (§R-11), and exact whether Pendo runs one
pipeline over the periods or one per period (§R-1). An answer longer than `limit` proves per-period pipelines:
its buckets with `limit` rows are each paged alone, the others are complete.

Raw guide/poll events (`read_raw`, §R-4): Pendo may select them into periods by a receive time while
`browserTime` is hours off, so they are selected by the `timeSeries` alone (hourly periods; windows start on
whole hours, so every event is in exactly one window's answer) with no `browserTime` window check; a
multi-period answer is held (at most `limit` rows) until it is known to be short, a full one is dropped and the
span split down to one period, which pages by keyset.

A short answer ends its range unless it may be a server's cap (§B-17): not empty and at least as long as every
earlier answer of its window and of its lane's earlier windows (answers.py). Such an answer is read on from as a
full page is (rollups and single periods: the rest of the last group's bucket, the visitors after that group
when it filled the answer, then `t > B`; raw answers over several periods: by halves).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.types import Config, StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..http.messages import quoted
from ..pendo import DAY_MS, HOUR_MS
from .bodies import WindowBodies
from .pages import BODY_ERRORS, BodyBroke, PageState, WindowRun, body_chunks, broke_from, resume
from .record_batch import RecordBatch
from .records import RowFormat
from .rows import AggregationRowReader, MalformedBody, TooDeep
from .windows import iso_minute

LOGGER = logging.getLogger("airbyte")
MAX_BODY_RESUMES = 8
MAX_PAGE_SIZE = 2_000_000


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

    def read(self, run: WindowRun) -> Generator[RecordBatch, None, None]:
        """Every row of the window `run` into its builder (batches yielded as the builder makes them)."""
        if self.is_rollup:
            yield from self.read_range(run, run.start, run.end)
        else:
            yield from self.read_raw(run, run.start, run.end)

    def _body(self, run: WindowRun, lo: int, hi: int, limit: int, **keyset: Any) -> dict[str, Any]:
        return self.bodies.read(run.app, run.object_id, (run.start, run.end), lo, hi, limit, **keyset)

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
        if run.resumes > MAX_BODY_RESUMES and isinstance(broke.__cause__, MalformedBody):
            raise AirbyteTracedException(
                message=f"{self.name}: Pendo answered the aggregation request of app {run.app}, {iso_minute(run.start)} to {iso_minute(run.end)} with HTTP 200 and a body that is not an aggregation answer ({quoted(str(broke.__cause__), self.config)}), {run.resumes} times. The sync stopped rather than read it as an empty answer; progress is saved up to the last complete window. Retry the sync later (a maintenance page or a proxy in the way answers like this); if it persists, check `base_url`.",
                internal_message=quoted(str(broke.__cause__), self.config),
                failure_type=FailureType.transient_error,
            ) from None
        if run.resumes > MAX_BODY_RESUMES:
            raise AirbyteTracedException(
                message=f"Pendo kept breaking off responses for {self.name} (app {run.app}, {iso_minute(run.start)} to {iso_minute(run.end)}); the sync stopped without saving progress past the last complete window. Retry the sync; lower page_size if it keeps happening.",
                internal_message=str(broke.__cause__ or broke),
                failure_type=FailureType.transient_error,
            ) from broke
        LOGGER.warning(
            f"{self.name}: app {run.app}: response broke off after {page.rows} rows ({broke.__cause__!r}); resuming after the last emitted row"
        )

    def _capped(self, run: WindowRun, rows: int, limit: int) -> None:
        """More rows followed a short answer: the server caps answers (BEHAVIOR.md §B-17); said once."""
        with self._lock:
            if self._cap_warned:
                return
            self._cap_warned = True
        LOGGER.warning(
            f"{self.name}: Pendo answered {rows} rows to a request limited to {limit} (app {run.app}, "
            f"{iso_minute(run.start)} to {iso_minute(run.end)}) although more rows followed: the server caps "
            f"answers below `limit` (or rows arrived between two requests). The connector reads on after every "
            f"answer that may be capped: no rows are lost, at the cost of more requests (a page_size at or "
            f"below the cap saves them)."
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

    def read_range(self, run: WindowRun, lo: int, hi: int) -> Generator[RecordBatch, None, None]:
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
        the range `t > B`; the window's bounds stay in every filter."""
        after: Any = None
        limit = self.page_size
        suspect = 0  # the rows of a short page read on from, as possibly capped (answers.py): 0 when none
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
            if not broken:
                run.answers.note(page.rows)
                if page.rows < limit and not run.answers.may_be_capped(page.rows):
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
            after, limit = keyset[0], self.page_size

    def _read_bucket(
        self, run: WindowRun, lo: int, hi: int, keyset: tuple[Any, Any], seen: set[tuple[Any, ...]]
    ) -> Generator[RecordBatch, None, int]:
        """The rows of one bucket (one rollup period, or one browserTime value of a single raw period) from
        visitor keyset[1] on, skipping the primary keys in `seen`; a request for one period is answered the
        same under both readings of §R-1. Returns how many records it emitted.

        A short page ends the bucket unless it may be a capped one (answers.py): then the bucket is read on
        from its last row; when such a page brought nothing new (every row was of the group already read), the
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
            run.answers.note(page.rows)
            new_keyset, new_seen = resume(page, keyset, seen)
            stuck = new_keyset == keyset and page.emitted == 0
            if page.rows < limit:
                if not run.answers.may_be_capped(page.rows) or (stuck and strict):
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

    def read_raw(self, run: WindowRun, lo: int, hi: int) -> Generator[RecordBatch, None, None]:
        """Raw guide/poll events of the hourly periods of [lo, hi), selected by the `timeSeries` alone (§R-4:
        Pendo may select them into periods by a receive time while `browserTime` is hours off, so a
        `browserTime` filter would lose them for good). Under §R-1+§R-4 a multi-period answer is not sorted
        across periods, so no keyset is taken over it: a page is held (at most `limit` rows) until it is
        known to be short, then emitted; a full one is dropped and the span split in halves down to one
        period, which pages by keyset (`_read_range`)."""
        if hi - lo <= HOUR_MS:
            yield from self.read_range(run, lo, hi)
            return
        limit = self.page_size
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
                for chunk in body_chunks(response):
                    block = reader.feed_block(chunk)
                    if block is not None:
                        held.append(block)
                        rows += len(block[1])
                        if rows >= limit:
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
            if rows < limit:
                run.answers.note(rows)
            if rows >= limit or run.answers.may_be_capped(rows):  # full, or perhaps capped: by halves
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
            for chunk in body_chunks(response):
                block = reader.feed_block(chunk)
                if block is not None:
                    yield from self.rows.read_block(block[0], block[1], page, run)
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


def _split_point(start: int, end: int, unit: int) -> int:
    middle = start + (end - start) // 2
    middle -= (middle - start) % unit
    return middle if start < middle < end else start + unit
