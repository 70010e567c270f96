"""The request bodies of a custom aggregation stream.

Activity sources (events, pageEvents, featureEvents, trackEvents, guideEvents, pollEvents) are read one bucket
per request (retriever.py explains why): the source gets the `timeSeries` of that one bucket and the app
partition's `appId`, then `{"identified": "visitorId"}` unless anonymous visitors are included, then the user's
stages, then paging. Other sources are full refresh: the user's source (with the configured `appId` unless it
names one) and stages, then paging.

Paging (BEHAVIOR.md §B-17 has no cursor): with a primary key of one field (besides `periodStart`), a keyset
after the user's stages, `{"sort": [k]}`, `{"filter": "k > <last>"}` (from the second page), `{"limit": N}`;
without one, one request with `{"limit": N}`, and an answer of N rows stops the sync (it may be truncated).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..pendo import EVERY_APP, PERIOD_RANGE, aggregation_body, literal
from ..settings.custom_aggregations import CustomAggregation


def source_stage(
    entry: CustomAggregation, app_ids: list[str], app: str | None, period: str | None, at_ms: int | None
) -> dict[str, Any]:
    """The source stage: the user's params with `appId` (an activity stream's partition: `["<app>"]` or every
    app; otherwise the user's own, else the configured apps, the visitors source every app, as the built-in
    streams send it, BEHAVIOR.md §R-2) and, for one activity bucket, its `timeSeries`: `first` an instant inside
    it (`at_ms`), `count` 1: the one bucket (subscription time zone) holding that instant, whole, whatever the
    source: a raw event at its last millisecond is in it under both readings of `last` (§B-11, §R-15). Which
    bucket that is, the answer's `startTime` says (retriever.py, §B-21)."""
    params = dict(entry.params or {})
    if entry.is_activity:
        params["appId"] = EVERY_APP if app in (None, "*") else [str(app)]
    elif "appId" not in params:
        params["appId"] = EVERY_APP if entry.source_name == "visitors" or not app_ids else list(app_ids)
    source: dict[str, Any] = {entry.source_name: params}
    if entry.is_activity:
        assert period is not None and at_ms is not None
        source["timeSeries"] = {"period": PERIOD_RANGE[period], "first": at_ms, "count": 1}
    return {"source": source}


def request_body(
    entry: CustomAggregation,
    config: Mapping[str, Any],
    limit: int,
    app: str | None = None,
    at_ms: int | None = None,
    after: Any = None,
    count: bool = False,
) -> dict[str, Any]:
    """One request: the source, `identified` (activity, unless anonymous visitors are included), the user's
    stages, then the keyset (sort, `k > after`) when the stream has one, and `limit`; with `count`, the user's
    stages ended by `{"count": null}` instead (how many rows the request unit has, BEHAVIOR.md §B-22)."""
    period = str(config.get("period") or "DAY")
    pipeline = [source_stage(entry, list(config.get("app_ids") or []), app, period, at_ms)]
    if entry.is_activity and not config.get("include_anonymous_visitors"):
        pipeline.append({"identified": "visitorId"})
    pipeline += entry.pipeline
    if count:
        pipeline.append({"count": None})
        return aggregation_body(entry.name, pipeline)
    key = entry.keyset_field
    if key is not None:
        pipeline.append({"sort": [key]})
        if after is not None:
            pipeline.append({"filter": f"{key} > {literal(after)}"})
    pipeline.append({"limit": limit})
    return aggregation_body(entry.name, pipeline)
