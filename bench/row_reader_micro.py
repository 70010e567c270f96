"""Microbenchmark: the streaming aggregation reader alone (no HTTP, no CDK), 300k rows in 64 KiB chunks.

Run: .venv/bin/python bench/row_reader_micro.py   (prints rows/s; the end-to-end benchmark is issue 7's)
"""

from __future__ import annotations

import time

import orjson

from source_pendo.activity.rows import AggregationRowReader

ROW = {
    "accountId": "Acme Corp",
    "appId": -323232,
    "day": 1709269200000,
    "pageId": "aRnno0-bo2WMPJ7HBIFzCuDtKfg",
    "visitorId": "42",
    "numEvents": 7,
    "numMinutes": 3,
    "remoteIp": "203.0.113.10",
    "server": "app.example.com",
    "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36",
    "firstTime": 1709302051000,
    "lastTime": 1709304729000,
    "properties": {"plan": "pro"},
}


def main(rows: int = 300_000, chunk: int = 65_536) -> None:
    body = b'{"startTime":0,"results":[' + b",".join([orjson.dumps(ROW)] * rows) + b"]}"
    started = time.perf_counter()
    reader = AggregationRowReader()
    count = 0
    for i in range(0, len(body), chunk):
        count += len(reader.feed(body[i : i + chunk]))
    reader.close()
    elapsed = time.perf_counter() - started
    print(f"{count:,} rows, {len(body) / 1e6:.0f} MB in {elapsed:.2f} s: {count / elapsed:,.0f} rows/s")


if __name__ == "__main__":
    main()
