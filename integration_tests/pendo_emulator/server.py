"""The Pendo v1 API emulator: a real HTTP/1.1 server on loopback (BEHAVIOR.md §B-0-§B-19).

Routes, each answered as BEHAVIOR.md records it:
  POST /api/v1/aggregation                      {startTime, results}; 422 without a pipeline; 400 bad filter
  GET  /api/v1/{page,feature,guide,tracktype}   bare arrays; expand=* all apps, appId=, id=; default app otherwise
  GET  /api/v1/report, /report/{id}/results.json|csv, /segment, /metadata/schema/{visitor,account,...}
  GET  /api/v1/visitor/{id}, /account/{id}, /visitor/{id}/history?starttime=  (24 h window, 180 days back)
  anything else                                 404 text/plain "404 page not found"
Auth: `x-pendo-integration-key` must be a known key (else 403); a known key of another region gets 400.
A path prefix `/<region>` (us, us1, eu, jpn, au) addresses that region's host on the same server.
Bodies are streamed with chunked transfer encoding and gzip-compressed when the client accepts it.
Test-only control routes live under `/_emulator/` (stats, faults, reset, info); they are not Pendo's.

Readings (`EmulatorSettings.readings`, CLI `--reading`; readings.py lists them) switch the answers to other
readings of BEHAVIOR.md §R-1 … §R-20; handled here: `null_results`, `bad_request_400` (and its `noagg-<key>`),
`history_unavailable(_400)`, `no_tracktype_rest`, `report_errors`, `spaced_json`, `rate_limit_403`,
`read_only_key` (`readonly-<key>`); the others act in pipeline.py, query.py and dataset.py.
"""

from __future__ import annotations

import csv
import io
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from . import pipeline
from . import readings as readings_module
from .dataset import DAY_MS, SCALES, Dataset
from .faults import FaultPlan, FaultRule, is_count
from .query import OBJECT_PARAM, QueryEngine

REGIONS = ("us", "us1", "eu", "jpn", "au")
DEFAULT_KEYS = {"emulator-key.us": "us", "emulator-key.eu": "eu"}
CHUNK = 64 * 1024
HISTORY_UNAVAILABLE_BODY = b'{"overall":{},"fields":{"starttime":"Invalid"}}'
"""R-7 (`history_unavailable`): the 422 of visitor history, in the validator form of §B-3's 422."""
REPORT_ERRORS: dict[str, tuple[int, str, str]] = {
    "Path": (400, "text/plain; charset=utf-8", "Bad Request"),
    "Funnels": (402, "text/plain; charset=utf-8", "Payment Required"),
    "Retention": (
        422,
        "application/json",
        '{"overall":{},"fields":{"reportId":"report type cannot be exported"}}',
    ),
    "Workflows": (200, "application/json", '{"id":"{id}","message":"This report type cannot be exported"}'),
    "Data Explorer": (200, "application/json", '{"results":null,"reportId":"{id}"}'),
}
"""R-9 (`report_errors`): how each unexportable report type answers `results.json|csv` (404 by default)."""


@dataclass
class EmulatorSettings:
    scale: str = "tiny"
    seed: int = 7
    now_ms: int = 0
    tz: str = "UTC"
    region: str = "us"
    keys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    faults: list[dict[str, Any]] = field(default_factory=list)
    late_rows: bool = False
    history_days: int = 180
    history_out_of_range_status: int = 400
    readings: Iterable[str] = ()  # readings.py names, `pessimistic` included
    untagged: Iterable[str] = ()  # object ids not tagged yet (catalogue_changes.py): a test tags them later

    def dataset(self) -> Dataset:
        ds = Dataset(
            SCALES[self.scale], self.seed, self.now_ms, self.tz, readings_module.expand(self.readings)
        )
        ds.changes.untagged.update(self.untagged)
        return ds


class Emulator:
    """State shared by all request threads: dataset, query engine, faults and request log."""

    def __init__(self, settings: EmulatorSettings) -> None:
        if not settings.now_ms:
            settings.now_ms = int(time.time() * 1000) // 3_600_000 * 3_600_000
        self.settings = settings
        self.readings = readings_module.expand(settings.readings)
        self.dataset = settings.dataset()
        self.engine = QueryEngine(self.dataset, settings.now_ms, self.readings)
        self.engine.late_rows_enabled = settings.late_rows
        self.faults = FaultPlan(settings.faults)
        self._log_lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._rate_offset = random.Random(f"{settings.seed}:rateLimit").randrange(
            readings_module.RATE_LIMIT_EVERY
        )
        self._reset_rate_limit()

    def _reset_rate_limit(self) -> None:
        self._api_requests = 0
        self._throttled: set[bytes] = set()

    def rate_limited(self, fingerprint: bytes) -> bool:
        """R-13 (`rate_limit_403`): every RATE_LIMIT_EVERY-th authenticated API request (seeded offset) is
        throttled, at most RATE_LIMIT_MAX times per run and never the same request (method, path, query,
        body) twice, so a client's retry succeeds and a sync can complete."""
        with self._log_lock:
            self._api_requests += 1
            if (
                self._api_requests % readings_module.RATE_LIMIT_EVERY != self._rate_offset
                or len(self._throttled) >= readings_module.RATE_LIMIT_MAX
                or fingerprint in self._throttled
            ):
                return False
            self._throttled.add(fingerprint)
            return True

    def log(self, entry: dict[str, Any]) -> None:
        with self._log_lock:
            self.requests.append(entry)

    def stats(self) -> dict[str, Any]:
        with self._log_lock:
            requests = list(self.requests)
        counts: dict[str, int] = {}
        for r in requests:
            key = r["route"] + (f":{r['source']}" if r.get("source") else "")
            counts[key] = counts.get(key, 0) + 1
        return {"requests": requests, "counts": counts, "faults": self.faults.summary()}

    def change_catalogue(self, changes: list[dict[str, Any]]) -> None:
        """Applies catalogue changes (catalogue_changes.py) between two syncs; rows are re-indexed."""
        if not isinstance(changes, list):
            raise ValueError("a list of catalogue changes")
        for change in changes:
            self.dataset.changes.apply(change, self.settings.now_ms)
        self.engine.clear_indexes()

    def reset(self) -> None:
        with self._log_lock:
            self.requests.clear()
            self._reset_rate_limit()
        self.faults.replace([])


class PendoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PendoEmulator/1.0"
    disable_nagle_algorithm = True  # headers and body go out at once: no delayed-ACK stall per request
    emulator: Emulator  # set on the subclass made by `make_server`

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is in /_emulator/stats
        return

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._logged = False
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        body = self._read_body()
        if url.path.startswith("/_emulator/"):
            return self._control(method, url.path, body)
        region, api_path = self._split_region(url.path)
        entry: dict[str, Any] = {
            "t": time.time(),  # arrival, epoch seconds: lets a test see how long a client waited to retry
            "method": method,
            "path": url.path,
            "query": url.query,
            "route": "unknown",
            "source": None,
            "status": None,
        }
        try:
            if api_path is None:
                return self._text(404, "404 page not found\n", entry)
            route, handler = self._route(method, api_path)
            entry["route"] = route
            source, window = None, None
            if route == "aggregation" and method == "POST":
                source, window = _peek_source(body), _peek_window(body)
                entry["source"] = source
                entry["object_id"] = _peek_object(body, source)
                entry["filter"] = _peek_filter(body)  # for the tests' request accounting
                entry["count"] = is_count(body)
                if window is not None:
                    entry["window"] = list(window)
            auth_error = self._check_auth(region)
            if auth_error is None and self._reading_refusal(method, route, url, body, entry):
                return
            rule = (
                self.emulator.faults.pick(route, source, api_path, window, body)
                if route != "unknown"
                else None
            )
            if auth_error is not None:
                return self._text(auth_error[0], auth_error[1], entry)
            if (
                rule is not None
                and rule.kind in ("status", "wrong_region", "slow")
                and self._apply_pre_fault(rule, entry)
            ):
                return
            handler(api_path, query, body, entry, rule)
        finally:
            if not self._logged:
                self.emulator.log(entry)

    def _route(self, method: str, path: str) -> tuple[str, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["aggregation"]:
            if method == "POST":
                return "aggregation", self._aggregation
            return "aggregation", lambda *a: self._text(400, "missing jzb", a[3])
        if method not in ("GET", "HEAD"):
            return "unknown", lambda *a: self._text(404, "404 page not found\n", a[3])
        if len(parts) == 1 and parts[0] in ("page", "feature", "guide", "tracktype"):
            return parts[0], self._catalogue
        if parts == ["report"]:
            return "report", lambda p, q, b, e, r: self._json(
                200, self.emulator.dataset.catalogue("reports"), e, r
            )
        if len(parts) == 3 and parts[0] == "report" and parts[2] in ("results.json", "results.csv"):
            return "report_results", self._report_results
        if parts == ["segment"]:
            return "segment", lambda p, q, b, e, r: self._json(
                200, self.emulator.dataset.catalogue("segments"), e, r
            )
        if len(parts) == 3 and parts[:2] == ["metadata", "schema"]:
            return "metadata_schema", lambda p, q, b, e, r: self._json(
                200, self.emulator.dataset.metadata_schema(parts[2]), e, r
            )
        if len(parts) == 3 and parts[0] == "visitor" and parts[2] == "history":
            return "visitor_history", self._visitor_history
        if len(parts) == 2 and parts[0] in ("visitor", "account"):
            return parts[0], self._entity
        return "unknown", lambda *a: self._text(404, "404 page not found\n", a[3])

    @staticmethod
    def _split_region(path: str) -> tuple[str | None, str | None]:
        parts = path.split("/", 2)
        if len(parts) > 2 and parts[1] in REGIONS:
            region, rest = parts[1], "/" + parts[2]
        else:
            region, rest = None, path
        if not rest.startswith("/api/v1/"):
            return region, None
        return region, rest[len("/api/v1") :]

    def _check_auth(self, region: str | None) -> tuple[int, str] | None:
        """None for a known key on its region's host (setting `_key_kind`), else the status and body."""
        key = self.headers.get("x-pendo-integration-key")
        keys = self.emulator.settings.keys
        self._key_kind = "full"
        if key and key not in keys:  # the key variants of the readings (readings.py)
            for prefix, reading, kind in (
                (readings_module.READ_ONLY_PREFIX, "read_only_key", "read_only"),
                (readings_module.NO_AGGREGATION_PREFIX, "bad_request_400", "no_aggregation"),
            ):
                if (
                    key.startswith(prefix)
                    and reading in self.emulator.readings
                    and key[len(prefix) :] in keys
                ):
                    key, self._key_kind = key[len(prefix) :], kind
                    break
        if not key or key not in keys:
            return 403, "Forbidden"
        if keys[key] != (region or self.emulator.settings.region):
            return 400, "Bad Request"  # a valid key on another region's host (BEHAVIOR.md §B-1)
        return None

    def _reading_refusal(
        self, method: str, route: str, url: urllib.parse.SplitResult, body: bytes, entry: dict[str, Any]
    ) -> bool:
        """Answers an authenticated request that a reading refuses before it reaches its route; True if so."""
        if route == "aggregation" and method == "POST" and self._key_kind != "full":
            entry["key_kind"] = self._key_kind
            if self._key_kind == "read_only":  # a read-only key cannot run aggregations (403, §B-3)
                self._text(403, "Forbidden", entry)
            else:  # the plan has no aggregation access
                self._text(400, "Bad Request", entry)
            return True
        if route != "unknown" and "rate_limit_403" in self.emulator.readings:
            fingerprint = b"%s %s?%s\n%s" % (method.encode(), url.path.encode(), url.query.encode(), body)
            if self.emulator.rate_limited(fingerprint):
                entry["reading"] = "rate_limit_403"
                self._send_bytes(403, readings_module.RATE_LIMIT_BODY.encode(), "application/json", entry)
                return True
        return False

    def _apply_pre_fault(self, rule: FaultRule, entry: dict[str, Any]) -> bool:
        entry["fault"] = rule.kind
        if rule.kind == "slow":
            time.sleep(rule.delay_s)
            return False
        status = 400 if rule.kind == "wrong_region" else rule.status
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(rule.retry_after if rule.retry_after % 1 else int(rule.retry_after))
        reason = {
            429: "Too Many Requests",
            400: "Bad Request",
            403: "Forbidden",
            404: "404 page not found\n",
        }.get(status, "Internal Server Error")
        if rule.body is not None:
            reason = rule.body.replace("{key}", self.headers.get("x-pendo-integration-key") or "")
        self._text(status, reason, entry, headers)
        return True

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # ------------------------------------------------------------------ routes
    def _aggregation(
        self,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        entry: dict[str, Any],
        rule: FaultRule | None,
    ) -> None:
        try:
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = None
            request = pipeline.parse_request(payload, self.emulator.settings.now_ms, self.emulator.readings)
            result = self.emulator.engine.run(request)
        except pipeline.PipelineError as error:
            return self._send_bytes(error.status, error.body.encode(), error.content_type, entry)
        entry["source"] = request.source_name
        counter = {"rows": 0}
        readings = self.emulator.readings
        envelope = _envelope(
            result.start_time,
            result.blobs,
            counter,
            null_empty="null_results" in readings,
            spaced=self._spaced_rng(body) if "spaced_json" in readings else None,
        )
        self._stream(200, envelope, "application/json", entry, rule)
        entry["rows"] = counter["rows"]

    def _catalogue(
        self,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        entry: dict[str, Any],
        rule: FaultRule | None,
    ) -> None:
        if path.strip("/") == "tracktype" and "no_tracktype_rest" in self.emulator.readings:
            return self._text(404, "404 page not found\n", entry)  # only the trackTypes source exists
        ds = self.emulator.dataset
        kind = {"page": "pages", "feature": "features", "guide": "guides", "tracktype": "track_types"}
        objects = ds.catalogue(kind[path.strip("/")])
        if query.get("expand", [""])[0] != "*":
            wanted = query.get("appId", [str(ds.app_ids[0])])[0]
            objects = [o for o in objects if str(o["appId"]) == wanted]
        if "id" in query:
            objects = [o for o in objects if o["id"] == query["id"][0]]
        self._json(200, objects, entry, rule)

    def _report_results(
        self,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        entry: dict[str, Any],
        rule: FaultRule | None,
    ) -> None:
        report_id, fmt = path.strip("/").split("/")[1:3]
        rows = self.emulator.dataset.report_results(report_id)
        if rows is None and "report_errors" in self.emulator.readings:
            report = next((r for r in self.emulator.dataset.reports if r["id"] == report_id), None)
            answer = REPORT_ERRORS.get(report["type"]) if report is not None else None
            if answer is not None:
                status, content_type, text = answer
                return self._send_bytes(status, text.replace("{id}", report_id).encode(), content_type, entry)
        if rows is None:
            return self._text(404, "404 page not found\n", entry)
        if fmt == "results.json":
            return self._json(200, rows, entry, rule)
        out = io.StringIO()
        columns = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(rows)
        self._send_bytes(200, out.getvalue().encode(), "text/csv", entry)

    def _entity(
        self,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        entry: dict[str, Any],
        rule: FaultRule | None,
    ) -> None:
        kind, raw_id = path.strip("/").split("/", 1)
        entity_id = urllib.parse.unquote(raw_id)
        ds = self.emulator.dataset
        rows = ds.visitor_rows if kind == "visitor" else ds.account_rows
        id_field = "visitorId" if kind == "visitor" else "accountId"
        row = next((r for r in rows if r[id_field] == entity_id), None)
        if row is None:
            return self._send_bytes(404, b"", "text/plain; charset=utf-8", entry)
        obj: dict[str, Any] = {"id": entity_id, "metadata": row["metadata"]}
        if kind == "visitor":  # the REST visitor object: accountIds, account, firstidentifiedvisit
            auto = row["metadata"]["auto"]
            obj["accountIds"] = list(auto.get("accountids", []))
            if auto.get("accountid"):
                obj["account"] = {"id": auto["accountid"]}
            obj["metadata"] = dict(row["metadata"], auto=dict(auto, firstidentifiedvisit=auto["firstvisit"]))
        self._json(200, obj, entry, rule)

    def _visitor_history(
        self,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        entry: dict[str, Any],
        rule: FaultRule | None,
    ) -> None:
        content_type = self.headers.get("Content-Type")
        entry["content_type"] = content_type  # tap-pendo sends application/x-www-form-urlencoded here (§B-19)
        entry["form_urlencoded"] = (content_type or "").startswith("application/x-www-form-urlencoded")
        readings = self.emulator.readings
        if "history_unavailable_400" in readings:  # R-7, the 400 variant
            return self._text(400, "Bad Request", entry)
        if "history_unavailable" in readings:  # LDNA's 2026 live test got 422 for every visitor
            return self._send_bytes(422, HISTORY_UNAVAILABLE_BODY, "application/json", entry)
        visitor_id = urllib.parse.unquote(path.strip("/").split("/")[1])
        ds = self.emulator.dataset
        settings = self.emulator.settings
        try:
            start = int(query["starttime"][0])
        except (KeyError, ValueError):
            return self._text(400, "starttime is required", entry)
        if start < settings.now_ms - settings.history_days * DAY_MS:
            return self._text(
                settings.history_out_of_range_status, "starttime is more than 180 days ago", entry
            )
        row = next((r for r in ds.visitor_rows if r["visitorId"] == visitor_id), None)
        if row is None:
            return self._send_bytes(404, b"", "text/plain; charset=utf-8", entry)
        if row["metadata"]["pendo"]["donotprocess"]:
            return self._json(200, [], entry, rule)
        items = [it for it in ds.visitor_history.get(visitor_id, []) if start <= it["ts"] < start + DAY_MS]
        self._json(200, items, entry, rule)

    # ------------------------------------------------------------------ control routes
    def _control(self, method: str, path: str, body: bytes) -> None:
        emulator = self.emulator
        if path == "/_emulator/stats":
            return self._send_bytes(200, orjson.dumps(emulator.stats()), "application/json", None)
        if path == "/_emulator/info":
            s = emulator.settings
            info = {
                "scale": s.scale,
                "seed": s.seed,
                "now_ms": s.now_ms,
                "tz": s.tz,
                "region": s.region,
                "late_rows": emulator.engine.late_rows_enabled,
                "readings": sorted(emulator.readings),
            }
            return self._send_bytes(200, orjson.dumps(info), "application/json", None)
        if path == "/_emulator/reset" and method == "POST":
            emulator.reset()
            return self._send_bytes(200, b"{}", "application/json", None)
        if path == "/_emulator/faults" and method == "POST":
            try:
                emulator.faults.replace(json.loads(body or b"[]"))
            except (ValueError, TypeError) as error:
                return self._send_bytes(400, str(error).encode(), "text/plain", None)
            return self._send_bytes(200, b"{}", "application/json", None)
        if path == "/_emulator/catalogue" and method == "POST":
            try:
                emulator.change_catalogue(json.loads(body or b"[]"))
            except (ValueError, TypeError) as error:
                return self._send_bytes(400, str(error).encode(), "text/plain", None)
            return self._send_bytes(200, b"{}", "application/json", None)
        if path == "/_emulator/late_rows" and method == "POST":
            emulator.engine.late_rows_enabled = bool(json.loads(body or b"true"))
            return self._send_bytes(200, b"{}", "application/json", None)
        self._send_bytes(404, b"404 page not found\n", "text/plain; charset=utf-8", None)

    # ------------------------------------------------------------------ responses
    def _text(
        self, status: int, text: str, entry: dict[str, Any] | None, headers: dict[str, str] | None = None
    ) -> None:
        self._send_bytes(status, text.encode(), "text/plain; charset=utf-8", entry, headers)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str,
        entry: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if entry is not None:
            entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, obj: Any, entry: dict[str, Any], rule: FaultRule | None) -> None:
        if "spaced_json" in self.emulator.readings:
            data = spaced_dumps(obj, self._spaced_rng(b""))
        else:
            data = orjson.dumps(obj)
        self._stream(status, iter([data]), "application/json", entry, rule)

    def _spaced_rng(self, body: bytes) -> random.Random:
        """R-12: the key order of a response, seeded by the run's seed and the request (repeatable)."""
        request = b"%s %s\n%s" % (self.command.encode(), self.path.encode(), body)
        return random.Random(self.emulator.settings.seed * 1_000_003 + zlib.crc32(request))

    def _stream(
        self,
        status: int,
        pieces: Iterator[bytes],
        content_type: str,
        entry: dict[str, Any],
        rule: FaultRule | None,
    ) -> None:
        """Chunked (and gzip when accepted) body; mid-body faults (stall, reset, truncate) act here."""
        entry["status"] = status
        use_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
        entry["gzip"] = use_gzip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        if use_gzip:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        if self.command == "HEAD":
            return  # a HEAD response has no body, not even the chunked terminator
        body_fault = rule if rule is not None and rule.kind in ("stall", "reset", "truncate") else None
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31) if use_gzip else None
        sent = 0  # uncompressed bytes of the body produced so far
        for piece in _rechunk(pieces):
            if body_fault is not None and sent + len(piece) >= body_fault.after_bytes:
                piece = piece[: max(0, body_fault.after_bytes - sent)]
                entry["fault"] = body_fault.kind  # logged only when the body really was cut short
                self._write_chunk(
                    compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH) if compressor else piece
                )
                return self._finish_fault(body_fault, compressor, entry)
            sent += len(piece)
            data = compressor.compress(piece) if compressor else piece
            if data:
                self._write_chunk(data)
        if compressor:
            self._write_chunk(compressor.flush())
        self.wfile.write(b"0\r\n\r\n")

    def _finish_fault(self, rule: FaultRule, compressor: Any, entry: dict[str, Any]) -> None:
        if rule.kind == "stall":
            self.wfile.flush()
            self.emulator.log(entry)  # now, not after the stall: the client has long moved on by then
            self._logged = True
            time.sleep(rule.delay_s)
        if rule.kind in ("reset", "stall"):
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if compressor:  # truncate: a well-framed response whose JSON stops short
            self._write_chunk(compressor.flush())
        self.wfile.write(b"0\r\n\r\n")

    def _write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _envelope(
    start_time: int,
    blobs: Iterable[bytes],
    counter: dict[str, int],
    *,
    null_empty: bool = False,
    spaced: random.Random | None = None,
) -> Iterator[bytes]:
    """`{"startTime":…,"results":[…]}` streamed row by row. `null_empty` (R-5): no rows give `"results":null`.
    `spaced` (R-12): `", "`/`": "` separators, row keys and the envelope's two keys in a seeded shuffled order."""
    comma, colon = (b", ", b": ") if spaced is not None else (b",", b":")
    start = b'"startTime"%s%d' % (colon, start_time)
    results_first = spaced is not None and spaced.random() < 0.5
    yield b'{"results"%s' % colon if results_first else b'{%s%s"results"%s' % (start, comma, colon)
    n = 0
    orders: dict[tuple[str, ...], list[list[str]]] = {}
    for blob in blobs:
        if spaced is not None:
            blob = spaced_dumps(orjson.loads(blob), spaced, orders)
        yield (b"[" if n == 0 else comma) + blob
        n += 1
    counter["rows"] = n
    tail = b"]" if n else (b"null" if null_empty else b"[]")
    yield tail + (comma + start + b"}" if results_first else b"}")


_SPACED_ENCODER = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False)
_KEY_ORDERS = 8  # orders drawn per distinct key set; each object takes one of them at random


def spaced_dumps(
    obj: Any, rng: random.Random, orders: dict[tuple[str, ...], list[list[str]]] | None = None
) -> bytes:
    """JSON with `", "` and `": "` separators and every object's keys in an order drawn from `rng` (R-12).

    `orders` caches, per key set, `_KEY_ORDERS` shuffled orders to choose from (pass one dict per response
    to keep a large result fast)."""
    return _SPACED_ENCODER.encode(_shuffled(obj, rng, {} if orders is None else orders)).encode()


def _shuffled(obj: Any, rng: random.Random, orders: dict[tuple[str, ...], list[list[str]]]) -> Any:
    if type(obj) is dict:
        keys = tuple(obj)
        choices = orders.get(keys)
        if choices is None:
            choices = orders[keys] = [rng.sample(keys, len(keys)) for _ in range(_KEY_ORDERS)]
        out = {}
        for k in choices[int(rng.random() * _KEY_ORDERS)]:
            v = obj[k]
            out[k] = _shuffled(v, rng, orders) if type(v) in (dict, list) else v
        return out
    if type(obj) is list:
        return [_shuffled(v, rng, orders) if type(v) in (dict, list) else v for v in obj]
    return obj


def _rechunk(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Group small pieces (one row each) into ~64 KiB writes."""
    buf: list[bytes] = []
    size = 0
    for piece in pieces:
        buf.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


def _peek_source(body: bytes) -> str | None:
    try:
        stage = json.loads(body)["request"]["pipeline"][0]["source"]
        return next(k for k in stage if k != "timeSeries")
    except Exception:
        return None


def _peek_object(body: bytes, source: str | None) -> str | None:
    """The one object an aggregation asks for (`{"featureEvents": {"featureId": "<id>"}}`), if any."""
    try:
        params = json.loads(body)["request"]["pipeline"][0]["source"][source]
        return str(params[OBJECT_PARAM[source]]) if OBJECT_PARAM[source] in params else None  # type: ignore[index]
    except Exception:
        return None


def _peek_filter(body: bytes) -> str | None:
    """An aggregation's `filter` stage (the first), when it has one."""
    try:
        stages = json.loads(body)["request"]["pipeline"]
        return next((str(s["filter"]) for s in stages if isinstance(s, dict) and "filter" in s), None)
    except Exception:
        return None


def _peek_window(body: bytes) -> tuple[int, int] | None:
    """An aggregation's timeSeries [first, last] in epoch ms, when both are given as numbers."""
    try:
        series = json.loads(body)["request"]["pipeline"][0]["source"]["timeSeries"]
        return int(series["first"]), int(series["last"])
    except Exception:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closes its connection (a reader that stops once the answer's JSON is complete, a killed
        sync) is normal for an HTTP server: not a traceback on stderr. Anything else is still printed."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def make_server(
    settings: EmulatorSettings, host: str = "127.0.0.1", port: int = 0
) -> tuple[ThreadingHTTPServer, Emulator]:
    emulator = Emulator(settings)
    handler = type("BoundPendoHandler", (PendoHandler,), {"emulator": emulator})
    server = _Server((host, port), handler)
    return server, emulator


def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


__all__ = ["DEFAULT_KEYS", "REGIONS", "Emulator", "EmulatorSettings", "base_url", "make_server"]
