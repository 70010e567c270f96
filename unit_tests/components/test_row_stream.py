"""The streaming aggregation-body reader: every chunking yields exactly the rows, never half a row."""

from __future__ import annotations

import json
import random

import pytest

from source_pendo.activity.rows import AggregationRowReader, MalformedBody, TruncatedBody

ROWS = [
    {"visitorId": "a", "day": 1, "parameters": {"tab": "x"}, "n": 1},
    {
        "visitorId": 'quote " and }, { inside',
        "day": 2,
        "properties": {"plan": "pro"},
        "list": [{"a": 1}, {"b": 2}],
    },
    {"visitorId": "back\\slash\\", "day": 3, "text": "]} trailing", "unicode": "Ünïcode ✓"},
    {"visitorId": "d", "day": 4, "nested": {"deep": {"deeper": [1, 2, {"x": "},{"}]}}},
]


def _read(body: bytes, chunk_sizes: list[int]) -> list[dict]:
    reader = AggregationRowReader()
    rows: list[bytes] = []
    pos = 0
    for size in chunk_sizes:
        rows += reader.feed(body[pos : pos + size])
        pos += size
    rows += reader.feed(body[pos:])
    reader.close()
    return [json.loads(r) for r in rows]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_row_stream_every_chunking_yields_exactly_the_rows(separators):
    body = json.dumps({"startTime": 123, "results": ROWS}, separators=separators, ensure_ascii=False).encode()
    rng = random.Random(1)
    for _ in range(300):
        sizes = [rng.randint(1, 40) for _ in range(rng.randint(0, 60))]
        assert _read(body, sizes) == ROWS


def test_row_stream_accepts_results_before_start_time_and_empty_results():
    body = json.dumps({"results": ROWS, "startTime": 5}).encode()
    assert _read(body, [7, 7, 7]) == ROWS
    assert _read(b'{"startTime":0,"results":[]}', [3]) == []
    assert _read(b' { "startTime" : 0 , "results" : [ ] } ', [1] * 40) == []


def test_row_stream_raises_truncated_when_body_stops_mid_row():
    body = json.dumps({"startTime": 1, "results": ROWS}).encode()
    for cut in (5, 30, len(body) // 2, len(body) - 2, len(body) - 1):
        reader = AggregationRowReader()
        emitted = reader.feed(body[:cut])
        assert all(json.loads(r) in ROWS for r in emitted)
        with pytest.raises(TruncatedBody):
            reader.close()


def test_row_stream_rejects_a_body_that_is_not_an_envelope():
    for body in (b"[1,2]", b'{"startTime": 1}', b'{"results": 5}'):
        reader = AggregationRowReader()
        with pytest.raises((MalformedBody, TruncatedBody)):
            reader.feed(body)
            reader.close()
