"""The streaming aggregation-body reader: every chunking yields exactly the rows, never half a row."""

from __future__ import annotations

import json
import random
from pathlib import Path

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


NASTY = [
    *ROWS,
    {"visitorId": "e", "day": 5, "ua": 'x"},{"y":1},{' * 50, "tail": "\\\\"},
    {"visitorId": "f", "day": 6, "braces": "}" * 300 + '\\"' + "},{" * 10},
    {"visitorId": "g", "day": 7, "rows": [{"a": {"b": [{"c": 1}, {"d": "]},{"}]}}, {"e": 2}]},
]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_row_stream_values_full_of_false_row_ends_still_yield_exactly_the_rows(separators):
    rows = NASTY * 3
    body = json.dumps({"startTime": 123, "results": rows}, separators=separators, ensure_ascii=False).encode()
    rng = random.Random(2)
    for _ in range(300):
        sizes = [rng.randint(1, 400) for _ in range(rng.randint(0, 40))]
        assert _read(body, sizes) == rows


def test_row_stream_stays_linear_with_a_1mb_value_holding_brace_comma_brace():
    """Stepping back candidate by candidate (a decode of the whole buffer each) took ~60 s on this body."""
    import time

    big = ('x"},{"y":1},{' * 80_000)[: 1 << 20]
    rows = [{"visitorId": "a", "day": 1, "ua": big}] + [{"visitorId": f"v{i}", "day": 1} for i in range(2000)]
    body = json.dumps({"startTime": 1, "results": rows}, separators=(",", ":")).encode()
    started = time.perf_counter()
    for size in (256 * 1024, 4096):
        assert _read(body, [size] * (len(body) // size + 1)) == rows
    assert time.perf_counter() - started < 5


def test_row_stream_names_a_value_nested_too_deep_instead_of_a_recursion_error():
    from source_pendo.activity.rows import TooDeep

    body = b'{"results":[{"day":1,"deep":' + b"[" * 100_000 + b"1" + b"]" * 100_000 + b"}]}"
    reader = AggregationRowReader()
    with pytest.raises(TooDeep, match="nested deeper"):
        for i in range(0, len(body), 65536):
            reader.feed(body[i : i + 65536])


LINEAR_ROWS = [{"visitorId": f"v{i}", "day": 1, "n": i} for i in range(200)]
LINEAR_BODY = json.dumps({"startTime": 1, "results": LINEAR_ROWS}, separators=(",", ":")).encode()


def _padded(where: str, size: int) -> bytes:
    """LINEAR_BODY with `size` bytes inserted: whitespace or a long number before `results`, whitespace in a row."""
    if where == "whitespace_before_results":
        return LINEAR_BODY.replace(b'"startTime":1,', b'"startTime":1,' + b" " * size, 1)
    if where == "number_before_results":
        return LINEAR_BODY.replace(b'"startTime":1,', b'"startTime":1' + b"7" * size + b",", 1)
    return LINEAR_BODY.replace(b'{"visitorId":"v5",', b'{"visitorId":"v5",' + b" \n" * (size // 2), 1)


def _work(body: bytes, chunk: int = 4096) -> int:
    reader = AggregationRowReader()
    rows: list[bytes] = []
    for i in range(0, len(body), chunk):
        rows += reader.feed(body[i : i + chunk])
    reader.close()
    assert [json.loads(r) for r in rows] == LINEAR_ROWS
    return reader.work


@pytest.mark.parametrize(
    "where", ["whitespace_before_results", "number_before_results", "whitespace_in_a_row"]
)
def test_row_stream_parse_work_grows_linearly_with_padding(where: str):
    """Issue 24: 8 MB of whitespace before `results` took 63 s (the header parsed again from its start for each
    chunk). The reader's work counter (bytes copied or searched) grows with the body, not with its square: 4 MB
    of padding in 4 KB chunks costs about four times 1 MB's, and a few bytes of work per byte of body."""
    one, four = _padded(where, 1 << 20), _padded(where, 4 << 20)
    work_one, work_four = _work(one), _work(four)
    assert work_one <= 4 * len(one) and work_four <= 4 * len(four)
    assert work_four <= 4.5 * work_one


ROWS_DIR = Path(__file__).parent.parent / "resource" / "rows"


def _fixture_rows(name: str, chunk: int) -> list[bytes]:
    body = (ROWS_DIR / name).read_bytes()
    reader = AggregationRowReader()
    rows: list[bytes] = []
    for i in range(0, len(body), chunk):
        rows += reader.feed(body[i : i + chunk])
    reader.close()
    return rows


@pytest.mark.parametrize("name", ["pretty_printed.json", "crlf_between_tokens.json"])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_row_stream_line_broken_answer_gives_the_compact_rows_without_a_raw_line_break(name, chunk):
    """A pretty-printed answer, or one with `\\r\\n` between tokens, is valid JSON; the record path copies the
    rows' text into RECORD lines, and Airbyte reads one message per line: the rows come out compact, exactly
    the compact answer's rows (escaped line breaks inside strings kept)."""
    rows = _fixture_rows(name, chunk)
    assert rows == _fixture_rows("compact.json", chunk)
    assert not any(b"\n" in row or b"\r" in row for row in rows)
    assert json.loads(rows[0])["text"] == 'line\nbreak "quoted" \r kept'


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
def test_row_stream_escaped_lone_surrogates_become_the_replacement_character(chunk):
    """`"\\ud800"` is valid JSON that no UTF-8 output can carry: each lone surrogate is U+FFFD, a valid pair and
    an escaped backslash followed by `ud800` stay as sent; never a broken body asked again."""
    [row] = _fixture_rows("lone_surrogates.json", chunk)
    assert json.loads(row) == {
        "visitorId": "a",
        "high": "x\ufffdy",
        "low": "\ufffd",
        "pair": "\U0001f600",
        "escaped": "\\ud800",
        "both": "\ufffd\U00010000",
    }
