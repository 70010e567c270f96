"""One page of an activity window: where the window's records go, what a page emitted, and a response body as it
arrives.

* `RecordSink`, `WindowRun`: a window being read (its app or lane, its bounds, where its records go, Pendo's
  count of its rows, the rows read, what its requests cost).
* `PageState`: what one page (one response) has emitted, so the next page, or the same page resumed after its
  body broke off, continues right after it; with `limit`, the rows of each bucket as the server sent them, to
  find the buckets a per-period answer may have cut (BEHAVIOR.md §R-1).
* `body_chunks`: the body as it arrives, inflated here when gzip; `BODY_ERRORS` are what a body that breaks off
  raises, `broke_from` wraps one as `BodyBroke` for the pager (pager.py).
"""

from __future__ import annotations

import bisect
import collections
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
import urllib3

from .record_batch import RecordBatch
from .rows import AggregationRowReader, MalformedBody, TooDeep, TruncatedBody

CHUNK_BYTES = 256 * 1024


class BodyBroke(Exception):
    """The response body broke off (reset, timeout, truncated JSON) after its headers arrived."""


class RecordSink(Protocol):
    """Where a window's records go: a RecordBatchBuilder, or a collector (visitor history's active visitors)."""

    total: int

    @property
    def separator(self) -> bytes: ...

    def add(
        self, row: bytes, leading_field: bytes | None = None, leading_value: int = 0
    ) -> RecordBatch | None: ...

    def add_block(self, block: bytes, count: int) -> RecordBatch | None: ...

    def flush(self) -> RecordBatch | None: ...


class WindowRows:
    """The rows of one window, told apart by a digest (`RowFormat.digests`), each with its copies.

    `emitted`: the copies of each row written so far in the window, so a row any later answer repeats (the rest of
    a keyset group, a resumed page, a part read again) is not written twice. `read`: for the current read (the
    window, or one part of it read again), the most copies of each row any one answer held: one answer's copies
    are distinct events (two identical guide events are two rows Pendo counts), another answer's are the same
    ones again. `total` is the rows of the current read, what Pendo's count is compared with."""

    def __init__(self) -> None:
        self.read: dict[int, int] = {}
        self.emitted = self.read  # the window's first read: what it reads is what it writes
        self.total = 0

    def start_part(self) -> None:
        """A part of the window is read again: its rows are counted afresh, the window's written ones stay."""
        if self.emitted is self.read:
            self.emitted = dict(self.read)
        self.read, self.total = {}, 0

    def all_new(self, digests: list[int], page_copies: dict[int, int]) -> bool:
        """Whether every row of a block is new to the window and appears once in it: the block goes as it is."""
        return (
            len(set(digests)) == len(digests)
            and self.read.keys().isdisjoint(digests)
            and (self.emitted is self.read or self.emitted.keys().isdisjoint(digests))
        )

    def take_all(self, digests: list[int], page_copies: dict[int, int]) -> None:
        """A block `all_new` said is new: one copy of each, read and written."""
        ones = dict.fromkeys(digests, 1)
        page_copies.update(ones)
        self.read.update(ones)
        if self.emitted is not self.read:
            self.emitted.update(ones)
        self.total += len(digests)

    def take(self, digest: int, page_copies: dict[int, int]) -> tuple[bool, bool]:
        """One row of an answer: (new to this read, to be written)."""
        copy = page_copies.get(digest, 0) + 1
        page_copies[digest] = copy
        if copy <= self.read.get(digest, 0):  # an earlier answer of this read held this copy
            return False, False
        self.read[digest] = copy
        self.total += 1
        if self.emitted is self.read:
            return True, True
        if self.emitted.get(digest, 0) >= copy:  # written by an earlier read of the window
            return True, False
        self.emitted[digest] = copy
        return True, True


@dataclass
class WindowRun:
    """One window being read: where its records go, what Pendo counts in it, what was read, what it cost.

    Rows are told apart (`rows`, WindowRows) while the window is small enough to keep a digest of each (Pendo's
    count at most pager.MAX_TRACKED_ROWS); `rows_read` counts the rows of the current read otherwise."""

    app: str
    start: int
    end: int
    builder: RecordSink
    object_id: str | None = None  # one object's rows (a new tag's history), or every object's
    expected: int | None = None  # Pendo's count for the window (or the part being read again)
    rows: WindowRows | None = None
    rows_read: int = 0
    read_on: bool = (
        False  # one period read again: short pages are read on from while it is short of its count
    )
    buckets: collections.Counter[int] = field(
        default_factory=collections.Counter
    )  # rollup rows written, by bucket
    pages: int = 0
    resumes: int = 0

    def start_attempt(self, track: bool, expected: int, read_on: bool = False) -> None:
        """A read of the window (or of one part of it) begins; Pendo counts `expected` rows in it."""
        self.expected = expected
        self.rows_read = 0
        self.read_on = read_on
        if not track:
            self.rows = None
        elif self.rows is None:
            self.rows = WindowRows()
        else:
            self.rows.start_part()

    def tally(self, lo: int, hi: int) -> int:
        """The rollup rows written in the window whose bucket starts in [lo, hi)."""
        return sum(n for bucket, n in self.buckets.items() if lo <= bucket < hi)

    @property
    def read(self) -> int:
        """The rows the current read has seen (written or not)."""
        return self.rows.total if self.rows is not None else self.rows_read

    @property
    def short(self) -> bool:
        """Fewer rows read than Pendo counts: the answers so far cannot be all of them."""
        return self.expected is not None and self.read < self.expected


class PageState:
    """What one page has emitted, so a later page (or a resumed one) can continue right after it.

    With `limit` (rollup range pages) it also counts the rows of each bucket as the server sent them, and
    keeps, for every bucket that reached `limit` rows, its last (bucket, visitor) group and that group's
    primary keys (`truncated`): under per-period pipelines (§R-1) such a bucket may have been cut off.
    Per block that is a comparison or two (a block rarely spans buckets); the rows are sorted by
    (bucket, visitorId) under both readings."""

    def __init__(
        self,
        keyset: tuple[Any, Any] | None,
        seen: set[tuple[Any, ...]],
        group_pks: Callable[[bytes, tuple[Any, Any]], set[tuple[Any, ...]]],
        limit: int = 0,
    ) -> None:
        self.keyset = keyset
        self.after: Any = None  # a range page's `t > after`, checked like the keyset
        self.seen = seen
        self.limit = limit
        self.rows = 0
        self.emitted = 0
        self.copies: dict[int, int] = {}  # copies of each row digest this answer held (WindowRows)
        self.last_group: tuple[Any, Any] | None = None
        self.truncated: list[tuple[Any, Any, set[tuple[Any, ...]]]] = []
        self._tail_blocks: list[bytes] = []  # the blocks that hold rows of last_group
        self._group_pks = group_pks
        self._bucket: Any = None  # the bucket being counted, its rows so far, its last visitor
        self._bucket_rows = 0
        self._bucket_visitor: Any = None
        self._bucket_tail: list[bytes] = []

    def note(self, text: bytes, last_group: tuple[Any, Any], emitted: int) -> None:
        """A block was emitted up to a row of `last_group`."""
        self.emitted += emitted
        if last_group == self.last_group:
            self._tail_blocks.append(text)
        else:
            self.last_group, self._tail_blocks = last_group, [text]

    def observe(self, text: bytes, times: list[Any], visitors: list[Any]) -> None:
        """Count a block's rows per bucket (all rows, emitted or not)."""
        n = len(times)
        i = 0
        while i < n:
            bucket = times[i]
            j = n if times[-1] == bucket else bisect.bisect_right(times, bucket, i)
            if bucket != self._bucket:
                self._finish_bucket()
                self._bucket, self._bucket_rows, self._bucket_visitor, self._bucket_tail = bucket, 0, None, []
            self._bucket_rows += j - i
            visitor = visitors[j - 1]
            if visitor == self._bucket_visitor:
                self._bucket_tail.append(text)
            else:
                self._bucket_visitor, self._bucket_tail = visitor, [text]
            i = j

    def finish(self) -> None:
        """The page ended: the last bucket is counted too."""
        self._finish_bucket()
        self._bucket = None

    def _finish_bucket(self) -> None:
        if self._bucket is not None and self.limit and self._bucket_rows >= self.limit:
            group = (self._bucket, self._bucket_visitor)
            pks: set[tuple[Any, ...]] = set()
            for text in self._bucket_tail:
                pks |= self._group_pks(text, group)
            self.truncated.append((self._bucket, self._bucket_visitor, pks))
        self._bucket_tail = []

    def resume_point(self) -> tuple[tuple[Any, Any] | None, set[tuple[Any, ...]]]:
        """The keyset to ask from next, and the primary keys of that group already emitted."""
        if self.last_group is None:
            return self.keyset, self.seen
        pks = set(self.seen) if self.last_group == self.keyset else set()
        for text in self._tail_blocks:
            pks |= self._group_pks(text, self.last_group)
        return self.last_group, pks


def resume(
    page: PageState, keyset: tuple[Any, Any], seen: set[tuple[Any, ...]]
) -> tuple[tuple[Any, Any], set[tuple[Any, ...]]]:
    """Where to ask from after `page` (asked at `keyset`, skipping `seen`): its resume point, or the same."""
    new_keyset, new_seen = page.resume_point()
    return (keyset, seen) if new_keyset is None else (new_keyset, new_seen)


BODY_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
    zlib.error,
    TruncatedBody,
    MalformedBody,
)


def whole_body(response: requests.Response, deadline_s: float | None = None) -> bytes:
    """The whole body of a small answer (a count, a custom aggregation's page), read until its JSON envelope is
    complete rather than until the server closes: a server holding the connection open after a complete answer
    costs nothing (issue 24: it cost the read timeout, retried). A body that is not an envelope is read to
    its end and left to the caller to judge."""
    reader: AggregationRowReader | None = AggregationRowReader()
    parts: list[bytes] = []
    for chunk in body_chunks(response, deadline_s):
        parts.append(chunk)
        if reader is not None:
            try:
                reader.feed_block(chunk)
            except (MalformedBody, TooDeep):
                reader = None
            else:
                if reader.done:
                    break
    return b"".join(parts)


def broke_from(error: BaseException) -> BodyBroke:
    broke = BodyBroke()
    broke.__cause__ = error
    return broke


class ResponseDeadline(requests.Timeout):
    """The answer was still arriving `response_deadline_seconds` after its request was sent."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"the answer was still arriving after response_deadline_seconds ({deadline_s:g} s)")
        self.deadline_s = deadline_s


def _pieces(response: requests.Response, size: int, deadline_s: float | None) -> Iterator[bytes]:
    """The raw body as the socket delivers it, each piece one read (`read1`: a server dripping bytes cannot hold
    one call), checked against the whole answer's deadline (from the request sent: `elapsed` is the wait for
    the headers) after each piece."""
    raw = response.raw
    elapsed = getattr(response, "elapsed", None)
    started = time.monotonic() - (elapsed.total_seconds() if elapsed is not None else 0.0)
    read1 = getattr(raw, "read1", None)
    pieces = (
        iter(lambda: read1(size, decode_content=False), b"")
        if read1 is not None
        else raw.stream(size, decode_content=False)
    )
    for data in pieces:
        if not data:
            return
        yield data
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            raise ResponseDeadline(deadline_s)


def body_chunks(response: requests.Response, deadline_s: float | None = None) -> Iterator[bytes]:
    """The response body as it arrives, decompressed here when gzip: urllib3's decoder bounds each call's
    output and copies the unconsumed input every time (measured: a third of the record path's CPU). With
    `deadline_s`, ResponseDeadline when the answer is still arriving that long after its request was sent."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("gzip", "x-gzip", "", "identity"):
        yield from response.iter_content(chunk_size=CHUNK_BYTES)
        return
    raw = _pieces(response, CHUNK_BYTES // 8 if encoding else CHUNK_BYTES, deadline_s)
    if not encoding or encoding == "identity":
        yield from raw
        return
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for data in raw:
        while data:
            out = inflater.decompress(data)
            if out:
                yield out
            data = b""
            if inflater.eof and inflater.unused_data:  # another gzip member follows
                data, inflater = inflater.unused_data, zlib.decompressobj(16 + zlib.MAX_WBITS)
    if not inflater.eof:
        raise TruncatedBody("the gzip stream of the response ended before its end marker")
