"""Issue 24: the aggregation reader with 8 MB inserted before `results` (whitespace, a long number) or inside a
row (whitespace), against the reader before the fix when its source is given (`git show <rev>:source_pendo/
activity/rows.py > /tmp/oldrows.py; .venv/bin/python bench/envelope_padding.py /tmp/oldrows.py`).
Measured 2026-12-08 on the 2-core machine, 64 KB chunks, 20,000 rows: whitespace 83.3 s -> 0.11 s, a long
number 123.6 s -> 0.10 s, whitespace in a row 0.24 s -> 0.11 s (0.01 s without the padding)."""

import importlib.util
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from source_pendo.activity.rows import AggregationRowReader as New

READERS = [("new", New)]
if len(sys.argv) > 1:
    spec = importlib.util.spec_from_file_location("oldrows", sys.argv[1])
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    READERS.insert(0, ("old", old.AggregationRowReader))
rows = [{"visitorId": f"v{i}", "day": 1, "n": i} for i in range(20000)]
base = json.dumps({"startTime": 1, "results": rows}, separators=(",", ":")).encode()


def body(kind: str, mb: int) -> bytes:
    pad = mb << 20
    if kind == "ws":
        return b'{"startTime": 1,' + b" " * pad + base[len(b'{"startTime":1,') :]
    if kind == "num":
        return b'{"startTime": 1' + b"1" * pad + base[len(b'{"startTime":1') :]
    return base.replace(b'{"visitorId":"v5",', b'{"visitorId":"v5",' + b" " * pad, 1)


for kind in ("ws", "num", "rowws"):
    for mb in (0, 8):
        data = body(kind, mb)
        for name, cls in READERS:
            reader = cls()
            started = time.perf_counter()
            n = 0
            for i in range(0, len(data), 65536):
                n += len(reader.feed(data[i : i + 65536]))
            reader.close()
            print(kind, mb, "MB", name, n, f"{time.perf_counter() - started:.2f}s", flush=True)
