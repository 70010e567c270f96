"""A hostile HTTP proxy in front of the Pendo emulator (issue 15): what a broken or malicious server may answer.

`HostileProxy(upstream)` listens on 127.0.0.1 (plain HTTP, or real TLS with a throw-away self-signed
certificate: `tls=True`, and the connector trusts it through `REQUESTS_CA_BUNDLE=proxy.ca_bundle`) and forwards
every request to the emulator unchanged, streaming the answer back as it comes (gzip bodies stay gzip), unless
an active *mode* matches the request. Modes are switched per test (`set_modes`) and matched per route (the
emulator's route names: aggregation, page, feature, guide, tracktype, report, report_results, segment,
metadata_schema, visitor_history, visitor, account, or `*`) and, for aggregations, per source (events,
accounts, ...). A mode fires on every match (`times: null`, the default) or on the first `times` matches. The modes that change
rows leave Pendo's counts (the `{"count": null}` aggregations) alone unless they say `counts: true`; the others
(a status, a body, a redirect, a cap) answer counts too.

Use it in-process (`with HostileProxy(url) as proxy:`) or as a process (`python -m integration_tests.hostile_proxy
--upstream URL [--tls] [--modes JSON]`, which prints `{"base_url": ...}` and takes `POST /_proxy/modes`).

`RecordingOrigin` is "another origin": a local server that answers every request with `[]` and records the
headers it received, so a test can prove the integration key was (or was not) sent to it.

Modes (`kind`):

* `redirect`       answer `status` (302/307) with `Location: <target><path>?<query>` (target: another origin).
* `time_fields`    rewrite the time fields (`fields`, default day, hour, browserTime, ts) of the rows of an
                   aggregation (`results`) or a visitor history (a bare list) `as`: `float` (1795651200000.0),
                   `string` ("1795651200000"), `text` ("yesterday") or `remove`d; or in another unit: `seconds`
                   (t // 1000) or `micros` (t * 1000); or, for the first row only, `negative` (-t), `year_9999`
                   (253402214400000) or `1e23` (the float 1e23).
* `body`           answer `status` (200) with `content_type` and `body`; `body: null` with `truncate_to` sends
                   the first `truncate_to` bytes of the real (decoded) body instead.
* `ignore_keyset`  strip the keyset condition from an aggregation's filter before forwarding, so every
                   follow-up page is answered with the first page again.
* `status`         answer `status` with an optional `Retry-After` (`retry_after`) and `body`, where `{key}` is
                   the request's key as sent and `{key_json}` the key JSON-escaped (`"` -> `\\"`, `\\` -> `\\\\`).
* `cap`            answer at most `max_rows` rows of an aggregation, whatever its `limit` (a server-side cap).
* `old_bucket_form`  send a single-bucket request (a filter with `t == B`) as 0.3.x did, `timeSeries` `last` =
                   `first` = the bucket's start instead of its last millisecond (BEHAVIOR.md §R-15).
* `big_value`      set `field` of the first row of the first answer to a `size`-byte string holding `},{` and
                   `"`, and of that same row in every later answer that holds it (a server that stores the
                   value: an answer asked again, e.g. a window read by halves, holds it too).
* `nested`         set `field` of the first row to an array nested `depth` levels deep (spliced as bytes).
* `metadata_collision`  give the first row `metadata.custom.a_b` and `metadata.custom_a.b` (both map to the
                   column `metadata_custom_a_b`).
* `reformat`       send an aggregation's answer `style` `indent` (json.dumps(indent=2): line breaks and spaces
                   inside every row) or `crlf` (`\\r\\n` after every `,` and `:`, between tokens), rows unchanged.
* `surrogate`      set `field` of the first row of the first answer (and of that row in every later answer) to a
                   string holding an escaped lone surrogate (`"before \\ud800 after"`, valid JSON); `changed`
                   records the row as it was.
* `hostile_ids`    prefix `field` (default `id`) of the first row that satisfies `where` with `../` (a report id
                   in the report list, a visitor id in an aggregation).

* `drip`           send the real answer's headers (with its Content-Length), then its (decoded) body one byte
                   every `interval` seconds (default 0.2): each read gets bytes, the whole answer never ends.
* `close`          read the request and close the connection without a byte of answer.
* `silent`         read the request and send nothing for `seconds` (default 120), then close.
* `hold_open`      send the real (decoded) answer chunked but without the last chunk, then keep the connection
                   open `seconds` (default 120): a complete JSON document the server never finishes.

`key_map` translates the key the connector sends into the one the emulator accepts (a test key holding `"`
and `\\`, which the emulator does not know). `requests` is the log: method, raw path, route, source, the key
header as received, and the mode that fired (`changed` records what a body mode changed, e.g. the row).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

KEY_HEADER = "x-pendo-integration-key"
TIME_FIELDS = ("day", "hour", "browserTime", "ts")
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "proxy-connection",
    "te",
    "upgrade",
}
MAINTENANCE_HTML = (
    "<!DOCTYPE html><html><head><title>Pendo is down for maintenance</title></head>"
    "<body><h1>We'll be right back</h1><p>Pendo is undergoing scheduled maintenance.</p></body></html>"
)
ROUTE_PREFIXES = {
    "aggregation": "aggregation",
    "page": "page",
    "feature": "feature",
    "guide": "guide",
    "tracktype": "tracktype",
    "segment": "segment",
    "metadata": "metadata_schema",
    "account": "account",
}
ENTITY_KEYSET = re.compile(r'(\w+ > )"((?:[^"\\]|\\.)+)"')
ACTIVITY_KEYSET = (
    re.compile(  # `t > B`, `t == B && visitorId >= V` (and the older `t > B || (t == B && ...)`)
        r" && (?:\(\w+ > -?\d+ \|\| \(\w+ == -?\d+ && visitorId >= (?:\"(?:[^\"\\]|\\.)*\"|-?\d+)\)\)"
        r"|\w+ > -?\d+|\w+ == -?\d+ && visitorId >= (?:\"(?:[^\"\\]|\\.)*\"|-?\d+))"
    )
)


def route_of(path: str) -> str:
    """The emulator's route name for a request path (`/eu/api/v1/report/x/results.json` -> report_results)."""
    api = path.split("?", 1)[0]
    if "/api/v1/" not in api:
        return "unknown"
    rest = api.split("/api/v1/", 1)[1]
    head = rest.split("/", 1)[0]
    if head == "report":
        return "report_results" if rest.count("/") >= 2 else "report"
    if head == "visitor":
        return "visitor_history" if rest.endswith("/history") else "visitor"
    return ROUTE_PREFIXES.get(head, "unknown")


def source_of(body: bytes) -> str | None:
    """The first source of an aggregation pipeline (`events`, `accounts`, ...)."""
    try:
        pipeline = json.loads(body)["request"]["pipeline"]
        return next(k for k in pipeline[0]["source"] if k != "timeSeries")
    except (ValueError, KeyError, IndexError, TypeError, StopIteration):
        return None


ROW_KINDS = {
    "time_fields",
    "big_value",
    "nested",
    "metadata_collision",
    "hostile_ids",
    "ignore_keyset",
    "old_bucket_form",
    "reformat",
    "surrogate",
}


def is_count(body: bytes) -> bool:
    """Whether an aggregation body ends in `{"count": null}` (Pendo's count of a window, BEHAVIOR.md §B-22)."""
    try:
        stages = json.loads(body)["request"]["pipeline"]
        return bool(stages) and stages[-1] == {"count": None}
    except (ValueError, KeyError, IndexError, TypeError):
        return False


# time_fields `as`: every row's time in another unit, or the first row's out of any range.
UNIT_TIMES = {"seconds": lambda t: t // 1000, "micros": lambda t: t * 1000}
FIRST_ROW_TIMES = {
    "negative": lambda t: -t,
    "year_9999": lambda t: 253402214400000,
    "1e23": lambda t: 1e23,
}


class Mode(dict):  # a dict with its own counters; JSON in, JSON out
    def matches(self, route: str, source: str | None, body: bytes = b"") -> bool:
        # the modes that change rows leave the counts alone (`counts: true` makes any mode hit them too)
        counts = self.get("counts", self.get("kind") not in ROW_KINDS)
        return (
            self.get("route", "*") in ("*", route)
            and self.get("source") in (None, source)
            and (self.get("body_contains") is None or self["body_contains"].encode() in body)
            and (counts or route != "aggregation" or not is_count(body))
        )


class HostileProxy:
    def __init__(
        self,
        upstream: str,
        *,
        tls: bool = False,
        key_map: dict[str, str] | None = None,
        modes: list[dict[str, Any]] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.upstream_prefix = parts.path.rstrip("/")
        self.tls = tls
        self.key_map = dict(key_map or {})
        self._lock = threading.Lock()
        self._modes: list[Mode] = []
        self.requests: list[dict[str, Any]] = []
        self.ca_bundle: str | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: ThreadingHTTPServer | None = None
        self.set_modes(modes or [])

    # ------------------------------------------------------------------ control
    def set_modes(self, modes: list[dict[str, Any]]) -> None:
        with self._lock:
            self._modes = [Mode(m, fired=0) for m in modes]

    def reset(self) -> None:
        with self._lock:
            self._modes = []
            self.requests = []

    def fired(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r.get("mode") and (kind is None or r["mode"] == kind)]

    def pick(self, route: str, source: str | None, body: bytes = b"") -> Mode | None:
        with self._lock:
            for mode in self._modes:
                if mode.matches(route, source, body) and (
                    mode.get("times") is None or mode["fired"] < mode["times"]
                ):
                    mode["fired"] += 1
                    return mode
        return None

    def log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory()
            cert, key = (os.path.join(self._tmp.name, n) for n in ("cert.pem", "key.pem"))
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    key,
                    "-out",
                    cert,
                    "-days",
                    "1",
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ],
                check=True,
                capture_output=True,
            )
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_bundle = cert
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> HostileProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: HostileProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the log is `owner.requests`
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self, method: str) -> None:
        owner = self.owner
        body = self._read_body() if method == "POST" else b""
        if self.path == "/_proxy/modes" and method == "POST":
            owner.set_modes(json.loads(body))
            return self._send(200, b"{}", "application/json")
        route = route_of(self.path)
        source = source_of(body) if route == "aggregation" else None
        entry: dict[str, Any] = {
            "t": time.time(),
            "method": method,
            "path": self.path,
            "route": route,
            "source": source,
            "key": self.headers.get(KEY_HEADER),
        }
        mode = owner.pick(route, source, body)
        if mode is not None:
            entry["mode"] = mode["kind"]
        owner.log(entry)
        try:
            if mode is None:
                return self._forward(method, body)
            getattr(self, f"_mode_{mode['kind']}")(mode, method, body, entry)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ------------------------------------------------------------------ upstream
    def _upstream(self, method: str, body: bytes) -> http.client.HTTPResponse:
        owner = self.owner
        connection = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=600)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        key = headers.pop(KEY_HEADER, None) or headers.pop(KEY_HEADER.title(), None)
        for name in list(headers):
            if name.lower() == KEY_HEADER:
                key = headers.pop(name)
        if key is not None:
            headers[KEY_HEADER] = owner.key_map.get(key, key)
        if body:
            headers["Content-Length"] = str(len(body))
        connection.request(method, owner.upstream_prefix + self.path, body=body or None, headers=headers)
        return connection.getresponse()

    def _forward(self, method: str, body: bytes) -> None:
        """Pass-through, streamed: the upstream's status, headers and (still encoded) body, chunk by chunk."""
        response = self._upstream(method, body)
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := response.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _fetch(self, method: str, body: bytes) -> tuple[int, str, bytes]:
        """The upstream's answer, whole and decoded (gzip undone)."""
        response = self._upstream(method, body)
        data = response.read()
        if (response.getheader("Content-Encoding") or "").lower() == "gzip":
            data = gzip.decompress(data)
        return response.status, response.getheader("Content-Type") or "application/json", data

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _rows_rewritten(self, method: str, body: bytes, entry: dict[str, Any], rewrite: Any) -> None:
        """Fetch, let `rewrite(rows)` change the rows (an aggregation's `results` or a bare list), send back."""
        status, content_type, data = self._fetch(method, body)
        if status != 200:
            return self._send(status, data, content_type)
        payload = json.loads(data)
        rows = payload["results"] if isinstance(payload, dict) else payload
        changed = rewrite(rows)
        if isinstance(payload, dict):
            payload["results"] = rows
        if changed is not None:
            entry["changed"] = changed
        out = json.dumps(payload, separators=(",", ":")).encode()
        self._send(200, out, "application/json")

    # ------------------------------------------------------------------ modes
    def _mode_redirect(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        self._send(
            int(mode.get("status", 302)),
            b"",
            "text/plain",
            {"Location": mode["target"].rstrip("/") + self.path},
        )

    def _mode_status(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        key = self.headers.get(KEY_HEADER) or ""
        text = (mode.get("body") or "").replace("{key_json}", json.dumps(key)[1:-1]).replace("{key}", key)
        headers = {"Retry-After": str(mode["retry_after"])} if mode.get("retry_after") is not None else {}
        self._send(
            int(mode.get("status", 503)), text.encode(), mode.get("content_type", "application/json"), headers
        )

    def _mode_body(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        if mode.get("body") is None:
            _, _, data = self._fetch(method, body)
            data = data[: int(mode.get("truncate_to", 100))]
        else:
            data = mode["body"].encode()
        self._send(int(mode.get("status", 200)), data, mode.get("content_type", "text/html"))

    def _mode_time_fields(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        fields, how = mode.get("fields") or TIME_FIELDS, mode["as"]

        def rewrite(rows: list[dict[str, Any]]) -> int:
            n = 0
            for row in rows:
                for name in fields:
                    if name not in row or not isinstance(row[name], int):
                        continue
                    if how in FIRST_ROW_TIMES and n:
                        continue
                    n += 1
                    if how == "remove":
                        del row[name]
                    elif how in FIRST_ROW_TIMES:
                        row[name] = FIRST_ROW_TIMES[how](row[name])
                    elif how in UNIT_TIMES:
                        row[name] = UNIT_TIMES[how](row[name])
                    else:
                        row[name] = {
                            "float": float(row[name]),
                            "string": str(row[name]),
                            "text": "yesterday",
                        }[how]
            return n

        self._rows_rewritten(method, body, entry, rewrite)

    def _mode_reformat(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        status, content_type, data = self._fetch(method, body)
        if status != 200:
            return self._send(status, data, content_type)
        payload = json.loads(data)
        if mode.get("style", "indent") == "indent":
            out = json.dumps(payload, indent=2)
        else:
            out = json.dumps(payload, separators=(",\r\n", ":\r\n"))
        entry["changed"] = len(payload.get("results") or [])
        self._send(200, out.encode(), "application/json")

    def _remembered_row(self, mode: Mode, rows: list[dict[str, Any]]) -> tuple[int | None, Any]:
        """Where in `rows` the mode's one row is (the first row it ever saw, remembered across the proxy's
        handler threads), and that row; None when this answer does not hold it."""
        with self.owner._lock:
            if "row" not in mode and rows:
                mode["row"] = copy.deepcopy(rows[0])
            original = mode.get("row")
        return next((i for i, row in enumerate(rows) if row == original), None), original

    def _mode_surrogate(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        name = mode["field"]

        def rewrite(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
            at, original = self._remembered_row(mode, rows)
            if at is None:
                return None
            rows[at][name] = "before \ud800 after"  # json.dumps writes it escaped: `"before \\ud800 after"`
            return {"row": original}

        self._rows_rewritten(method, body, entry, rewrite)

    def _mode_ignore_keyset(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        request = json.loads(body)
        for stage in request["request"]["pipeline"]:
            if "filter" in stage:
                original = stage["filter"]
                stage["filter"] = ACTIVITY_KEYSET.sub("", ENTITY_KEYSET.sub(r'\1""', original))
                entry["keyset_stripped"] = stage["filter"] != original
        self._forward(method, json.dumps(request).encode())

    def _mode_old_bucket_form(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        request = json.loads(body)
        pipeline = request["request"]["pipeline"]
        series = pipeline[0]["source"].get("timeSeries") or {}
        condition = next((stage["filter"] for stage in pipeline if "filter" in stage), "")
        if " == " in condition and series and str(series.get("first")) != str(series.get("last")):
            series["last"] = str(series["first"])
            entry["changed"] = {"last": series["last"]}
        self._forward(method, json.dumps(request).encode())

    def _mode_cap(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        cap = int(mode["max_rows"])

        def rewrite(rows: list[Any]) -> int:
            cut = max(0, len(rows) - cap)
            del rows[cap:]
            return cut

        self._rows_rewritten(method, body, entry, rewrite)

    def _mode_big_value(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        size, name = int(mode.get("size", 1 << 20)), mode["field"]
        unit = 'x"},{"y":1},{'
        value = (unit * (size // len(unit) + 1))[:size]

        def rewrite(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
            at, original = self._remembered_row(mode, rows)
            if at is None:
                return None
            rows[at][name] = value
            return {"row": copy.deepcopy(original), "field": name, "value": value}

        self._rows_rewritten(method, body, entry, rewrite)

    def _mode_nested(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        status, content_type, data = self._fetch(method, body)
        payload = json.loads(data)
        rows = payload["results"] if isinstance(payload, dict) else payload
        if status != 200 or not rows:
            return self._send(status, data, content_type)
        marker = "__nested_marker__"
        entry["changed"] = {"row": copy.deepcopy(rows[0]), "field": mode["field"], "depth": mode["depth"]}
        rows[0][mode["field"]] = marker
        depth = int(mode["depth"])
        out = json.dumps(payload, separators=(",", ":")).encode()
        out = out.replace(json.dumps(marker).encode(), b"[" * depth + b"1" + b"]" * depth, 1)
        self._send(200, out, "application/json")

    def _mode_metadata_collision(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        def rewrite(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
            if not rows:
                return None
            original = copy.deepcopy(rows[0])
            metadata = rows[0].setdefault("metadata", {})
            metadata.setdefault("custom", {})["a_b"] = "from custom.a_b"
            metadata.setdefault("custom_a", {})["b"] = "from custom_a.b"
            return {"row": original}

        self._rows_rewritten(method, body, entry, rewrite)

    def _mode_hostile_ids(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        where, name = mode.get("where") or {}, mode.get("field", "id")

        def rewrite(rows: list[dict[str, Any]]) -> list[str]:
            renamed: list[str] = []
            for row in rows:
                if (
                    all(row.get(k) == v for k, v in where.items())
                    and not renamed
                    and isinstance(row.get(name), (str, int))
                ):
                    row[name] = f"../{row[name]}"
                    renamed.append(row[name])
            return renamed

        self._rows_rewritten(method, body, entry, rewrite)

    def _mode_drip(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        status, content_type, data = self._fetch(method, body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        interval = float(mode.get("interval", 0.2))
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(interval)
        self.close_connection = True

    def _mode_close(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _mode_silent(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        time.sleep(float(mode.get("seconds", 120)))
        self.close_connection = True

    def _mode_hold_open(self, mode: Mode, method: str, body: bytes, entry: dict[str, Any]) -> None:
        status, content_type, data = self._fetch(method, body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        time.sleep(float(mode.get("seconds", 120)))
        self.close_connection = True


class RecordingOrigin:
    """Another origin: answers every request with `[]` (200) and records what it received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def keys_received(self) -> list[str]:
        return [r["headers"][KEY_HEADER] for r in self.requests if KEY_HEADER in r["headers"]]

    def __enter__(self) -> RecordingOrigin:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                origin.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"[]")

            do_GET = do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--modes", default="[]")
    args = parser.parse_args()
    with HostileProxy(args.upstream, tls=args.tls, modes=json.loads(args.modes)) as proxy:
        print(json.dumps({"base_url": proxy.base_url, "ca_bundle": proxy.ca_bundle}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
