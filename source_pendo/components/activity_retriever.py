"""Reads one (app, window) partition of an activity stream from the aggregation API.

Why a custom retriever: the aggregation API has no pagination (PENDO_API.md §5.6), so paging is a
keyset on the sort order (bucket, visitorId); a response must be streamed, not held; a body that
breaks after some rows were emitted must resume after those rows instead of starting over; and a
window the API cannot answer (timeout, 5xx after retries) is split in half down to one period.

Per window: `filter: t >= start && t < end` (plus the keyset), `sort: [t, visitorId]`, `limit`. Rows of
the (t, visitorId) group at a page boundary are asked for again by the next page (`>=`) and the ones
already emitted are skipped by primary key, so a page boundary can fall anywhere without loss or
duplicates. The anonymous-visitor toggle is the `identified` stage server side and is checked again
client side; rows outside the window are dropped, so a lenient server cannot produce duplicates.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from datetime import datetime, timezone
from typing import Any

import msgspec
import orjson
import requests

from airbyte_cdk.models import AirbyteStreamStatus, FailureType, StreamDescriptor
from airbyte_cdk.sources.declarative.requesters.http_requester import HttpRequester
from airbyte_cdk.sources.declarative.retrievers.retriever import Retriever
from airbyte_cdk.sources.streams.core import StreamData
from airbyte_cdk.sources.types import Config, StreamSlice
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status_message
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .record_batch import RecordBatchBuilder
from .row_stream import AggregationRowReader, MalformedBody, TruncatedBody

LOGGER = logging.getLogger("airbyte")
ANONYMOUS_PREFIX = "_PENDO_T_"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_BODY_RESUMES = 8
MAX_PAGE_SIZE = 2_000_000
PERIOD_FIELD = {"DAY": "day", "HOUR": "hour"}
PERIOD_RANGE = {"DAY": "dayRange", "HOUR": "hourRange"}


class RowKey(msgspec.Struct):
    """The fields of a row the record path needs: time, keyset, primary key. Others stay raw."""

    day: Any = None
    hour: Any = None
    browserTime: Any = None
    visitorId: Any = None
    accountId: Any = None
    appId: Any = None
    server: Any = None
    remoteIp: Any = None
    userAgent: Any = None
    featureId: Any = None
    pageId: Any = None
    trackTypeId: Any = None
    guideId: Any = None
    guideStepId: Any = None
    pollId: Any = None
    type: Any = None


_ROW_KEYS = msgspec.json.Decoder(list[RowKey])


class _BodyBroke(Exception):
    """The response body broke off (reset, timeout, truncated JSON) after its headers arrived."""


@dataclass
class ActivityRetriever(Retriever):
    requester: HttpRequester
    config: Config
    parameters: InitVar[Mapping[str, Any]]
    name: str
    source: str
    time_field: str  # "bucket" (day/hour by period) or a raw-event field such as "browserTime"
    primary_key: Any = None
    cursor: Any = None
    _running_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _running_sent: bool = field(default=False, init=False, repr=False)

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self.requester.stream_response = True  # headers first, body read incrementally below
        self._period = str(self.config.get("period") or "DAY")
        self._is_rollup = self.time_field == "bucket"
        self._time = PERIOD_FIELD[self._period] if self._is_rollup else self.time_field
        self._time_bytes = orjson.dumps("periodStart") if self._is_rollup else None
        self._page_size = int(self.config.get("page_size") or 50_000)
        self._anonymous = bool(self.config.get("include_anonymous_visitors", False))
        self._pk_fields = [f for f in (self.primary_key or []) if f != "periodStart"]
        self._min_window = DAY_MS if self._period == "DAY" else HOUR_MS

    # ------------------------------------------------------------------ Retriever
    def read_records(self, records_schema: Mapping[str, Any], stream_slice: StreamSlice | None = None) -> Iterable[StreamData]:
        assert stream_slice is not None
        app = stream_slice.partition["app_id"]
        start, end = int(stream_slice["start"]), int(stream_slice["end"])
        builder = RecordBatchBuilder(self.name)
        try:
            if not self._running_sent:
                with self._running_lock:
                    first, self._running_sent = not self._running_sent, True
                if first:
                    yield stream_status_message(StreamDescriptor(name=self.name), AirbyteStreamStatus.RUNNING)
            pages = yield from self._read_window(app, start, end, builder)
            batch = builder.flush()
            if batch is not None:
                yield batch
            LOGGER.info(f"{self.name}: app {app}, {_iso(start)} to {_iso(end)}: {builder.total} records in {pages} request(s)")
            if self.cursor is not None:
                self.cursor.observe_window(stream_slice, builder.total)
        finally:
            if self.cursor is not None:
                self.cursor.release_window()

    # ------------------------------------------------------------------ one window
    def _read_window(self, app: str, start: int, end: int, builder: RecordBatchBuilder) -> Iterator[Any]:
        """Keyset pages until a short page; splits the window when the API cannot answer it."""
        keyset: tuple[Any, Any] | None = None
        seen_in_group: set[tuple[Any, ...]] = set()
        limit = self._page_size
        pages = resumes = 0
        while True:
            body = self._body(app, start, end, keyset, limit)
            try:
                response = self.requester.send_request(request_body_json=body, stream_slice=StreamSlice(partition={"app_id": app}, cursor_slice={}))
            except AirbyteTracedException as error:
                if error.failure_type == FailureType.config_error or keyset is not None or end - start <= self._min_window:
                    raise
                middle = _split_point(start, end, self._min_window)
                LOGGER.warning(f"{self.name}: app {app}, {_iso(start)} to {_iso(end)} failed ({error.message}); splitting at {_iso(middle)}")
                first = yield from self._read_window(app, start, middle, builder)
                second = yield from self._read_window(app, middle, end, builder)
                return pages + first + second
            pages += 1
            if response is None:
                return pages
            page = _PageState(keyset, seen_in_group)
            try:
                yield from self._read_page(response, page, start, end, builder)
            except _BodyBroke as broke:
                resumes += 1
                if resumes > MAX_BODY_RESUMES:
                    raise AirbyteTracedException(
                        message=f"Pendo kept breaking off responses for {self.name} (app {app}, {_iso(start)} to {_iso(end)}); the sync stopped without saving progress past the last complete window. Retry the sync; lower page_size if it keeps happening.",
                        internal_message=str(broke.__cause__ or broke),
                        failure_type=FailureType.transient_error,
                    ) from broke
                LOGGER.warning(f"{self.name}: app {app}: response broke off after {page.rows} rows ({broke.__cause__!r}); resuming after the last emitted row")
                keyset, seen_in_group = page.resume_point()
                continue
            finally:
                response.close()
            if page.rows < limit:
                return pages
            new_keyset, seen_in_group = page.resume_point()
            if new_keyset == keyset and page.emitted == 0:
                limit = min(limit * 2, MAX_PAGE_SIZE)  # one (bucket, visitor) group fills a page: widen it
                if limit == MAX_PAGE_SIZE and page.rows >= MAX_PAGE_SIZE:
                    raise AirbyteTracedException(message=f"{self.name}: a single visitor has more than {MAX_PAGE_SIZE} rows in one bucket", failure_type=FailureType.system_error)
            keyset = new_keyset

    def _read_page(self, response: requests.Response, page: _PageState, start: int, end: int, builder: RecordBatchBuilder) -> Iterator[Any]:
        reader = AggregationRowReader()
        time_name = self._time
        try:
            for chunk in response.iter_content(chunk_size=256 * 1024):
                rows = reader.feed(chunk)
                if not rows:
                    continue
                keys = _ROW_KEYS.decode(b"[" + b",".join(rows) + b"]")
                for raw, key in zip(rows, keys):
                    page.rows += 1
                    t = getattr(key, time_name)
                    if not isinstance(t, int) or t < start or t >= end:
                        continue
                    visitor = key.visitorId
                    if not self._anonymous and isinstance(visitor, str) and visitor.startswith(ANONYMOUS_PREFIX):
                        continue
                    group = (t, visitor)
                    pk = tuple(getattr(key, f, None) for f in self._pk_fields)
                    if group == page.keyset and pk in page.seen:
                        continue
                    page.track(group, pk)
                    batch = builder.add(raw, self._time_bytes, t) if self._is_rollup else builder.add(raw)
                    if batch is not None:
                        yield batch
            reader.close()
        except (requests.RequestException, TruncatedBody, MalformedBody) as error:
            batch = builder.flush()  # rows parsed before the break are whole rows: emit them
            if batch is not None:
                yield batch
            raise _BodyBroke() from error
        batch = builder.flush()
        if batch is not None:
            yield batch

    # ------------------------------------------------------------------ request
    def _body(self, app: str, start: int, end: int, keyset: tuple[Any, Any] | None, limit: int) -> dict[str, Any]:
        t = self._time
        app_param: Any = 'expandAppIds("*")' if app == "*" else int(app)
        source: dict[str, Any] = {self.source: {"appId": app_param}, "timeSeries": {"period": PERIOD_RANGE[self._period], "first": start, "last": end - 1}}
        pipeline: list[dict[str, Any]] = [{"source": source}]
        if not self._anonymous:
            pipeline.append({"identified": "visitorId"})
        condition = f"{t} >= {start} && {t} < {end}"
        if keyset is not None:
            bucket, visitor = keyset
            condition += f" && ({t} > {bucket} || ({t} == {bucket} && visitorId >= {_literal(visitor)}))"
        pipeline += [{"filter": condition}, {"sort": [t, "visitorId"]}, {"limit": limit}]
        return {"response": {"mimeType": "application/json"}, "request": {"name": f"source-pendo-{self.name}", "pipeline": pipeline}}


class _PageState:
    """What one page has emitted, so a later page (or a resumed one) can continue right after it."""

    def __init__(self, keyset: tuple[Any, Any] | None, seen: set[tuple[Any, ...]]) -> None:
        self.keyset = keyset
        self.seen = seen
        self.rows = 0
        self.emitted = 0
        self.last_group: tuple[Any, Any] | None = None
        self.last_group_pks: set[tuple[Any, ...]] = set()

    def track(self, group: tuple[Any, Any], pk: tuple[Any, ...]) -> None:
        self.emitted += 1
        if group != self.last_group:
            self.last_group = group
            self.last_group_pks = set(self.seen) if group == self.keyset else set()
        self.last_group_pks.add(pk)

    def resume_point(self) -> tuple[tuple[Any, Any] | None, set[tuple[Any, ...]]]:
        """The keyset to ask from next, and the primary keys of that group already emitted."""
        if self.last_group is None:
            return self.keyset, self.seen
        return self.last_group, self.last_group_pks


def _literal(value: Any) -> str:
    """A Pendo expression literal: JSON string escaping (`\"`, `\\`), numbers as they are."""
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if value is None:
        return '""'
    return str(value)


def _split_point(start: int, end: int, unit: int) -> int:
    middle = start + (end - start) // 2
    middle -= (middle - start) % unit
    return middle if start < middle < end else start + unit


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
