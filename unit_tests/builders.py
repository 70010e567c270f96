"""Config, request and response builders for the unit tests; payloads live in resource/http/response/."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from airbyte_cdk.test.state_builder import StateBuilder

from source_pendo.source import SourcePendo

RESPONSES = Path(__file__).parent / "resource" / "http" / "response"
API_KEY = "00000000-unit-test-key.us"
API_BASE = "https://app.pendo.io/api/v1"
START_DATE = "2024-01-01"
DAY_MS = 86_400_000
ALL_APPS = 'expandAppIds("*")'


def payload(stream: str) -> Any:
    """A fresh copy of the stream's payload file."""
    return json.loads((RESPONSES / f"{stream}.json").read_text())


class ConfigBuilder:
    def __init__(self) -> None:
        # backfill_new_tags off: with it, feature_events and page_events first GET their catalogue (a request
        # the tests of other behaviours do not mock); test_tag_backfill.py turns it on.
        self._config: dict[str, Any] = {
            "api_key": API_KEY,
            "start_date": START_DATE,
            "backfill_new_tags": False,
        }

    def with_(self, **fields: Any) -> ConfigBuilder:
        self._config.update(fields)
        return self

    def build(self) -> dict[str, Any]:
        return dict(self._config)


def aggregation_request(
    stream: str, source: dict[str, Any], pipeline_filter: str, id_field: str, limit: int = 50_000
) -> HttpRequest:
    """POST /aggregation with exactly this body (matched as a dict)."""
    return HttpRequest(
        url=f"{API_BASE}/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {
                "name": f"source-pendo-{stream}",
                "pipeline": [
                    {"source": source},
                    {"filter": pipeline_filter},
                    {"sort": [id_field]},
                    {"limit": limit},
                ],
            },
        },
    )


ENTITY_METADATA_KIND = {"accounts": "account", "visitors": "visitor"}


def mock_metadata_schema(http_mocker: HttpMocker, stream: str) -> None:
    """GET /metadata/schema/<kind>: the schema loader of accounts and visitors asks for it on every read."""
    kind = ENTITY_METADATA_KIND[stream]
    http_mocker.get(get_request(f"metadata/schema/{kind}"), json_response(payload(f"metadata_{kind}s")))


def mock_count(
    http_mocker: HttpMocker, stream: str, source: dict[str, Any], response: HttpResponse | None = None
) -> None:
    """The size estimate's count request, sent before a read of accounts or visitors without saved state. The
    default answer counts 0 rows: any read holds at least that (more rows than counted is complete), so only the
    tests of the count check itself (test_estimates.py) give a count the read is held to."""
    http_mocker.post(count_request(stream, source), response or count_response())


def count_request(stream: str, source: dict[str, Any]) -> HttpRequest:
    """POST /aggregation: the size estimate's `count` over the source the entity stream reads."""
    return HttpRequest(
        url=f"{API_BASE}/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {
                "name": f"source-pendo-{stream}-count",
                "pipeline": [{"source": source}, {"count": None}],
            },
        },
    )


def count_response(count: int | None = None) -> HttpResponse:
    """The count payload file (a count of 0), or the same envelope with `count`."""
    body = payload("aggregation_count")
    if count is not None:
        body["results"][0]["count"] = count
    return json_response(body)


def get_request(endpoint: str, **query: str) -> HttpRequest:
    return HttpRequest(url=f"{API_BASE}/{endpoint}", query_params=query or None)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(json.dumps(body), status, headers or {})


def text_response(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status, {"Content-Type": "text/plain; charset=utf-8"})


def aggregation_response(rows: list[dict[str, Any]]) -> HttpResponse:
    return json_response({"startTime": 0, "results": rows})


def rows_like(stream: str, id_field: str, ids: list[str]) -> list[dict[str, Any]]:
    """One row per id, each a copy of the payload file's first row."""
    template = payload(stream)["results"][0]
    rows = []
    for row_id in ids:
        row = copy.deepcopy(template)
        row[id_field] = row_id
        rows.append(row)
    return rows


def catalog(stream: str, sync_mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(stream, sync_mode).build()


def state(stream: str, value: dict[str, Any]) -> list[AirbyteStateMessage]:
    return StateBuilder().with_stream_state(stream, value).build()


def read_stream(
    stream: str,
    config: dict[str, Any],
    sync_mode: SyncMode = SyncMode.full_refresh,
    stream_state: list[AirbyteStateMessage] | None = None,
    expecting_exception: bool = False,
) -> EntrypointOutput:
    """A read through the CDK's entry point wrapper. Unless `expecting_exception`, a stream that failed (an
    unmocked request, an unexpected answer) fails the test here with its error, so a test asserting only counts
    or state cannot pass on a sync that broke."""
    configured = catalog(stream, sync_mode)
    source = SourcePendo(config=config, catalog=configured, state=stream_state)
    output = read(source, config, configured, stream_state, expecting_exception=expecting_exception)
    if not expecting_exception and output.errors:
        messages = [e.trace.error.message for e in output.errors if e.trace and e.trace.error]
        raise AssertionError(f"{stream}: the sync failed although no error was expected: {messages}")
    return output


# ---------------------------------------------------------------------------------------------- activity
# The activity tests pin the connector's "now" (SOURCE_PENDO_NOW_MS, source_pendo/clock.py) to NOW_MS and
# start two periods before it, so every read has one or two windows whatever the window planner decides.
NOW_ENV = "SOURCE_PENDO_NOW_MS"
HOUR_MS = 3_600_000
NOW_MS = 1709424000000  # 2024-03-03T00:00Z
MAR_1 = 1709251200000  # 2024-03-01T00:00Z: the bucket of the rows in the activity payload files
MAR_2 = MAR_1 + DAY_MS
PERIOD_RANGE = {"DAY": "dayRange", "HOUR": "hourRange"}


class ActivityStream:
    """An activity stream as a test sees it: the Pendo source it reads and the row field it windows on."""

    def __init__(self, name: str, source: str, rollup: bool) -> None:
        self.name, self.source, self.rollup = name, source, rollup

    def __repr__(self) -> str:
        return self.name

    @property
    def cursor_field(self) -> str:
        return "periodStart" if self.rollup else "browserTime"

    def time_field(self, period: str) -> str:
        """`day`/`hour` for the rollups (by period), the raw event's own time for guide and poll events."""
        return period.lower() if self.rollup else "browserTime"

    def request(
        self,
        start: int,
        end: int,
        period: str = "DAY",
        app: str = "*",
        anonymous: bool = False,
        keyset: tuple[int, str] | None = None,
        limit: int = 50_000,
        after: int | None = None,
        filters: list[str] | None = None,
        strict: bool = False,
        object_id: tuple[str, str] | None = None,
    ) -> HttpRequest:
        """POST /aggregation for one (app, window) page: the whole pipeline, matched as a dict. Production value
        forms (appId a list of numeric strings, `last` a numeric string); a rollup `keyset` asks its bucket
        alone (`t == B && visitorId >= "V"`, `>` when `strict`), `after` the buckets after B; raw events ask
        hourly periods with no filter (BEHAVIOR.md R-1, R-4, R-10, R-11); `filters` are the server-side
        `filters` conditions, last; `object_id` (param, id) asks one tag's rows (a new tag's history)."""
        t = self.time_field(period)
        first, last = start, end - 1
        if keyset is not None and self.rollup:  # the bucket alone, up to its last millisecond
            first, last = keyset[0], keyset[0] + (DAY_MS if period == "DAY" else HOUR_MS) - 1
        conditions = []
        if after is not None:
            conditions.append(f"{t} > {after}")
        if keyset is not None:
            conditions += [
                f"{t} == {keyset[0]}",
                f"visitorId {'>' if strict else '>='} {json.dumps(keyset[1])}",
            ]
        pipeline = self._selection(
            start, end, (first, last), period, app, anonymous, conditions, filters, object_id
        )
        pipeline += [{"sort": [t, "visitorId"]}, {"limit": limit}]
        return self._aggregation(pipeline)

    def count_request(
        self,
        start: int,
        end: int,
        period: str = "DAY",
        app: str = "*",
        anonymous: bool = False,
        filters: list[str] | None = None,
        object_id: tuple[str, str] | None = None,
        **_: Any,
    ) -> HttpRequest:
        """POST /aggregation: Pendo's count of the rows of [start, end), the read's selection ended by
        `{"count": null}` (BEHAVIOR.md §B-22)."""
        pipeline = self._selection(
            start, end, (start, end - 1), period, app, anonymous, [], filters, object_id
        )
        return self._aggregation([*pipeline, {"count": None}])

    def _selection(
        self,
        start: int,
        end: int,
        series: tuple[int, int],
        period: str,
        app: str,
        anonymous: bool,
        keyset: list[str],
        filters: list[str] | None,
        object_id: tuple[str, str] | None,
    ) -> list[dict[str, Any]]:
        t = self.time_field(period)
        app_id: Any = ALL_APPS if app == "*" else [app]
        params = {"appId": app_id, **dict([object_id] if object_id else [])}
        time_series: dict[str, Any] = {"period": PERIOD_RANGE[period] if self.rollup else "hourRange"}
        if self.rollup:  # up to the last millisecond asked
            time_series.update(first=series[0], last=str(series[1]))
        else:  # raw events: whole hourly periods, counted
            time_series.update(first=series[0], count=-(-(series[1] + 1 - series[0]) // HOUR_MS))
        pipeline: list[dict[str, Any]] = [{"source": {self.source: params, "timeSeries": time_series}}]
        if not anonymous:
            pipeline.append({"identified": "visitorId"})
        conditions = [f"{t} >= {start}", f"{t} < {end}"] if self.rollup else []
        conditions += keyset + (filters or [])
        if conditions:
            pipeline.append({"filter": " && ".join(conditions)})
        return pipeline

    def _aggregation(self, pipeline: list[dict[str, Any]]) -> HttpRequest:
        return HttpRequest(
            url=f"{API_BASE}/aggregation",
            body={
                "response": {"mimeType": "application/json"},
                "request": {"name": f"source-pendo-{self.name}", "pipeline": pipeline},
            },
        )

    def mock_count(self, http_mocker: HttpMocker, start: int, end: int, count: int, **request: Any) -> None:
        """Pendo's count of [start, end) answered with `count` (`request`: period, app, anonymous, filters...)."""
        http_mocker.post(self.count_request(start, end, **request), count_response(count))

    def mock_window(
        self,
        http_mocker: HttpMocker,
        start: int,
        end: int,
        rows: list[dict[str, Any]],
        period: str = "DAY",
        anonymous: bool = False,
        **request: Any,
    ) -> int:
        """One window [start, end) answered with `rows`, as a normal Pendo answers it: its count, then (unless
        empty) one read (mock_window_reads); `request` holds the rest of `self.request`'s arguments (app,
        filters, limit). Returns the count."""
        return mock_window_reads(
            http_mocker,
            lambda lo, hi, **kw: self.request(lo, hi, period=period, anonymous=anonymous, **kw, **request),
            lambda lo, hi: self.count_request(lo, hi, period=period, anonymous=anonymous, **request),
            start,
            end,
            rows,
            time_field=self.time_field(period),
            rollup=self.rollup,
            anonymous=anonymous,
        )

    def rows(self, period: str = "DAY", at: int = MAR_1, app: str = "*") -> list[dict[str, Any]]:
        """The payload file's rows (of `app` only, unless `*`) moved to the bucket starting at `at`; a rollup
        row's time field is `hour` for HOUR."""
        rows = []
        for row in payload(self.name)["results"]:
            if app != "*" and row["appId"] != int(app):
                continue
            if self.rollup:
                del row["day"]
                row = {self.time_field(period): at, **row}
            else:  # the event keeps its offset in the bucket: in the day, or in the hour for HOUR
                offset = row["browserTime"] - MAR_1
                row["browserTime"] = at + (offset % HOUR_MS if period == "HOUR" else offset)
            rows.append(row)
        return rows

    def records(self, rows: list[dict[str, Any]], period: str = "DAY") -> list[dict[str, Any]]:
        """What the rows become as records: a rollup row gains `periodStart`, its bucket."""
        if not self.rollup:
            return rows
        return [{**row, "periodStart": row[self.time_field(period)]} for row in rows]


ACTIVITY_STREAMS = [
    ActivityStream("events", "events", rollup=True),
    ActivityStream("feature_events", "featureEvents", rollup=True),
    ActivityStream("page_events", "pageEvents", rollup=True),
    ActivityStream("track_events", "trackEvents", rollup=True),
    ActivityStream("guide_events", "guideEvents", rollup=False),
    ActivityStream("poll_events", "pollEvents", rollup=False),
]


def activity_state(
    period: str, start_date: str, apps: dict[str, dict[str, int]], include_anonymous_visitors: bool = False
) -> dict[str, Any]:
    """The state an activity stream (or visitor_history) saves: one frontier per app partition, and the
    include_anonymous_visitors it was read with (turned on later, every app is re-read)."""
    return {
        "version": 1,
        "period": period,
        "start_date": start_date,
        "include_anonymous_visitors": include_anonymous_visitors,
        "apps": apps,
    }


def filtered_activity_state(
    period: str, start_date: str, apps: dict[str, dict[str, int]], filters: str
) -> dict[str, Any]:
    """The state of an activity stream with `filters`: the conditions' fingerprint saved beside the frontiers."""
    return {**activity_state(period, start_date, apps), "filters": filters}


def record_data(output: EntrypointOutput) -> list[dict[str, Any]]:
    """The records' data in a stable order (windows are read concurrently, so records interleave)."""
    return sorted((r.record.data for r in output.records), key=lambda data: json.dumps(data, sort_keys=True))


def in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda data: json.dumps(data, sort_keys=True))


def in_pendo_order(rows: list[dict[str, Any]], time_field: str) -> list[dict[str, Any]]:
    """Activity rows as Pendo sorts them (`sort: [t, "visitorId"]`)."""
    return sorted(rows, key=lambda row: (row[time_field], row["visitorId"]))


def mock_keyset_pages(
    http_mocker: HttpMocker,
    request_for: Any,
    pages: list[list[dict[str, Any]]],
    id_field: str,
    limit: int = 50_000,
) -> list[HttpRequest]:
    """An entity keyset read (accounts, visitors, track_types): each page at its key ("" first, then the last id
    of the page before), and the probe KeysetPagination sends after a short page that is not empty and as long
    as every page before it (a server capping answers below `limit` would answer such a page; BEHAVIOR.md
    §B-17), answered with no rows as a normal server does. `request_for(after)` builds the request; returns
    the requests in order, the probe last when there is one."""
    requests, after, largest = [], "", 0
    for rows in pages:
        request = request_for(after)
        http_mocker.post(request, aggregation_response(rows))
        requests.append(request)
        if rows:
            after = str(rows[-1][id_field])
        short = len(rows) < limit
        probe = short and len(rows) > 0 and len(rows) >= largest
        largest = max(largest, len(rows))
        if short:
            if probe:
                request = request_for(after)
                http_mocker.post(request, aggregation_response([]))
                requests.append(request)
            break
    return requests


def mock_window_reads(
    http_mocker: HttpMocker,
    request_for: Callable[..., HttpRequest],
    count_for: Callable[[int, int], HttpRequest],
    start: int,
    end: int,
    rows: list[dict[str, Any]],
    *,
    time_field: str,
    rollup: bool = True,
    anonymous: bool = False,
) -> int:
    """An activity window whose answer is `rows` (fewer than `limit`), answered as a normal Pendo answers every
    request the connector then sends: Pendo's count of the window (BEHAVIOR.md §B-22: the rows in it, anonymous
    visitors left out unless they are included, as `identified` does), then, unless it counts none, one read
    of the whole window, whose answer holds the count: nothing more is asked.

    `request_for(lo, hi)` and `count_for(lo, hi)` build the requests. The rows must be sorted by (time,
    visitorId), as Pendo sends them (an anonymous visitor Pendo should not have sent may be among them: it is
    read, counted as read, and left out). Returns the count."""
    t = time_field
    key = [(row[t], row["visitorId"]) for row in rows]
    assert key == sorted(key), "rows as Pendo sends them: sorted by (time, visitorId)"
    in_window = [row for row in rows if not rollup or start <= row[t] < end]
    counted = len(
        [row for row in in_window if anonymous or not str(row["visitorId"]).startswith("_PENDO_T_")]
    )
    http_mocker.post(count_for(start, end), count_response(counted))
    if counted:
        http_mocker.post(request_for(start, end), aggregation_response(in_window))
    return counted
