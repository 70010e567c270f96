"""Benchmark: the activity record path (streaming reader -> block fast path -> RECORD lines) on the same rollup
rows written compact (`{"a":1},{"b":2}`, Go's encoding/json) or spaced with keys in shuffled orders
(`{"b": 2, "a": 1}, {...}`, BEHAVIOR.md R-12). No HTTP, no CDK: the retriever's page reader over an in-memory
body in 256 KiB chunks, best of `--repeat` runs.

Run: .venv/bin/python bench/record_path_spacing.py [--rows 500000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import orjson

from source_pendo.activity.pages import CHUNK_BYTES, PageState, WindowRun
from source_pendo.activity.record_batch import BatchGate, RecordBatch, RecordBatchBuilder
from source_pendo.activity.retriever import ActivityRetriever

HOUR = 3_600_000
START = 1_709_251_200_000
PK = ["appId", "visitorId", "accountId", "server", "remoteIp", "userAgent", "periodStart", "featureId"]


def rows(n: int) -> list[dict[str, Any]]:
    per_hour = 2_000
    return [
        {
            "accountId": f"acct{i % 97}",
            "appId": -323232,
            "hour": START + (i // per_hour) * HOUR,
            "featureId": f"feat{i % 13}",
            "visitorId": f"visitor{i % per_hour:06d}",
            "numEvents": i % 7 + 1,
            "numMinutes": i % 3,
            "remoteIp": "203.0.113.10",
            "server": "app.example.com",
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36",
            "firstTime": START + i,
            "lastTime": START + i + 1000,
        }
        for i in range(n)
    ]


def body(data: list[dict[str, Any]], spaced: bool) -> bytes:
    if not spaced:
        return b'{"startTime":0,"results":[' + b",".join(orjson.dumps(r) for r in data) + b"]}"
    rng = random.Random(7)
    orders = [
        sorted(data[0], key=lambda _: rng.random()) for _ in range(5)
    ]  # a few key orders, as the emulator
    parts = [json.dumps({k: r[k] for k in orders[i % 5]}).encode() for i, r in enumerate(data)]
    return b'{"results": [' + b", ".join(parts) + b'], "startTime": 0}'


class Response:
    def __init__(self, payload: bytes) -> None:
        self.headers: dict[str, str] = {}
        self.raw = self
        self._payload = payload

    def stream(self, amt: int, decode_content: bool = True) -> Any:
        for i in range(0, len(self._payload), CHUNK_BYTES):
            yield self._payload[i : i + CHUNK_BYTES]

    def close(self) -> None:
        pass


def run(payload: bytes, n: int) -> tuple[float, int, int]:
    retriever = ActivityRetriever(
        requester=Response(b""),  # type: ignore[arg-type]  # never asked: the page reader is driven directly
        config={"period": "HOUR", "page_size": 10 * n},
        parameters={},
        name="feature_events",
        source="featureEvents",
        time_field="bucket",
        primary_key=PK,
    )
    fast = [0, 0]
    original = retriever.rows.block_as_records

    def counted(*args: Any, **kwargs: Any) -> bytes | None:
        block = original(*args, **kwargs)
        fast[block is None] += 1
        return block

    retriever.rows.block_as_records = counted  # type: ignore[method-assign]
    builder = RecordBatchBuilder("feature_events", gate=BatchGate(1 << 30))
    window = WindowRun("*", START, START + 10_000 * HOUR, builder)
    page = PageState(None, set(), retriever.rows.group_pks, 10 * n)
    started = time.perf_counter()
    records = 0
    for batch in retriever.pager.read_page(Response(payload), page, window):  # type: ignore[arg-type]
        assert isinstance(batch, RecordBatch)
        records += batch.count
        batch.release()
    return time.perf_counter() - started, records, fast[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = rows(args.rows)
    results = {}
    for spaced in (False, True):
        payload = body(data, spaced)
        best = min(run(payload, args.rows) for _ in range(args.repeat))
        name = "spaced" if spaced else "compact"
        results[name] = best[0]
        print(
            f"{name:8} {len(payload) / 1e6:6.0f} MB  {best[1]:,} records in {best[0]:.2f} s "
            f"({best[1] / best[0]:,.0f} records/s); blocks row by row: {best[2]}"
        )
    print(f"spaced / compact: {results['spaced'] / results['compact']:.2f}")


if __name__ == "__main__":
    main()
