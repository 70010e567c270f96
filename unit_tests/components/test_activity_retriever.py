"""The activity retriever: keyset pages, resume after a broken body, window split when the API gives up."""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson
import pytest
import urllib3
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.types import StreamSlice
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_pendo.activity.record_batch import RecordBatch
from source_pendo.activity.records import DAY_MS, RowFormat, check_within_reach
from source_pendo.activity.retriever import ActivityRetriever

DAY = 86_400_000
START = 1_800_000_000_000 - 1_800_000_000_000 % DAY
PK = ["appId", "visitorId", "accountId", "server", "remoteIp", "userAgent", "periodStart"]
RAW_PK = ["appId", "guideId", "guideStepId", "visitorId", "accountId", "type", "browserTime"]
HOUR = 3_600_000


def series_range(ts: dict[str, Any], period: int) -> tuple[int, int]:
    """The [start, end) a request's `timeSeries` names: `first`'s period, then `count` periods or up to the one
    holding `last` (the forms the connector sends: `first` an integer, `last` a numeric string)."""
    assert isinstance(ts["first"], int), ts
    start = ts["first"] - ts["first"] % period
    if "count" in ts:
        assert isinstance(ts["count"], int) and ts["count"] > 0 and "last" not in ts, ts
        return start, start + ts["count"] * period
    assert isinstance(ts["last"], str), ts
    last = int(ts["last"])
    return start, last - last % period + period


def make_rows(days: int = 4, visitors: int = 7) -> list[dict[str, Any]]:
    return [
        {
            "appId": 1,
            "day": START + d * DAY,
            "visitorId": f"v{v}",
            "accountId": "a",
            "server": "s",
            "remoteIp": "ip",
            "userAgent": ua,
            "numEvents": 1,
        }
        for d in range(days)
        for v in range(visitors)
        for ua in ("ua1", "ua2")
    ]


class FakeResponse:
    """A streamed response: `raw.stream` hands out the body in 50-byte pieces, or breaks off after `break_after`."""

    def __init__(
        self,
        body: bytes,
        break_after: int | None = None,
        gzip: bool = False,
        truncate_after: int | None = None,
    ) -> None:
        self._body = zlib.compress(body, wbits=31) if gzip else body
        self._break_after, self._truncate_after = break_after, truncate_after
        self.headers: dict[str, str] = {"Content-Encoding": "gzip"} if gzip else {}
        self.raw = self

    def stream(self, amt: int, decode_content: bool = True) -> Any:
        assert not decode_content, "the retriever decompresses the body itself"
        for i in range(0, len(self._body), 50):
            if self._break_after is not None and i >= self._break_after:
                raise urllib3.exceptions.ProtocolError("Connection broken: connection reset mid-body")
            if self._truncate_after is not None and i >= self._truncate_after:
                return  # the connection closed cleanly, early
            yield self._body[i : i + 50]

    def close(self) -> None:
        pass


def _matches(row: dict[str, Any], condition: str) -> bool:
    """A strict filter (§R-11): `field op literal` comparisons joined by `&&`, nothing else."""
    assert "||" not in condition and "(" not in condition, condition
    for part in condition.split(" && "):
        field, op, text = part.split(" ", 2)
        value, literal = row.get(field), json.loads(text)
        ok = {">=": value >= literal, ">": value > literal, "<": value < literal, "==": value == literal}[op]
        if not ok:
            return False
    return True


class FakeAggregationApi:
    """Answers the retriever's bodies from a row list: window filter, keyset, sort, limit; optional faults.

    Only production value forms (§R-10) are accepted; `per_period` runs filter/sort/limit once per day (§R-1)."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        reject_windows_longer_than: int | None = None,
        break_first_page_after: int | None = None,
        gzip: bool = False,
        truncate_first_page_after: int | None = None,
        body_text: Any = None,
        per_period: bool = False,
        time: str = "day",
        period: int = DAY,
        select: str | None = None,
        cap: int | None = None,
        limit_before_sort: bool = False,
    ) -> None:
        self.rows = sorted(rows, key=lambda r: (r[time], r["visitorId"]))
        self.select = select or time  # the time a period selects rows by (receivedTime under §R-4)
        self.reject_longer = reject_windows_longer_than
        self.break_after = break_first_page_after
        self.gzip, self.truncate_after = gzip, truncate_first_page_after
        self.body_text = body_text or (lambda body: body)  # how the body is written (escapes, spacing)
        self.per_period, self.time, self.period = per_period, time, period
        self.cap = cap  # a server cap: at most this many rows per answer, whatever `limit` says (§B-17)
        self.limit_before_sort = (
            limit_before_sort  # any `limit` rows (in a fixed shuffled order), then sorted
        )
        self.bodies: list[dict[str, Any]] = []  # the read requests (counts apart: `counts`)
        self.counts: list[dict[str, Any]] = []
        self.served: list[int] = []  # rows per read response
        self.empty: Any = []  # what an empty `results` is written as
        self.stream_response = False

    def send_request(self, request_body_json: dict[str, Any], stream_slice: Any = None) -> FakeResponse:
        pipeline = request_body_json["request"]["pipeline"]
        counting = {"count": None} in pipeline
        if counting:
            self.counts.append(request_body_json)
        else:
            self.bodies.append(request_body_json)
        source = pipeline[0]["source"]
        ts = source["timeSeries"]
        app = next(v["appId"] for k, v in source.items() if k != "timeSeries")
        assert app == 'expandAppIds("*")' or (
            isinstance(app, list) and all(isinstance(a, str) for a in app)
        ), app
        start, end = series_range(ts, self.period)
        if self.reject_longer and end - start > self.reject_longer:
            raise AirbyteTracedException(message="Pendo timed out", failure_type=FailureType.transient_error)
        condition = next((s["filter"] for s in pipeline if "filter" in s), None)
        selected = [r for r in self.rows if start <= r[self.select] < end]
        if counting:  # one row per period that has rows under per-period pipelines (§R-1), else one row
            counts = [
                len(
                    [
                        r
                        for r in selected
                        if (condition is None or _matches(r, condition))
                        and p <= r[self.select] < p + self.period
                    ]
                )
                for p in range(start, end, self.period)
            ]
            answer = [{"count": c} for c in counts if c] if self.per_period else [{"count": sum(counts)}]
            return FakeResponse(orjson.dumps({"startTime": start, "results": answer or self.empty}))
        limit = next(s["limit"] for s in pipeline if "limit" in s)
        periods = (
            [
                [r for r in selected if p <= r[self.select] < p + self.period]
                for p in range(start, end, self.period)
            ]
            if self.per_period
            else [selected]
        )
        rows = []
        for part in periods:
            matched = [r for r in part if condition is None or _matches(r, condition)]
            if self.limit_before_sort:
                matched = sorted(
                    sorted(matched, key=lambda r: zlib.crc32(json.dumps(r, sort_keys=True).encode()))[:limit],
                    key=lambda r: (r[self.time], r["visitorId"]),
                )
            rows += matched[:limit]
        rows = rows[: self.cap] if self.cap is not None else rows
        self.served.append(len(rows))
        body = self.body_text(orjson.dumps({"startTime": start, "results": rows or self.empty}))
        first_body = len(self.bodies) == 1
        return FakeResponse(
            body,
            self.break_after if first_body else None,
            self.gzip,
            self.truncate_after if first_body else None,
        )


def read(
    api: FakeAggregationApi,
    page_size: int,
    start: int = START,
    end: int = START + 4 * DAY,
    period: str = "DAY",
    raw: bool = False,
) -> list[dict[str, Any]]:
    kind = (
        {"name": "guide_events", "source": "guideEvents", "time_field": "browserTime", "primary_key": RAW_PK}
        if raw
        else {"name": "events", "source": "events", "time_field": "bucket", "primary_key": PK}
    )
    retriever = ActivityRetriever(
        requester=api, config={"period": period, "page_size": page_size}, parameters={}, **kind
    )  # type: ignore[arg-type]
    out = []
    for message in retriever.read_records(
        {}, StreamSlice(partition={"app_id": "*"}, cursor_slice={"start": str(start), "end": str(end)})
    ):
        if isinstance(message, RecordBatch):
            out += [json.loads(line)["record"]["data"] for line in message.lines.split(b"\n")]
            message.release()
    return out


def _keys(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r.get(f) for f in PK) for r in records)


def test_activity_retriever_pages_on_bucket_and_visitor_without_loss_or_duplicates():
    rows = make_rows()
    api = FakeAggregationApi(rows)
    records = read(api, page_size=5)
    assert _keys(records) == sorted(tuple(dict(r, periodStart=r["day"]).get(f) for f in PK) for r in rows)
    assert len(api.bodies) > len(rows) // 5
    assert all(r["periodStart"] == r["day"] for r in records)


def test_activity_retriever_resumes_after_the_last_emitted_row_when_a_body_breaks():
    rows = make_rows()
    api = FakeAggregationApi(rows, break_first_page_after=400)
    records = read(api, page_size=1000)
    assert len(records) == len(rows) and len(set(_keys(records))) == len(rows)
    resumed = api.bodies[1]["request"]["pipeline"]
    assert any("visitorId >=" in s.get("filter", "") for s in resumed), (
        "the retry asks from the keyset, not from the start"
    )


def test_activity_retriever_splits_a_window_the_api_cannot_answer_down_to_one_period():
    rows = make_rows()
    api = FakeAggregationApi(rows, reject_windows_longer_than=DAY)
    records = read(api, page_size=1000)
    assert len(records) == len(rows)
    bounds_only = [  # each day's first request (the reads after a short answer add keyset requests, §B-17)
        b
        for b in api.bodies
        if int(b["request"]["pipeline"][0]["source"]["timeSeries"]["last"])
        + 1
        - b["request"]["pipeline"][0]["source"]["timeSeries"]["first"]
        <= DAY
        and b["request"]["pipeline"][2]["filter"].count("&&") == 1
    ]
    assert len(bounds_only) == 4


def test_activity_retriever_gives_up_when_one_period_still_fails():
    api = FakeAggregationApi(make_rows(), reject_windows_longer_than=1)
    with pytest.raises(AirbyteTracedException):
        read(api, page_size=1000)


def test_activity_retriever_keeps_nested_objects_as_they_are_and_adds_period_start_at_the_top():
    rows = [
        dict(r, properties={"day": 1, "steps": [{"a": 1}, {"b": "},{"}]})
        for r in make_rows(days=2, visitors=3)
    ]
    records = read(FakeAggregationApi(rows), page_size=1000)
    assert sorted(records, key=lambda r: (r["day"], r["visitorId"], r["userAgent"])) == sorted(
        (dict(r, periodStart=r["day"]) for r in rows),
        key=lambda r: (r["day"], r["visitorId"], r["userAgent"]),
    )


def test_activity_retriever_reads_rows_written_with_spaces_between_them():
    rows = make_rows(days=2, visitors=3)
    records = read(
        FakeAggregationApi(rows, body_text=lambda body: body.replace(b"},{", b"},\n  {")), page_size=1000
    )
    assert _keys(records) == sorted(tuple(dict(r, periodStart=r["day"]).get(f) for f in PK) for r in rows)


def test_activity_retriever_drops_anonymous_visitors_even_when_their_ids_are_escaped():
    rows = make_rows(days=2, visitors=3) + [
        dict(r, visitorId="_PENDO_T_" + r["visitorId"]) for r in make_rows(days=2, visitors=2)
    ]
    escaped = FakeAggregationApi(
        rows, body_text=lambda body: body.replace(b'"_PENDO_T_', b'"\\u005fPENDO_T_')
    )
    records = read(escaped, page_size=1000)
    assert len(records) == 2 * 3 * 2 and not any(r["visitorId"].startswith("_PENDO_T_") for r in records)


def test_activity_retriever_reads_gzip_bodies_and_resumes_after_one_that_stops_short():
    rows = make_rows()
    api = FakeAggregationApi(rows, gzip=True, truncate_first_page_after=150)
    records = read(api, page_size=1000)
    assert _keys(records) == sorted(tuple(dict(r, periodStart=r["day"]).get(f) for f in PK) for r in rows)
    # the short gzip body (no whole row in it) is detected and asked again once; the second answer holds the count
    assert [b == api.bodies[0] for b in api.bodies] == [True, True]


def test_activity_retriever_writes_absent_or_null_text_key_fields_as_empty_strings():
    no_address = [
        {k: v for k, v in r.items() if k != "remoteIp"} for r in make_rows(days=2, visitors=3)
    ]  # a whole block without it
    mixed = [
        dict(r, day=r["day"] + 2 * DAY, accountId=None if i % 3 else r["accountId"])
        for i, r in enumerate(make_rows(days=2, visitors=3))
    ]
    records = read(FakeAggregationApi(no_address + mixed), page_size=1000)
    assert len(records) == len(no_address) + len(mixed)
    assert all(r["remoteIp"] == "" for r in records if r["day"] < START + 2 * DAY)
    assert all(r["remoteIp"] == "ip" for r in records if r["day"] >= START + 2 * DAY)
    assert sorted(r["accountId"] for r in records if r["day"] >= START + 2 * DAY) == sorted(
        "" if i % 3 else "a" for i in range(len(mixed))
    )
    assert all(None not in (r["visitorId"], r["accountId"], r["server"], r["userAgent"]) for r in records)


def _truth(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(dict(r, periodStart=r["day"]).get(f) for f in PK) for r in rows)


@pytest.mark.parametrize("per_period", [False, True], ids=["one-pipeline", "per-period"])
@pytest.mark.parametrize("page_size", [3, 5, 13, 14, 15, 100])
def test_activity_retriever_is_exact_whether_each_period_runs_its_own_pipeline(per_period, page_size):
    rows = make_rows(days=4, visitors=7)  # 14 rows a day
    api = FakeAggregationApi(rows, per_period=per_period)
    records = read(api, page_size=page_size)
    assert _keys(records) == _truth(rows)
    if per_period and page_size < 14:
        assert max(api.served) > page_size, "an answer longer than the limit proved per-period pipelines"


def test_activity_retriever_pages_each_truncated_bucket_alone_once_per_period_answers_are_seen():
    rows = make_rows(days=4, visitors=7)
    api = FakeAggregationApi(rows, per_period=True)
    assert _keys(read(api, page_size=5)) == _truth(rows)
    first = api.bodies[0]["request"]["pipeline"]
    assert first[0]["source"]["timeSeries"] == {
        "period": "dayRange",
        "first": START,
        "last": str(START + 4 * DAY - 1),
    }
    later = [b["request"]["pipeline"] for b in api.bodies[1:]]
    assert all(
        p[0]["source"]["timeSeries"]["first"] + DAY - 1 == int(p[0]["source"]["timeSeries"]["last"])
        for p in later
    ), "after the first answer only single buckets are asked for, up to their last millisecond"
    assert all(
        f"day >= {START} && day < {START + 4 * DAY} && day == " in p[2]["filter"]
        and "visitorId >= " in p[2]["filter"]
        for p in later
    )


def test_activity_retriever_keyset_has_no_or_and_keeps_the_window_bounds():
    rows = make_rows(days=2, visitors=7)
    api = FakeAggregationApi(rows)
    assert _keys(read(api, page_size=14, end=START + 2 * DAY)) == _truth(rows)
    filters = [next(s["filter"] for s in b["request"]["pipeline"] if "filter" in s) for b in api.bodies]
    bounds = f"day >= {START} && day < {START + 2 * DAY}"
    assert filters[0] == bounds
    assert filters[1] == f'{bounds} && day == {START} && visitorId >= "v6"', "the rest of the boundary bucket"
    assert filters[2] == f"{bounds} && day > {START}", "then the buckets after it"
    assert all("||" not in f and "(" not in f for f in filters)


def test_activity_retriever_reads_results_null_as_an_empty_window():
    """`results: null` (§R-5) to the count (per-period pipelines answer no row for an empty window) is none."""
    api = FakeAggregationApi([], per_period=True)
    api.empty = None
    assert read(api, page_size=5) == [] and api.bodies == [] and len(api.counts) == 1


def test_activity_retriever_spaced_bodies_give_the_same_records_on_the_block_path(monkeypatch):
    rows = make_rows(days=4, visitors=7)
    compact = read(FakeAggregationApi(rows), page_size=1000)
    made: list[bool] = []
    original = RowFormat.block_as_records

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        block = original(self, *args, **kwargs)
        if args[4].keyset is None:  # a keyset page's group already read goes row by row, spaced or not
            made.append(block is not None)
        return block

    monkeypatch.setattr(RowFormat, "block_as_records", spy)
    spaced = read(
        FakeAggregationApi(rows, body_text=lambda b: json.dumps(json.loads(b)).encode()), page_size=1000
    )
    assert sorted(map(canonical_json, spaced)) == sorted(map(canonical_json, compact))
    assert made and all(made), "every spaced block took the block path"


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def make_raw(hours: range = range(-6, 12), per_hour: int = 9, skew: int = 0) -> list[dict[str, Any]]:
    """Guide events; with `skew`, every third one is received `skew` ms off its browserTime (§R-4)."""
    out = []
    for h in hours:
        for i in range(per_hour):
            t = START + h * HOUR + i * 1000 * (i % 4)
            received = t + (skew if i % 3 == 0 else -skew if i % 3 == 1 else 0)
            out.append(
                {
                    "appId": 1,
                    "guideId": "g",
                    "guideStepId": "s",
                    "visitorId": f"v{i % 4}",
                    "accountId": "a",
                    "type": "guideSeen",
                    "browserTime": t,
                    "receivedTime": received,
                }
            )
    return out


@pytest.mark.parametrize("per_period", [False, True], ids=["one-pipeline", "per-period"])
@pytest.mark.parametrize("page_size", [2, 4, 9, 10, 1000])
def test_raw_events_are_selected_by_the_time_series_alone_and_split_on_a_full_page(per_period, page_size):
    rows = make_raw(skew=5 * HOUR)
    inside = [r for r in rows if START <= r["receivedTime"] < START + 6 * HOUR]
    api = FakeAggregationApi(
        rows, per_period=per_period, time="browserTime", period=HOUR, select="receivedTime"
    )
    records = read(api, page_size=page_size, end=START + 6 * HOUR, raw=True)
    assert sorted(canonical_json(r) for r in records) == sorted(canonical_json(r) for r in inside)
    assert any(not (START <= r["browserTime"] < START + 6 * HOUR) for r in records), (
        "browserTime outside the window is kept"
    )
    timeseries = [b["request"]["pipeline"][0]["source"]["timeSeries"] for b in api.bodies]
    assert all(ts["period"] == "hourRange" for ts in timeseries)
    multi = [
        b
        for b, ts in zip(api.bodies, timeseries, strict=True)
        if series_range(ts, HOUR)[1] - ts["first"] > HOUR
    ]
    assert all(not any("filter" in s for s in b["request"]["pipeline"]) for b in multi), (
        "no filter over several periods"
    )
    if page_size <= 9:
        assert len(multi) > 1, "a full multi-period page was dropped and the window split"


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_a_block_spanning_buckets_takes_the_block_path_in_both_separator_styles(spaced):
    from source_pendo.activity.pages import PageState
    from source_pendo.activity.rows import AggregationRowReader

    rows = make_rows(days=3, visitors=2)
    retriever = ActivityRetriever(
        requester=FakeAggregationApi([]),
        config={"period": "DAY"},
        parameters={},
        name="events",
        source="events",
        time_field="bucket",
        primary_key=PK,
    )  # type: ignore[arg-type]
    text = (json.dumps(rows) if spaced else orjson.dumps(rows).decode()).encode()
    block = AggregationRowReader(retriever.rows.head_type).feed_block(b'{"results": ' + text + b"}")
    assert block is not None
    heads = block[1]
    out = retriever.rows.block_as_records(
        block[0],
        [h.day for h in heads],
        [h.visitorId for h in heads],
        len(heads),
        PageState(None, set(), retriever.rows.group_pks),
        START,
        START + 4 * DAY,
        b"\n",
    )
    assert out is not None, "the block path, not row by row"
    assert [json.loads(line) for line in out.split(b"\n")] == [dict(r, periodStart=r["day"]) for r in rows]


def _rewrite_times(field: str, how: str) -> Any:
    """A body_text that writes `field` of every row `how` (as the hostile proxy's time_fields mode does)."""

    def rewrite(body: bytes) -> bytes:
        payload = json.loads(body)
        for row in payload["results"] or []:
            if how == "remove":
                del row[field]
            else:
                row[field] = {
                    "float": float(row[field]),
                    "string": str(row[field]),
                    "text": "yesterday",
                    "half": row[field] + 0.5,
                }[how]
        return json.dumps(payload).encode()

    return rewrite


@pytest.mark.parametrize("how", ["float", "string"])
@pytest.mark.parametrize("page_size", [3, 1000])
def test_a_time_written_as_an_integral_float_or_a_numeric_string_is_that_time_written_as_an_integer(
    how, page_size
):
    rows = make_rows(days=2, visitors=3)
    records = read(FakeAggregationApi(rows, body_text=_rewrite_times("day", how)), page_size=page_size)
    assert sorted(records, key=lambda r: (r["day"], r["visitorId"], r["userAgent"])) == sorted(
        (dict(r, periodStart=r["day"]) for r in rows),
        key=lambda r: (r["day"], r["visitorId"], r["userAgent"]),
    )
    assert all(type(r["day"]) is int for r in records)


@pytest.mark.parametrize("how", ["float", "string"])
def test_a_raw_event_browser_time_as_a_float_or_a_string_is_read_as_that_time(how):
    rows = make_raw(skew=0)
    inside = [r for r in rows if START <= r["receivedTime"] < START + 6 * HOUR]
    api = FakeAggregationApi(
        rows,
        time="browserTime",
        period=HOUR,
        select="receivedTime",
        body_text=_rewrite_times("browserTime", how),
    )
    records = read(api, page_size=4, end=START + 6 * HOUR, raw=True)
    assert sorted(canonical_json(r) for r in records) == sorted(canonical_json(r) for r in inside)


@pytest.mark.parametrize("how", ["remove", "text", "half"])
def test_a_time_missing_or_not_an_integer_fails_the_sync_naming_stream_field_and_window(how):
    """A rollup row without its bucket stops the sync (BEHAVIOR.md §B-18)."""
    with pytest.raises(AirbyteTracedException) as caught:
        read(FakeAggregationApi(make_rows(), body_text=_rewrite_times("day", how)), page_size=1000)
    message = caught.value.message or ""
    assert "events:" in message and "`day`" in message and "window" in message and "app *" in message


@pytest.mark.parametrize("page_size", [4, 1000])
@pytest.mark.parametrize("how", ["remove", "text", "half"])
def test_guide_events_without_an_integer_browser_time_are_emitted_as_pendo_sends_them(how, page_size):
    """BEHAVIOR.md §R-20: raw events whose `browserTime` is missing, text or not whole are emitted as sent, each
    once, and the window completes (with pages of 4 rows the keyset cannot place them: the count check reads the
    period again in one request)."""
    rows = make_raw(skew=0)
    inside = [r for r in rows if START <= r["receivedTime"] < START + 6 * HOUR]
    rewrite = _rewrite_times("browserTime", how)
    api = FakeAggregationApi(rows, time="browserTime", period=HOUR, select="receivedTime", body_text=rewrite)
    records = read(api, page_size=page_size, end=START + 6 * HOUR, raw=True)
    sent = orjson.loads(rewrite(orjson.dumps({"results": inside})))["results"]
    assert sorted(canonical_json(r) for r in records) == sorted(canonical_json(r) for r in sent)


def test_as_time_accepts_int_integral_float_and_numeric_string_only():
    from source_pendo.activity.records import as_time

    assert [as_time(v) for v in (1795651200000, 1795651200000.0, "1795651200000", "-5")] == [
        1795651200000
    ] * 3 + [-5]
    assert [
        as_time(v)
        for v in (None, "yesterday", 1.5, float("nan"), float("inf"), True, "1e3", " 1", "9" * 30, [1], {})
    ] == [None] * 11


def test_a_value_nested_deeper_than_the_decoder_allows_fails_naming_the_stream_not_a_recursion_error():
    deep = "[" * 100_000 + "1" + "]" * 100_000

    def nest(body: bytes) -> bytes:
        return body.replace(b'"numEvents":1', b'"numEvents":1,"deep":' + deep.encode(), 1)

    with pytest.raises(AirbyteTracedException) as caught:
        read(FakeAggregationApi(make_rows(), body_text=nest), page_size=1000)
    assert (caught.value.message or "").startswith("events: ") and "nested deeper" in (
        caught.value.message or ""
    )


class KeysetIgnoringApi(FakeAggregationApi):
    """A server that drops the keyset conditions (`t > B`, `t == B && visitorId >= V`) from every filter."""

    def send_request(self, request_body_json: dict[str, Any], stream_slice: Any = None) -> FakeResponse:
        import copy
        import re

        body = copy.deepcopy(request_body_json)
        for stage in body["request"]["pipeline"]:
            if "filter" in stage:
                stage["filter"] = re.sub(
                    r" && (?:\w+ > -?\d+|\w+ == -?\d+ && visitorId >= \"[^\"]*\")", "", stage["filter"]
                )
        return super().send_request(body, stream_slice)


@pytest.mark.parametrize("page_size", [3, 5, 14])
def test_a_server_ignoring_the_keyset_stops_the_sync_naming_the_stream_never_endless_duplicates(page_size):
    api = KeysetIgnoringApi(make_rows())
    with pytest.raises(AirbyteTracedException) as caught:
        read(api, page_size=page_size)
    assert (caught.value.message or "").startswith("events: ") and "ignores the keyset" in (
        caught.value.message or ""
    )
    assert len(api.bodies) <= 3


@pytest.mark.parametrize(
    "body,words",
    [
        (b"<!DOCTYPE html><html><title>Down for maintenance</title></html>", "Down for maintenance"),
        (b'{"error": "internal error, try again"}', "without `results`"),
    ],
    ids=["html", "error-object"],
)
def test_activity_retriever_fails_naming_a_200_that_is_not_an_aggregation_answer_after_bounded_retries(
    body, words
):
    api = FakeAggregationApi(make_rows(), body_text=lambda _: body)
    with pytest.raises(AirbyteTracedException) as raised:
        read(api, page_size=1000)
    message = raised.value.message or ""
    assert "not an aggregation answer" in message and words in message and "events" in message
    assert len(api.bodies) == 9  # the request and 8 retries (MAX_BODY_RESUMES), then the stream fails


class BreakingApi(FakeAggregationApi):
    """Every read answer breaks off mid-body (a connection reset after 100 bytes)."""

    def send_request(self, request_body_json: dict[str, Any], stream_slice: Any = None) -> FakeResponse:
        response = super().send_request(request_body_json, stream_slice)
        if {"count": None} not in request_body_json["request"]["pipeline"]:
            response._break_after = 100
        return response


class FalseGzipApi(FakeAggregationApi):
    """Every answer says `Content-Encoding: gzip` over a plain JSON body (a proxy rewriting headers)."""

    def send_request(self, request_body_json: dict[str, Any], stream_slice: Any = None) -> FakeResponse:
        response = super().send_request(request_body_json, stream_slice)
        response.headers["Content-Encoding"] = "gzip"
        return response


def test_activity_error_a_connection_breaking_mid_body_advises_page_size_and_names_the_host():
    with pytest.raises(AirbyteTracedException) as raised:
        read(BreakingApi(make_rows()), page_size=1000)
    message = raised.value.message or ""
    assert message.startswith("Pendo kept breaking off responses for events (app *, ")
    assert (
        "from https://app.pendo.io: ProtocolError: Connection broken: connection reset mid-body)" in message
    )
    assert "lower page_size if it keeps happening" in message
    assert raised.value.failure_type == FailureType.transient_error


@pytest.mark.parametrize(
    "body,words",
    [
        (
            b'{"startTime": 0, "results": [1, 2, 3]}',
            "an item of `results` is not an object (a row): 1, 2, 3]}",
        ),
        (b'{"startTime": 0, "results": {"rows": []}}', "`results` is not an array"),
        (b'[{"day": 1}]', "the body does not start with a JSON object: [{"),
    ],
    ids=["items-not-objects", "results-an-object", "a-bare-list"],
)
def test_activity_error_a_body_of_the_wrong_shape_names_the_body_and_base_url_not_page_size(body, words):
    with pytest.raises(AirbyteTracedException) as raised:
        read(FakeAggregationApi(make_rows(), body_text=lambda _: body), page_size=1000)
    message = raised.value.message or ""
    assert message.startswith(
        "events: Pendo answered the aggregation request of app *, 2027-01-15T00:00Z to 2027-01-19T00:00Z "
        "(https://app.pendo.io) with HTTP 200 and a body that is not an aggregation answer ("
    ), message
    assert words in message and "check `base_url`" in message
    assert "Lowering page_size does not help" in message and "kept breaking off" not in message


def test_activity_error_a_false_gzip_header_names_the_content_encoding_not_page_size():
    with pytest.raises(AirbyteTracedException) as raised:
        read(FalseGzipApi(make_rows()), page_size=1000)
    message = raised.value.message or ""
    assert message.startswith("events: Pendo's answers to the aggregation request of app *, ")
    assert (
        "from https://app.pendo.io, said `Content-Encoding: gzip` but their body could not be decompressed"
        in (message)
    )
    assert "a proxy or load balancer in front of the API (check `base_url`)" in message
    assert "lowering page_size does not help" in message and "kept breaking off" not in message


def test_activity_retriever_reads_the_window_whole_after_one_html_answer():
    rows = make_rows()
    answers = iter([b"<html>maintenance</html>"])
    api = FakeAggregationApi(rows, body_text=lambda body: next(answers, body))
    records = read(api, page_size=1000)
    assert len(records) == len(rows) and len(set(_keys(records))) == len(rows)


# ------------------------------------------------------------------------------------------ server caps (§B-17)
def _filters(api: FakeAggregationApi) -> list[str]:
    return [next(s["filter"] for s in b["request"]["pipeline"] if "filter" in s) for b in api.bodies]


@pytest.mark.parametrize("per_period", [False, True], ids=["one-pipeline", "per-period"])
@pytest.mark.parametrize("cap", [3, 5, 13])
def test_activity_retriever_reads_on_after_answers_a_server_caps_below_the_limit(per_period, cap, caplog):
    rows = make_rows(days=4, visitors=7)  # 14 rows a day, 2 per (day, visitor)
    api = FakeAggregationApi(rows, per_period=per_period, cap=cap)
    assert _keys(read(api, page_size=1000)) == _truth(rows)
    assert max(api.served) == cap, "the cap cut answers"
    warnings = [
        r.getMessage() for r in caplog.records if "the server caps answers below `limit`" in r.getMessage()
    ]
    assert len(warnings) == 1 and f"Pendo answered {cap} rows to a request limited to 1000" in warnings[0]


@pytest.mark.parametrize("cap", [4, 7])
def test_raw_events_read_on_after_answers_a_server_caps_below_the_limit(cap):
    rows = make_raw(per_hour=9)  # at most 3 rows share a (browserTime, visitor)
    inside = [r for r in rows if START <= r["browserTime"] < START + 6 * HOUR]
    api = FakeAggregationApi(rows, time="browserTime", period=HOUR, cap=cap)
    records = read(api, page_size=1000, end=START + 6 * HOUR, raw=True)
    assert sorted(canonical_json(r) for r in records) == sorted(canonical_json(r) for r in inside)
    assert max(api.served) == cap


def test_activity_retriever_counts_the_window_then_reads_it_in_one_request_on_a_normal_server():
    """Pendo's count first (the read's selection ended by `{"count": null}`), then one request: a short answer
    that holds every counted row is complete; nothing more is asked."""
    rows = make_rows(days=4, visitors=7)
    api = FakeAggregationApi(rows)
    assert _keys(read(api, page_size=1000)) == _truth(rows)
    bounds = f"day >= {START} && day < {START + 4 * DAY}"
    assert [c["request"]["pipeline"] for c in api.counts] == [
        [
            {
                "source": {
                    "events": {"appId": 'expandAppIds("*")'},
                    "timeSeries": {"period": "dayRange", "first": START, "last": str(START + 4 * DAY - 1)},
                }
            },
            {"identified": "visitorId"},
            {"filter": bounds},
            {"count": None},
        ]
    ]
    assert _filters(api) == [bounds]


def test_activity_retriever_window_counted_empty_is_not_read():
    api = FakeAggregationApi([])
    assert read(api, page_size=1000) == [] and api.bodies == [] and len(api.counts) == 1


@pytest.mark.parametrize("per_period", [False, True], ids=["one-pipeline", "per-period"])
def test_activity_retriever_sums_the_count_of_every_period(per_period):
    """Under per-period pipelines (§R-1) the count answers one row per period: every one is added up, so a
    window of several days is read whole, not taken for its first day's rows."""
    rows = make_rows(days=4, visitors=7)
    api = FakeAggregationApi(rows, per_period=per_period)
    assert _keys(read(api, page_size=1000)) == _truth(rows)
    assert len(api.bodies) == 1, "one read holds the whole count"


def test_activity_retriever_window_short_of_its_count_is_read_again_by_parts_without_duplicates():
    """A server that applies `limit` before `sort` (it takes any `limit` rows, then sorts them): keyset pages skip
    rows only Pendo's count can tell are missing; each part read again in one request that holds its count."""
    rows = make_rows(days=4, visitors=7)
    api = FakeAggregationApi(rows, limit_before_sort=True)
    records = read(api, page_size=5)
    assert sorted(_keys(records)) == _truth(rows), "every row once"
    parts = [c["request"]["pipeline"][0]["source"]["timeSeries"] for c in api.counts[1:]]
    assert parts and all(series_range(ts, DAY)[1] - ts["first"] <= 2 * DAY for ts in parts), (
        "halves, then days"
    )


def test_activity_retriever_part_still_short_of_its_count_stops_naming_stream_window_and_numbers():
    rows = make_rows(days=1, visitors=7)
    api = FakeAggregationApi(rows, limit_before_sort=True, cap=5)  # one period read again still needs pages
    with pytest.raises(AirbyteTracedException) as raised:
        read(api, page_size=5, end=START + DAY)
    message = raised.value.message or ""
    assert message.startswith("events: Pendo counts 14 rows in app *, ") and "but its answers held" in message
    assert "progress is saved up to the last complete window" in message


def test_activity_retriever_does_not_ask_for_days_after_the_last_one_a_window_can_hold():
    """Days of a time zone five hours behind UTC start at 05:00Z: in the window [00:00Z, 24:00Z) no day can start
    after the 05:00Z one (the shortest day lasts 23 h), so after a full answer only that day's rest is asked."""
    rows = [dict(r, day=r["day"] + 5 * HOUR) for r in make_rows(days=1, visitors=3)]
    api = FakeAggregationApi(rows, period=HOUR)
    records = read(api, page_size=5, end=START + DAY)
    assert sorted(r["visitorId"] for r in records) == sorted(r["visitorId"] for r in rows)
    bounds = f"day >= {START} && day < {START + DAY}"
    assert _filters(api) == [bounds, f'{bounds} && day == {START + 5 * HOUR} && visitorId >= "v2"']


WINDOW = (1_714_521_600_000, 1_714_521_600_000 + DAY_MS)  # 2024-05-01, one UTC day


@pytest.mark.parametrize(
    "time", [WINDOW[0] - DAY_MS - 14 * 3_600_000, WINDOW[0], WINDOW[1] - 1, WINDOW[1] + DAY_MS]
)
def test_activity_row_time_of_a_neighbouring_window_passes_the_reach_check(time):
    """A `day` bucket at the subscription's local midnight starts up to a day and 14 hours before the UTC window
    it overlaps: such a row is another window's, dropped here and read there, never an error."""
    check_within_reach(time, time, *WINDOW, "events", "day", "app -323232")


@pytest.mark.parametrize(
    "time,words",
    [
        (WINDOW[0] // 1000, ["seconds"]),
        (WINDOW[0] * 1000, ["microseconds"]),
        (-WINDOW[0], [str(-WINDOW[0])]),
        (253_402_214_400_000, ["253402214400000"]),
        (int(1e23), [str(int(1e23))]),
    ],
)
def test_activity_row_time_far_outside_the_window_fails_naming_stream_app_window_and_value(time, words):
    with pytest.raises(AirbyteTracedException) as failed:
        check_within_reach(
            min(WINDOW[0], time), max(WINDOW[0], time), *WINDOW, "events", "day", "app -323232"
        )
    message = failed.value.message or ""
    for word in ["events", "`day`", "app -323232", "2024-05-01T00:00Z", "far outside", *words]:
        assert word in message, message
    assert failed.value.failure_type == FailureType.system_error
