"""The aggregation bodies of an activity stream's windows (BEHAVIOR.md §B-15, §B-16, §B-17).

One request of a window: its source and `timeSeries` (the part of the window asked, or one rollup bucket), the
`identified` stage unless anonymous visitors are included, one filter of `&&`-joined comparisons (the window's
bounds for rollups, the keyset, the stream's server-side `filters`), `sort` on (time, visitorId) and `limit`.
Only `&&` of comparisons (§R-11); the value forms production clients send (§R-10): `appId` a list of numeric
strings or `expandAppIds("*")`, `first` an integer, `last` a numeric string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..pendo import EVERY_APP, OBJECT_ID_PARAM, PERIOD_RANGE, aggregation_body, literal


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
        window: tuple[int, int],
        lo: int,
        hi: int,
        limit: int,
        after: Any = None,
        keyset: tuple[Any, Any] | None = None,
        strict: bool = False,
    ) -> dict[str, Any]:
        """One request of `window`: [lo, hi) of it (a rollup `keyset` asks its bucket alone), `t > after`, or
        the rest of `keyset`'s bucket from its visitor on (`>` its visitor when `strict`)."""
        t = self.time
        first, last = lo, hi - 1
        if keyset is not None and self.is_rollup:
            first = last = int(keyset[0])
        app_param: Any = EVERY_APP if app == "*" else [str(app)]
        period = PERIOD_RANGE[self.period] if self.is_rollup else PERIOD_RANGE["HOUR"]
        params: dict[str, Any] = {"appId": app_param}
        if object_id is not None:
            params[OBJECT_ID_PARAM[self.source]] = object_id
        source: dict[str, Any] = {
            self.source: params,
            "timeSeries": {"period": period, "first": first, "last": str(last)},
        }
        pipeline: list[dict[str, Any]] = [{"source": source}]
        if not self.anonymous:
            pipeline.append({"identified": "visitorId"})
        conditions = [f"{t} >= {window[0]}", f"{t} < {window[1]}"] if self.is_rollup else []
        if after is not None:
            conditions.append(f"{t} > {after}")
        if keyset is not None:
            conditions += [f"{t} == {keyset[0]}", f"visitorId {'>' if strict else '>='} {literal(keyset[1])}"]
        conditions += self.filter_conditions
        if conditions:
            pipeline.append({"filter": " && ".join(conditions)})
        pipeline += [{"sort": [t, "visitorId"]}, {"limit": limit}]
        return aggregation_body(self.name, pipeline)
