"""Peak memory of `read` for one huge aggregation response (issue 7: <= 200 MB for a 1 GB response).

Serves a single aggregation response of --gb gigabytes (gzip, chunked, like Pendo) to the first request
for yesterday's window, empty results to every other one, runs `source-pendo read` of `events` against it with stdout
counted by `wc -l`, and prints records, wall time and the connector's peak RSS (getrusage of the child).
Not a Pendo emulator: a load generator for one response shape. Run:

    .venv/bin/python bench/huge_response.py [--gb 1.0] [--gzip/--no-gzip]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DAY_MS = 86_400_000
TODAY = (
    int(time.time() * 1000) // DAY_MS * DAY_MS
)  # real clock, as the connector it serves (a bench, not a test)
YESTERDAY = TODAY - DAY_MS


def rows_block(n: int, offset: int) -> bytes:
    return b",".join(
        b'{"accountId":"account-%04d","appId":-323232,"day":%d,"visitorId":"visitor-%09d","numEvents":25,"numMinutes":8,'
        b'"server":"app0.example.com","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) '
        b'Chrome/122.0 Safari/537.36","firstTime":%d,"lastTime":%d,"remoteIp":"203.0.113.%d"}'
        % (i % 5000, YESTERDAY, offset + i, YESTERDAY + 1000, YESTERDAY + 2000, i % 250)
        for i in range(n)
    )


def rows_served(size: int) -> int:
    """The rows the one big answer holds: whole blocks of 2000 rows (each the same length) until `size` bytes."""
    per_block = len(rows_block(2000, 0)) + 1
    return -(-size // per_block) * 2000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    size = 1 << 30
    use_gzip = True
    served = False
    rows = 0
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        pipeline = body["request"]["pipeline"]
        window_start = pipeline[0]["source"]["timeSeries"]["first"]
        if (
            "count" in pipeline[-1]
        ):  # the count before the read (BEHAVIOR.md §B-22): the rows the read will hold
            answer = {
                "startTime": YESTERDAY,
                "results": [{"count": rows_served(self.size) if window_start == YESTERDAY else 0}],
            }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        with (
            Handler.lock
        ):  # the rows are yesterday's: only the first request for yesterday's window gets them
            first = not Handler.served and window_start == YESTERDAY
            Handler.served = Handler.served or first
        gz = self.use_gzip and "gzip" in (self.headers.get("Accept-Encoding") or "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31) if gz else None

        def send(data: bytes, final: bool = False) -> None:
            if compressor is not None:
                data = compressor.compress(data) + (compressor.flush() if final else b"")
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        send(b'{"startTime":%d,"results":[' % YESTERDAY)
        sent, offset = 0, 0
        if first:
            while sent < self.size:
                block = rows_block(2000, offset)
                send((b"," if offset else b"") + block)
                sent += len(block) + 1
                offset += 2000
        send(b"]}", final=True)
        self.wfile.write(b"0\r\n\r\n")
        Handler.rows += offset


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """The connector closes a connection once an answer's JSON is complete: not a traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()
    Handler.size, Handler.use_gzip = int(args.gb * (1 << 30)), not args.no_gzip
    server = QuietServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connector = str(Path(sys.executable).parent / "source-pendo")
    with tempfile.TemporaryDirectory() as tmp:
        config = {
            "api_key": "bench-key.us",
            "base_url": f"http://127.0.0.1:{server.server_address[1]}",  # ignore-https-check: loopback server
            "period": "DAY",
            "start_date": time.strftime("%Y-%m-%d", time.gmtime(YESTERDAY / 1000)),
            "page_size": 500_000,
        }
        catalog = {
            "streams": [
                {
                    "stream": {"name": "events", "json_schema": {}, "supported_sync_modes": ["incremental"]},
                    "sync_mode": "incremental",
                    "destination_sync_mode": "append",
                    "cursor_field": ["periodStart"],
                }
            ]
        }
        Path(tmp, "config.json").write_text(json.dumps(config))
        Path(tmp, "catalog.json").write_text(json.dumps(catalog))
        started = time.monotonic()
        read = subprocess.Popen(
            [connector, "read", "--config", f"{tmp}/config.json", "--catalog", f"{tmp}/catalog.json"],
            stdout=subprocess.PIPE,
        )
        count = subprocess.run(
            ["grep", "-c", '^{"type":"RECORD"'], stdin=read.stdout, capture_output=True, text=True
        )
        read.wait()
        wall = time.monotonic() - started
    peak_mb = (
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    )  # the largest child: the connector
    records = int(count.stdout.strip() or 0)
    print(
        f"one {args.gb:g} GB aggregation response ({'gzip' if Handler.use_gzip else 'identity'}): {Handler.rows} rows served, "
        f"{records} records read (exit {read.returncode}) in {wall:.1f} s, connector peak RSS {peak_mb:.0f} MB"
    )
    server.shutdown()
    if read.returncode != 0 or records != Handler.rows:
        sys.exit(
            f"the read failed or lost rows (exit {read.returncode}); run the connector by hand to see why"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
