"""The aggregation bodies of an activity stream's windows (BEHAVIOR.md §B-15, §B-16, §B-17).

One request of a window: its source and `timeSeries` (the part of the window asked, or one rollup bucket), the
`identified` stage unless anonymous visitors are included, one filter of `&&`-joined comparisons (the window's
bounds for rollups, the keyset, the stream's server-side `filters`), `sort` on (time, visitorId) and `limit`.
Only `&&` of comparisons (§R-11); the value forms production clients send (§R-10): `appId` a list of numeric
strings or `expandAppIds("*")`, `first` an integer, `last` a numeric string.

Rollups: `last` is always the last millisecond of what is asked (the range's, or one bucket's), never its start:
right whether Pendo reads `last` as the bucket holding it or as an exclusive instant on the rows' own times
(BEHAVIOR.md §B-11, §R-15). Raw guide/poll events: `first` and `count` (hourly periods), Pendo's documented form,
which names whole periods: an event at a period's last millisecond is selected under both readings of `last`. The count of a part (`count`) is the same source, `identified`, `timeSeries` and
filter as its read, ended by `{"count": null}` (tap-pendo's production form, §B-13).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..pendo import EVERY_APP, HOUR_MS, OBJECT_ID_PARAM, PERIOD_MS, PERIOD_RANGE, aggregation_body, literal


@dataclass(frozen=True)
class WindowBodies:
    """The request bodies of one activity stream."""

    name: str  # the stream: the request's name in Pendo's logs
    source: str  # the Pendo source, e.g. featureEvents
    period: str  # DAY or HOUR (rollups); raw guide/poll events always ask hourly periods
    is_rollup: bool
    time: str  # the rows' time field: day, hour or browserTime
    anonymous: bool  # include_anonymous_visitors: no `identified` stage
    filter_conditions: tuple[str, ...] = ()  # the stream's `filters` in confirmed forms (§B-12)

    def read(
        self,
        app: str,
        object_id: str | None,
        lo: int,
        hi: int,
        limit: int,
        after: Any = None,
        keyset: tuple[Any, Any] | None = None,
        strict: bool = False,
    ) -> dict[str, Any]:
        """One request of the range [lo, hi): all of it, `t > after`, or the rest of `keyset`'s bucket from its
        visitor on (`>` its visitor when `strict`; a rollup bucket is asked alone, up to its last millisecond)."""
        t = self.time
        series = (lo, hi)
        if keyset is not None and self.is_rollup:
            series = (int(keyset[0]), int(keyset[0]) + PERIOD_MS[self.period])
        conditions = []
        if after is not None:
            conditions.append(f"{t} > {after}")
        if keyset is not None:
            conditions += [f"{t} == {keyset[0]}", f"visitorId {'>' if strict else '>='} {literal(keyset[1])}"]
        pipeline = self._selection(app, object_id, (lo, hi), series, conditions)
        pipeline += [{"sort": [t, "visitorId"]}, {"limit": limit}]
        return aggregation_body(self.name, pipeline)

    def count(self, app: str, object_id: str | None, lo: int, hi: int) -> dict[str, Any]:
        """How many rows the range [lo, hi) has: its read's selection, then `{"count": null}`."""
        pipeline = self._selection(app, object_id, (lo, hi), (lo, hi), [])
        pipeline.append({"count": None})
        return aggregation_body(self.name, pipeline)

    def _selection(
        self,
        app: str,
        object_id: str | None,
        bounds: tuple[int, int],
        series: tuple[int, int],
        keyset: list[str],
    ) -> list[dict[str, Any]]:
        """The source with its `timeSeries` over `series` ([first, last + 1)), `identified`, and one filter: the
        range's `bounds` on the bucket (rollups; a bucket belongs to the range holding its start), the `keyset`
        conditions, the stream's `filters`."""
        app_param: Any = EVERY_APP if app == "*" else [str(app)]
        period = PERIOD_RANGE[self.period] if self.is_rollup else PERIOD_RANGE["HOUR"]
        params: dict[str, Any] = {"appId": app_param}
        if object_id is not None:
            params[OBJECT_ID_PARAM[self.source]] = object_id
        source: dict[str, Any] = {self.source: params, "timeSeries": self._series(period, series)}
        pipeline: list[dict[str, Any]] = [{"source": source}]
        if not self.anonymous:
            pipeline.append({"identified": "visitorId"})
        t = self.time
        conditions = [f"{t} >= {bounds[0]}", f"{t} < {bounds[1]}"] if self.is_rollup else []
        conditions += keyset
        conditions += self.filter_conditions
        if conditions:
            pipeline.append({"filter": " && ".join(conditions)})
        return pipeline

    def _series(self, period: str, series: tuple[int, int]) -> dict[str, Any]:
        """Rollups: `first` and `last` = the last millisecond asked (a rollup row's time is its bucket's start, so
        `last` read as the bucket holding it or as an exclusive instant selects the same rows, §R-15). Raw events:
        `first` and `count`, the number of hourly periods, so no row at a period's last millisecond depends on
        how `last` is read."""
        if self.is_rollup:
            return {"period": period, "first": series[0], "last": str(series[1] - 1)}
        return {"period": period, "first": series[0], "count": -(-(series[1] - series[0]) // HOUR_MS)}
