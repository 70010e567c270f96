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

from source_pendo.activity.retriever import ActivityRetriever
from source_pendo.activity.record_batch import RecordBatch

DAY = 86_400_000
START = 1_800_000_000_000 - 1_800_000_000_000 % DAY
PK = ["appId", "visitorId", "accountId", "server", "remoteIp", "userAgent", "periodStart"]


def make_rows(days: int = 4, visitors: int = 7) -> list[dict[str, Any]]:
    return [
        {"appId": 1, "day": START + d * DAY, "visitorId": f"v{v}", "accountId": "a", "server": "s", "remoteIp": "ip", "userAgent": ua, "numEvents": 1}
        for d in range(days) for v in range(visitors) for ua in ("ua1", "ua2")
    ]


class FakeResponse:
    """A streamed response: `raw.stream` hands out the body in 50-byte pieces, or breaks off after `break_after`."""

    def __init__(self, body: bytes, break_after: int | None = None, gzip: bool = False, truncate_after: int | None = None) -> None:
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


class FakeAggregationApi:
    """Answers the retriever's bodies from a row list: window filter, keyset, sort, limit; optional faults."""

    def __init__(self, rows: list[dict[str, Any]], reject_windows_longer_than: int | None = None, break_first_page_after: int | None = None,
                 gzip: bool = False, truncate_first_page_after: int | None = None, body_text: Any = None) -> None:
        self.rows = sorted(rows, key=lambda r: (r["day"], r["visitorId"]))
        self.reject_longer = reject_windows_longer_than
        self.break_after = break_first_page_after
        self.gzip, self.truncate_after = gzip, truncate_first_page_after
        self.body_text = body_text or (lambda body: body)  # how the body is written (escapes, spacing)
        self.bodies: list[dict[str, Any]] = []
        self.stream_response = False

    def send_request(self, request_body_json: dict[str, Any], stream_slice: Any = None) -> FakeResponse:
        self.bodies.append(request_body_json)
        pipeline = request_body_json["request"]["pipeline"]
        ts = pipeline[0]["source"]["timeSeries"]
        start, end = ts["first"], ts["last"] + 1
        if self.reject_longer and end - start > self.reject_longer:
            raise AirbyteTracedException(message="Pendo timed out", failure_type=FailureType.transient_error)
        condition = next(s["filter"] for s in pipeline if "filter" in s)
        limit = next(s["limit"] for s in pipeline if "limit" in s)
        keyset = None
        if "visitorId >=" in condition:
            bucket = int(condition.split("day > ")[1].split(" ")[0])
            visitor = json.loads(condition.split("visitorId >= ")[1].rstrip("))"))
            keyset = (bucket, visitor)
        rows = [r for r in self.rows if start <= r["day"] < end and (keyset is None or (r["day"], r["visitorId"]) >= keyset)][:limit]
        body = self.body_text(orjson.dumps({"startTime": start, "results": rows}))
        first = len(self.bodies) == 1
        return FakeResponse(body, self.break_after if first else None, self.gzip, self.truncate_after if first else None)


def read(api: FakeAggregationApi, page_size: int, start: int = START, end: int = START + 4 * DAY) -> list[dict[str, Any]]:
    retriever = ActivityRetriever(requester=api, config={"period": "DAY", "page_size": page_size}, parameters={}, name="events", source="events", time_field="bucket", primary_key=PK)  # type: ignore[arg-type]
    out = []
    for message in retriever.read_records({}, StreamSlice(partition={"app_id": "*"}, cursor_slice={"start": str(start), "end": str(end)})):
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
    assert any("visitorId >=" in s.get("filter", "") for s in resumed), "the retry asks from the keyset, not from the start"


def test_activity_retriever_splits_a_window_the_api_cannot_answer_down_to_one_period():
    rows = make_rows()
    api = FakeAggregationApi(rows, reject_windows_longer_than=DAY)
    records = read(api, page_size=1000)
    assert len(records) == len(rows)
    answered = [b for b in api.bodies if b["request"]["pipeline"][0]["source"]["timeSeries"]["last"] + 1 - b["request"]["pipeline"][0]["source"]["timeSeries"]["first"] <= DAY]
    assert len(answered) == 4


def test_activity_retriever_gives_up_when_one_period_still_fails():
    api = FakeAggregationApi(make_rows(), reject_windows_longer_than=1)
    with pytest.raises(AirbyteTracedException):
        read(api, page_size=1000)


def test_activity_retriever_keeps_nested_objects_as_they_are_and_adds_period_start_at_the_top():
    rows = [dict(r, properties={"day": 1, "steps": [{"a": 1}, {"b": "},{"}]}) for r in make_rows(days=2, visitors=3)]
    records = read(FakeAggregationApi(rows), page_size=1000)
    assert sorted(records, key=lambda r: (r["day"], r["visitorId"], r["userAgent"])) == sorted(
        (dict(r, periodStart=r["day"]) for r in rows), key=lambda r: (r["day"], r["visitorId"], r["userAgent"]))


def test_activity_retriever_reads_rows_written_with_spaces_between_them():
    rows = make_rows(days=2, visitors=3)
    records = read(FakeAggregationApi(rows, body_text=lambda body: body.replace(b"},{", b"},\n  {")), page_size=1000)
    assert _keys(records) == sorted(tuple(dict(r, periodStart=r["day"]).get(f) for f in PK) for r in rows)


def test_activity_retriever_drops_anonymous_visitors_even_when_their_ids_are_escaped():
    rows = make_rows(days=2, visitors=3) + [dict(r, visitorId="_PENDO_T_" + r["visitorId"]) for r in make_rows(days=2, visitors=2)]
    escaped = FakeAggregationApi(rows, body_text=lambda body: body.replace(b'"_PENDO_T_', b'"\\u005fPENDO_T_'))
    records = read(escaped, page_size=1000)
    assert len(records) == 2 * 3 * 2 and not any(r["visitorId"].startswith("_PENDO_T_") for r in records)


def test_activity_retriever_reads_gzip_bodies_and_resumes_after_one_that_stops_short():
    rows = make_rows()
    api = FakeAggregationApi(rows, gzip=True, truncate_first_page_after=150)
    records = read(api, page_size=1000)
    assert _keys(records) == sorted(tuple(dict(r, periodStart=r["day"]).get(f) for f in PK) for r in rows)
    assert len(api.bodies) == 2, "the short gzip body is detected and read again from the last emitted row"


def test_activity_retriever_writes_absent_or_null_text_key_fields_as_empty_strings():
    no_address = [{k: v for k, v in r.items() if k != "remoteIp"} for r in make_rows(days=2, visitors=3)]  # a whole block without it
    mixed = [dict(r, day=r["day"] + 2 * DAY, accountId=None if i % 3 else r["accountId"]) for i, r in enumerate(make_rows(days=2, visitors=3))]
    records = read(FakeAggregationApi(no_address + mixed), page_size=1000)
    assert len(records) == len(no_address) + len(mixed)
    assert all(r["remoteIp"] == "" for r in records if r["day"] < START + 2 * DAY)
    assert all(r["remoteIp"] == "ip" for r in records if r["day"] >= START + 2 * DAY)
    assert sorted(r["accountId"] for r in records if r["day"] >= START + 2 * DAY) == sorted("" if i % 3 else "a" for i in range(len(mixed)))
    assert all(None not in (r["visitorId"], r["accountId"], r["server"], r["userAgent"]) for r in records)
