"""Runs aggregation requests against the dataset, fast enough that the emulator is never the bottleneck.

Event rows are kept per (source, period) in one list sorted on the natural key
(bucket, visitorId, accountId, appId, server, remoteIp, userAgent, object id), each row pre-rendered
to JSON bytes once. A request's time series and the parts of its filter that are plain bounds on the
bucket (or the keyset bound `bucket > B || (bucket == B && visitorId >= V)`) become a bisected index
range; whatever else the filter says is evaluated row by row, so narrowing never changes an answer.
Requests the fast path cannot prove equivalent (select, eval, count, unusual sorts, a limit before a
filter) run through the generic stage engine on dicts. Both paths are tested to agree.

Readings (readings.py) that act here: `per_period_pipeline` runs the stages once per timeSeries period that
has rows (each period on the fast path when its stages allow) and concatenates the outputs in period order;
`receive_time_buckets` selects guide/poll events by `receivedTime` from a second index sorted on it;
`visitors_by_app` scopes the visitors source by `appId` like the event sources; `rows_without_browsertime` answers
some guide/poll events without `browserTime` (still selected into periods by it; filtered and sorted as served); `exclusive_last` ends a time series
before `last` on the rows' own times; `limit_before_sort` and `sort_first_key_only` run the stages the way a
server that reads rows in storage order would (the generic engine, with a `StorageOrder` stage).
"""

from __future__ import annotations

import bisect
import itertools
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import expressions, pipeline
from .dataset import ANONYMOUS_PREFIX, HOUR_MS, OBJECT_FIELD, RAW_EVENT_SOURCES, ROLLUP_SOURCES, Dataset

OBJECT_PARAM = {
    "featureEvents": "featureId",
    "pageEvents": "pageId",
    "trackEvents": "trackTypeId",
    "guideEvents": "guideId",
    "pollEvents": "pollId",
}
CATALOGUE_SOURCES = {
    "pages": "pages",
    "features": "features",
    "guides": "guides",
    "trackTypes": "track_types",
}


def natural_key(row: dict[str, Any], time_field: str, object_field: str | None) -> tuple[Any, ...]:
    sk = pipeline.sort_key
    return (
        row.get(time_field),
        sk(row.get("visitorId")),
        sk(row.get("accountId")),
        row.get("appId"),
        sk(row.get("server")),
        sk(row.get("remoteIp")),
        sk(row.get("userAgent")),
        sk(row.get(object_field)) if object_field else None,
        sk(row.get("type")),
    )


@dataclass
class EventIndex:
    """Rows of one (source, period) sorted on their natural key, with what a query needs per row."""

    time_field: str
    sort_fields: tuple[str, ...]
    rows: list[dict[str, Any]]
    blobs: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    keyset: list[tuple[Any, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, rows: list[dict[str, Any]], time_field: str, object_field: str | None) -> EventIndex:
        ordered = sorted(rows, key=lambda r: natural_key(r, time_field, object_field))
        fields = (time_field, "visitorId", "accountId", "appId", "server", "remoteIp", "userAgent") + (
            (object_field,) if object_field else ()
        )
        index = cls(time_field, fields, ordered)
        index.blobs = [orjson.dumps(r) for r in ordered]
        index.times = [r[time_field] for r in ordered]
        index.keyset = [(r[time_field], pipeline.sort_key(r.get("visitorId"))) for r in ordered]
        return index


@dataclass
class QueryResult:
    start_time: int
    blobs: Iterator[bytes]
    served_buckets: set[int] = field(default_factory=set)


class QueryEngine:
    """Answers parsed aggregation requests from a Dataset; thread-safe, indexes built lazily."""

    def __init__(self, dataset: Dataset, now_ms: int, readings: frozenset[str] = frozenset()) -> None:
        self.dataset = dataset
        self.now_ms = now_ms
        self.readings = readings
        self._indexes: dict[tuple[str, str], EventIndex] = {}
        self._lock = threading.Lock()
        self.late_rows_enabled = False
        self._served: set[tuple[str, str, int]] = set()
        self._late_visible: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ indexes
    def clear_indexes(self) -> None:
        """The catalogue changed (a new tag, a deletion): rows are indexed again from the dataset."""
        with self._lock:
            self._indexes.clear()

    def index(self, source: str, period: str) -> EventIndex:
        key = (source, period)
        with self._lock:
            if key not in self._indexes:
                if source in ROLLUP_SOURCES:
                    rows = self.dataset.rollup_rows(source, period)
                    self._indexes[key] = EventIndex.build(
                        rows, "day" if period == "dayRange" else "hour", OBJECT_FIELD[source]
                    )
                else:  # "raw" by browserTime, "raw_received" by receivedTime
                    index = EventIndex.build(
                        self.dataset.raw_events(source),
                        "receivedTime" if period == "raw_received" else "browserTime",
                        "guideId",
                    )
                    if "rows_without_browsertime" in self.readings:  # answered without browserTime,
                        for i, row in enumerate(
                            index.rows
                        ):  # selected into periods by their time all the same
                            served = self.dataset.served_raw_event(row)
                            if served is not row:
                                index.rows[i], index.blobs[i] = served, orjson.dumps(served)
                    self._indexes[key] = index
            return self._indexes[key]

    # ------------------------------------------------------------------ entry point
    def run(self, request: pipeline.AggregationRequest) -> QueryResult:
        source = request.source_name
        if source in ROLLUP_SOURCES or source in RAW_EVENT_SOURCES:
            return self._run_events(request)
        rows = self._entity_rows(request)
        start = 0
        if request.time_series is not None:
            start = self._bucket_range(request.time_series)[0]
        return QueryResult(
            start, (orjson.dumps(r) for r in pipeline.apply_stages(rows, request.stages, self.now_ms))
        )

    # ------------------------------------------------------------------ entities
    def _app_filter(self, app_ids: Any) -> set[int] | None:
        if app_ids == "all":
            return None
        if app_ids == "default":
            return {self.dataset.app_ids[0]}
        return set(app_ids)

    def _entity_rows(self, request: pipeline.AggregationRequest) -> list[dict[str, Any]]:
        source = request.source_name
        if source == "visitors":
            rows = self.dataset.visitor_rows
            if "visitors_by_app" in self.readings:  # scoped by appId like the event sources
                apps = self._app_filter(request.app_ids)
                if apps is not None:
                    member = self.dataset.visitor_apps
                    rows = [r for r in rows if not apps.isdisjoint(member[r["visitorId"]])]
            if request.params.get("identified") is True:
                rows = [r for r in rows if not r["visitorId"].startswith(ANONYMOUS_PREFIX)]
            return rows
        if source == "accounts":
            return self.dataset.account_rows
        apps = self._app_filter(request.app_ids)
        objects = self.dataset.catalogue(CATALOGUE_SOURCES[source])
        return [o for o in objects if apps is None or o["appId"] in apps]

    # ------------------------------------------------------------------ time series
    def _bucket_range(self, ts: pipeline.TimeSeries) -> tuple[int, int]:
        """[first bucket start, end of last bucket) per BEHAVIOR.md §B-11."""
        ds = self.dataset
        first = ds.bucket_start(ts.period, ts.first_ms)
        if ts.count is not None:
            if ts.count >= 0:
                end = first
                for _ in range(ts.count):
                    end = ds.next_bucket(ts.period, end)
                return first, end
            start = first
            for _ in range(-ts.count):
                start = ds.bucket_start(ts.period, start - 1)
            return start, first
        if "exclusive_last" in self.readings:  # rows whose own time is before `last`
            return first, max(first, ts.last_ms)
        last = ds.bucket_start(ts.period, ts.last_ms)
        if last < first:
            return first, first
        return first, ds.next_bucket(ts.period, last)

    # ------------------------------------------------------------------ events
    def _run_events(self, request: pipeline.AggregationRequest) -> QueryResult:
        source = request.source_name
        ts = request.time_series
        period = ts.period if ts is not None else "hourRange"
        if source in ROLLUP_SOURCES:
            index = self.index(source, period)
        else:
            index = self.index(source, "raw_received" if "receive_time_buckets" in self.readings else "raw")
        if ts is not None:
            lo_t, hi_t = self._bucket_range(ts)
        else:  # no time series: all time (the emulator's choice; no request the connector sends relies on it)
            lo_t, hi_t = -(2**62), 2**62
        if ts is not None and "per_period_pipeline" in self.readings:
            # Planned now, before `_mark_served`: a late row must not show in the request that serves its bucket.
            selections = [
                self._select(request, period, index, b, e)
                for b, e in self._periods(index, ts.period, lo_t, hi_t)
            ]
            blobs: Iterator[bytes] = itertools.chain.from_iterable(selections)
        else:
            blobs = self._select(request, period, index, lo_t, hi_t)
        # A count does not serve rows: late rows (`late_rows`) show to requests after a read served their bucket.
        counting = bool(request.stages) and request.stages[-1].kind == "count"
        served = set() if counting else self._mark_served(source, period, index, lo_t, hi_t)
        return QueryResult(lo_t if ts is not None else 0, blobs, served)

    def _periods(self, index: EventIndex, period: str, lo_t: int, hi_t: int) -> Iterator[tuple[int, int]]:
        """R-1: the [start, end) of each period in [lo_t, hi_t) that holds rows, in order (a period without
        rows contributes nothing to the response)."""
        times, ds = index.times, self.dataset
        pos, hi = bisect.bisect_left(times, lo_t), bisect.bisect_left(times, hi_t)
        while pos < hi:
            start = ds.bucket_start(period, times[pos])
            end = ds.next_bucket(period, start)
            yield max(start, lo_t), min(end, hi_t)
            pos = bisect.bisect_left(times, end, pos, hi)

    def _select(
        self, request: pipeline.AggregationRequest, period: str, index: EventIndex, lo_t: int, hi_t: int
    ) -> Iterator[bytes]:
        """The response rows of the stages over the index rows with time in [lo_t, hi_t)."""
        source = request.source_name
        lo = bisect.bisect_left(index.times, lo_t)
        hi = bisect.bisect_left(index.times, hi_t)
        stages = self._stages_as_read(list(request.stages))
        # rows without browserTime are filtered and sorted on the row as served (a missing browserTime is
        # null: no comparison holds, it sorts first), which only the generic engine does
        generic = any(isinstance(s, StorageOrder) for s in stages) or (
            "rows_without_browsertime" in self.readings and source in RAW_EVENT_SOURCES
        )
        fast = None if generic else _fast_plan(stages, index)
        row_checks = self._row_checks(request, index)
        if fast is None:
            rows: Iterable[dict[str, Any]] = (
                index.rows[i] for i in range(lo, hi) if all(c(index.rows[i]) for c in row_checks)
            )
            rows = self._with_late_rows(source, period, rows, lo_t, hi_t, index, row_checks)
            return (orjson.dumps(r) for r in pipeline.apply_stages(rows, stages, self.now_ms))
        lo, hi = _narrow(index, lo, hi, fast.bounds, fast.lex_bounds)
        checks = row_checks + [_predicate(e, self.now_ms) for e in fast.residual]
        if fast.identified is not None:
            checks.append(_identified_check(fast.identified))
        late_checks = [_predicate(e, self.now_ms) for e in fast.exact]
        return self._fast_blobs(source, period, index, lo, hi, checks, fast.limit, lo_t, hi_t, late_checks)

    def _stages_as_read(self, stages: list[Any]) -> list[Any]:
        """The stages as a server under `limit_before_sort` (R-16) or `sort_first_key_only` (R-17) runs them."""
        if "sort_first_key_only" in self.readings:
            out: list[Any] = []
            for stage in stages:
                if isinstance(stage, pipeline.SortStage):
                    out += [StorageOrder(), pipeline.SortStage(stage.keys[:1])]
                else:
                    out.append(stage)
            stages = out
        if "limit_before_sort" in self.readings:
            sorts = [i for i, s in enumerate(stages) if isinstance(s, pipeline.SortStage)]
            limits = [i for i, s in enumerate(stages) if isinstance(s, pipeline.LimitStage)]
            if sorts and limits and limits[-1] > sorts[-1]:
                limit = stages.pop(limits[-1])
                stages[sorts[-1] : sorts[-1]] = [StorageOrder(), limit]
        return stages

    def _row_checks(self, request: pipeline.AggregationRequest, index: EventIndex) -> list[Any]:
        checks = []
        apps = self._app_filter(request.app_ids)
        if apps is not None:
            checks.append(lambda r, apps=apps: r["appId"] in apps)
        param = OBJECT_PARAM.get(request.source_name)
        wanted = request.params.get(param) if param else None
        if wanted is not None:
            checks.append(lambda r, p=param, w=wanted: r.get(p) == w)
        return checks

    def _fast_blobs(
        self,
        source: str,
        period: str,
        index: EventIndex,
        lo: int,
        hi: int,
        checks: list[Any],
        limit: int | None,
        lo_t: int,
        hi_t: int,
        late_checks: list[Any],
    ) -> Iterator[bytes]:
        rows, blobs = index.rows, index.blobs
        late = [
            r
            for r in self._late_candidates(source, period, lo_t, hi_t, index)
            if all(c(r) for c in late_checks)
        ]
        if late:
            merged = sorted(
                [(index.keyset[i], i, None) for i in range(lo, hi)]
                + [((r[index.time_field], pipeline.sort_key(r.get("visitorId"))), -1, r) for r in late],
                key=lambda t: (t[0], t[1] < 0),
            )
            selected = (
                orjson.dumps(r) if r is not None else blobs[i]
                for _, i, r in merged
                if all(c(r if r is not None else rows[i]) for c in checks)
            )
        elif checks:
            selected = (blobs[i] for i in range(lo, hi) if all(c(rows[i]) for c in checks))
        else:
            selected = iter(blobs[lo:hi])
        if limit is None:
            return selected
        return _take(selected, limit)

    # ------------------------------------------------------------------ late-arriving rows
    def _mark_served(self, source: str, period: str, index: EventIndex, lo_t: int, hi_t: int) -> set[int]:
        if not self.late_rows_enabled or source not in ROLLUP_SOURCES:
            return set()
        lo = bisect.bisect_left(index.times, lo_t)
        hi = bisect.bisect_left(index.times, hi_t)
        buckets = set(index.times[lo:hi])
        with self._lock:
            for b in buckets:
                self._served.add((source, period, b))
        return buckets

    def _late_candidates(
        self, source: str, period: str, lo_t: int, hi_t: int, index: EventIndex
    ) -> list[dict[str, Any]]:
        """Late rows become visible once their bucket has been served before (in this period)."""
        if not self.late_rows_enabled or source not in ROLLUP_SOURCES:
            return []
        late_hours = self.dataset.late_hour_rows(source)
        rows = late_hours if period == "hourRange" else self.dataset.rollup_by_day(late_hours, source)
        field_name = index.time_field
        with self._lock:
            return [
                r
                for r in rows
                if lo_t <= r[field_name] < hi_t and (source, period, r[field_name]) in self._served
            ]

    def _with_late_rows(
        self,
        source: str,
        period: str,
        rows: Iterable[dict[str, Any]],
        lo_t: int,
        hi_t: int,
        index: EventIndex,
        checks: list[Any],
    ) -> Iterable[dict[str, Any]]:
        late = [
            r for r in self._late_candidates(source, period, lo_t, hi_t, index) if all(c(r) for c in checks)
        ]
        if not late:
            return rows
        return sorted(list(rows) + late, key=lambda r: natural_key(r, index.time_field, None)[:2])

    def visible_late_rows(self, source: str, period: str) -> list[dict[str, Any]]:
        """The late rows a client could have seen so far (for tests)."""
        index = self.index(source, period)
        return self._late_candidates(source, period, -(2**62), 2**62, index)


@dataclass
class FastPlan:
    bounds: list[expressions.Bound]
    lex_bounds: list[tuple[Any, Any, bool]]
    residual: list[Any]
    exact: list[Any]
    identified: str | None
    limit: int | None


def _fast_plan(stages: list[Any], index: EventIndex) -> FastPlan | None:
    """A plan when the stages are identified/filter/sort(prefix of the stored order) then an optional limit."""
    bounds: list[expressions.Bound] = []
    lex: list[tuple[Any, Any, bool]] = []
    residual: list[Any] = []
    exact: list[Any] = []  # conjuncts answered by the index range (re-checked on late rows only)
    identified = None
    limit = None
    for n, stage in enumerate(stages):
        if stage.kind == "limit":
            if n != len(stages) - 1:
                return None
            limit = stage.n
        elif stage.kind == "identified":
            if identified is not None:
                return None
            identified = stage.field
        elif stage.kind == "filter":
            for part in expressions.conjuncts(stage.expr):
                bound = expressions.field_bound(part, index.time_field)
                lexb = expressions.lex_lower_bound(part, (index.time_field, "visitorId"))
                if bound is not None:
                    bounds.append(bound)
                    exact.append(part)
                elif lexb is not None and isinstance(lexb[1], str):
                    lex.append(lexb)
                    exact.append(part)
                else:
                    residual.append(part)
        elif stage.kind == "sort":
            keys = list(stage.keys)
            if any(k.startswith("-") for k in keys) or tuple(keys) != index.sort_fields[: len(keys)]:
                return None
        else:
            return None
    return FastPlan(bounds, lex, residual, exact, identified, limit)


def _narrow(
    index: EventIndex, lo: int, hi: int, bounds: list[expressions.Bound], lex: list[tuple[Any, Any, bool]]
) -> tuple[int, int]:
    for b in bounds:
        if b.lower is not None and isinstance(b.lower, (int, float)):
            pos = (bisect.bisect_left if b.lower_inclusive else bisect.bisect_right)(index.times, b.lower)
            lo = max(lo, pos)
        if b.upper is not None and isinstance(b.upper, (int, float)):
            pos = (bisect.bisect_right if b.upper_inclusive else bisect.bisect_left)(index.times, b.upper)
            hi = min(hi, pos)
        if (b.lower is not None and not isinstance(b.lower, (int, float))) or (
            b.upper is not None and not isinstance(b.upper, (int, float))
        ):
            return lo, lo  # a time compared with a non-number is never true (§B-12 comparison semantics)
    for first, second, inclusive in lex:
        if not isinstance(first, (int, float)):
            return lo, lo
        key = (first, pipeline.sort_key(second))
        pos = (bisect.bisect_left if inclusive else bisect.bisect_right)(index.keyset, key)
        lo = max(lo, pos)
    return lo, max(lo, hi)


def _predicate(expr: Any, now_ms: int) -> Any:
    return lambda row: bool(expr.evaluate(row, now_ms))


def _identified_check(field_spec: str) -> Any:
    if field_spec.startswith("!"):
        name = field_spec[1:]
        return lambda r: str(r.get(name, "")).startswith(ANONYMOUS_PREFIX)
    return lambda r: not str(r.get(field_spec, "")).startswith(ANONYMOUS_PREFIX)


class StorageOrder:
    """Rows in the order a server stores them: a fixed shuffle (by a checksum of each row), not the sort order.
    The stage readings R-16 and R-17 put it where such a server would read rows in."""

    kind = "storage_order"

    def apply(self, rows: Iterator[dict[str, Any]], now_ms: int) -> Iterator[dict[str, Any]]:
        return iter(sorted(rows, key=lambda row: zlib.crc32(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))))


def _take(items: Iterator[bytes], n: int) -> Iterator[bytes]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


__all__ = ["HOUR_MS", "QueryEngine", "QueryResult"]
