"""Server-level tests of the Pendo emulator: every documented fact it implements, over real HTTP.

Each test names the behaviour it checks and, in its docstring or comments, the BEHAVIOR.md section where
BEHAVIOR.md has one (facts the connector does not rely on are described in place).
Tests marked "Regression" guard emulator bugs these tests found (fixed in 147b36d).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import socket
import time
import urllib.parse
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from integration_tests.pendo_emulator import query
from integration_tests.pendo_emulator.dataset import ANONYMOUS_PREFIX, ROLLUP_SOURCES, SCALES
from integration_tests.pendo_emulator.pipeline import parse_request

from .conftest import (
    DAY_MS,
    DEFAULT_APP,
    HOUR_MS,
    KEY_EU,
    KEY_US,
    NOW_MS,
    TZ,
    Served,
    aggregation_body,
    day_range,
    hour_range,
    source,
)

ALL_APPS = 'expandAppIds("*")'
ALL_APPS_BACKTICK = "expandAppIds(`*`)"
APP_2 = 5629499534213120
APP_3 = 6253630842798080  # the third app: "log remote addresses" is off (§B-15)
ID_RE = re.compile(r"^[A-Za-z0-9_-]{27}$")
ANON_RE = re.compile(r"^_PENDO_T_[A-Za-z0-9_-]{11}$")
NOT_FOUND = "404 page not found\n"
TAP_REQUESTS = Path(__file__).parent / "reference" / "tap-pendo-requests.json"
NEW_YORK = ZoneInfo(TZ)
OBJECT_FIELD = {
    "events": None,
    "featureEvents": "featureId",
    "pageEvents": "pageId",
    "trackEvents": "trackTypeId",
}
CURRENT_HOUR = NOW_MS  # NOW_MS is on the hour: the current (open) hour has no data yet


# --------------------------------------------------------------------------------------------- helpers


def is_local_midnight(ms: int) -> bool:
    local = datetime.fromtimestamp(ms / 1000, tz=NEW_YORK)
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


def local_midnight(ms: int) -> int:
    local = datetime.fromtimestamp(ms / 1000, tz=NEW_YORK)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def rollup_key(row: dict[str, Any], source_name: str) -> tuple[Any, ...]:
    """The full rollup key of §B-15: (app, visitor, account, server, IP, user agent, bucket, object id)."""
    obj = OBJECT_FIELD[source_name]
    return (
        row["appId"],
        row["visitorId"],
        row["accountId"],
        row["server"],
        row.get("remoteIp"),
        row["userAgent"],
        row.get("day", row.get("hour")),
        row.get(obj) if obj else None,
    )


def keyset_filter(time_field: str, bucket: int, visitor_id: Any) -> str:
    """§B-17 continuation `(t, visitorId) >= (B, V)`; V written as a JSON string literal (escapes)."""
    literal = json.dumps(visitor_id)
    return f"{time_field} > {bucket} || ({time_field} == {bucket} && visitorId >= {literal})"


def uses_fast_path(served: Served, pipeline_: list[Any]) -> bool:
    """Whether the query engine answers this pipeline on its indexed fast path."""
    request = parse_request(aggregation_body(pipeline_), NOW_MS)
    period = request.time_series.period if request.time_series else "hourRange"
    index = served.emulator.engine.index(request.source_name, period)
    return query._fast_plan(list(request.stages), index) is not None


def host_port(base_url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(base_url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def raw_exchange(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    read_timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes, str | None]:
    """One request on a fresh socket (Connection: close); returns status, headers, the raw (still chunked)
    body bytes received, and the name of the error that ended reading (None on a clean EOF)."""
    host, port = host_port(base_url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    data = b""
    error = None
    with socket.create_connection((host, port), timeout=read_timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while True:
            try:
                piece = sock.recv(65536)
            except OSError as exc:  # timeout, reset
                error = type(exc).__name__
                break
            if not piece:
                break
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, rest, error


def dechunk(raw: bytes) -> tuple[list[bytes], bool]:
    """The chunks of a chunked body and whether the terminating zero-size chunk arrived."""
    chunks: list[bytes] = []
    pos = 0
    while True:
        end = raw.find(b"\r\n", pos)
        if end < 0:
            return chunks, False
        size = int(raw[pos:end].split(b";")[0], 16)
        if size == 0:
            return chunks, True
        start = end + 2
        chunk = raw[start : start + size]
        chunks.append(chunk)
        if len(chunk) < size or raw[start + size : start + size + 2] != b"\r\n":
            return chunks, False
        pos = start + size + 2


def events_window(
    served: Served, name: str = "featureEvents", period: str = "dayRange", apps: Any = ALL_APPS
) -> dict[str, Any]:
    ds = served.dataset
    ts = (
        day_range(ds.start_ms, last="now()")
        if period == "dayRange"
        else hour_range(ds.start_ms, last="now()")
    )
    return source(name, {"appId": apps}, ts)


# --------------------------------------------------------------------------------------------- auth (§B-2)


def test_auth_missing_key_is_403(served: Served) -> None:
    response = served.get("/api/v1/page", key=None)
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "Forbidden"


@pytest.mark.parametrize("key", ["", "00000000-0000-0000-0000-000000000000.us", "emulator-key"])
def test_auth_unknown_or_empty_key_is_403(served: Served, key: str) -> None:
    assert served.get("/api/v1/page", key=key).status_code == 403
    assert served.aggregate_raw([source("visitors")], key=key).status_code == 403


def test_auth_key_header_name_is_case_insensitive(served: Served) -> None:
    response = served.get("/api/v1/page", key=None, headers={"X-Pendo-Integration-Key": KEY_US})
    assert response.status_code == 200


def test_auth_known_key_of_another_region_on_default_host_is_400(served: Served) -> None:
    """§B-1: a valid key on the wrong regional host gets 400 (the default host is US)."""
    assert served.get("/api/v1/page", key=KEY_EU).status_code == 400
    assert served.aggregate_raw([source("visitors")], key=KEY_EU).status_code == 400


def test_region_prefix_accepts_that_regions_key(served: Served) -> None:
    eu = served.get("/eu/api/v1/page", key=KEY_EU)
    assert eu.status_code == 200
    assert eu.json() == served.get("/api/v1/page").json()
    assert (
        served.aggregate_raw([source("visitors"), {"count": None}], key=KEY_EU, prefix="/eu").status_code
        == 200
    )
    assert served.get("/us/api/v1/page", key=KEY_US).status_code == 200


def test_region_prefix_rejects_other_regions_key_with_400(served: Served) -> None:
    assert served.get("/eu/api/v1/page", key=KEY_US).status_code == 400
    assert served.get("/jpn/api/v1/page", key=KEY_EU).status_code == 400


def test_auth_get_accepts_any_content_type(served: Served) -> None:
    """§B-2: TAP sends `Content-Type: application/json` (and form-urlencoded for history) on GETs."""
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        assert served.get("/api/v1/page", headers={"Content-Type": content_type}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/visitor"),
        ("GET", "/api/v1/visitor/"),
        ("GET", "/api/v1/account"),
        ("GET", "/api/v1/user/me"),
        ("GET", "/api/v1/subscription"),
        ("GET", "/api/v1/webhooks"),
        ("GET", "/api/v1/track"),
        ("POST", "/api/v1/visitor"),
        ("POST", "/api/v1/page"),
        ("GET", "/api/v1/nothing/here"),
        ("GET", "/api/v2/page"),
        ("GET", "/page"),
        ("GET", "/eu/api/v1/nothing"),
    ],
)
def test_unknown_routes_are_404_plain_text(served: Served, method: str, path: str) -> None:
    """§B-0: Go's default `404 page not found\\n`, text/plain; charset=utf-8."""
    key = KEY_EU if path.startswith("/eu/") else KEY_US
    response = served.session.request(
        method, served.base_url + path, headers={"x-pendo-integration-key": key}, timeout=30
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == NOT_FOUND
    with pytest.raises(ValueError, match="Extra data"):
        json.loads(response.text)  # what CIN7's client logged for these bodies (§B-0)


@pytest.mark.parametrize("kind", ["page", "feature", "guide"])
def test_catalogue_path_style_id_is_404(served: Served, kind: str) -> None:
    """§B-0: `/page/{id}` returned 404 live; only `?id=` works."""
    objects = served.get(f"/api/v1/{kind}").json()
    response = served.get(f"/api/v1/{kind}/{objects[0]['id']}")
    assert (response.status_code, response.text) == (404, NOT_FOUND)


def test_get_aggregation_is_400_missing_jzb(served: Served) -> None:
    """§B-0: GET /api/v1/aggregation expects a jzb query: 400."""
    response = served.get("/api/v1/aggregation")
    assert response.status_code == 400
    assert response.text == "missing jzb"


def test_options_on_api_path_is_404(served: Served) -> None:
    """§B-0: OPTIONS on API paths returned 404."""
    response = requests.options(
        served.base_url + "/api/v1/guide", headers={"x-pendo-integration-key": KEY_US}, timeout=30
    )
    assert response.status_code == 404


def test_head_on_catalogue_is_200(served: Served) -> None:
    """§B-0: `HEAD /api/v1/guide` and `HEAD /api/v1/report` succeeded."""
    for path in ("/api/v1/guide", "/api/v1/report"):
        status, headers, _, _ = raw_exchange(
            served.base_url, "HEAD", path, {"x-pendo-integration-key": KEY_US}
        )
        assert status == 200
        assert headers["content-type"] == "application/json"


def test_head_on_catalogue_sends_no_body_bytes(served: Served) -> None:
    """Regression: HEAD wrote the chunked terminator as a body.

    §B-0: HEAD succeeded "with an empty body"; RFC 9110: a HEAD response never has content.
    """
    for path in ("/api/v1/guide", "/api/v1/report"):
        _, _, body, _ = raw_exchange(served.base_url, "HEAD", path, {"x-pendo-integration-key": KEY_US})
        assert body == b"", body


def test_aggregation_accepts_chunked_request_body(served: Served) -> None:
    """Regression: a `Transfer-Encoding: chunked` request body was read as empty (422)."""
    payload = json.dumps(aggregation_body([source("visitors"), {"count": None}])).encode()
    response = requests.post(
        served.base_url + "/api/v1/aggregation",
        data=iter([payload[:20], payload[20:]]),
        headers={"x-pendo-integration-key": KEY_US, "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["results"] == [{"count": len(served.dataset.visitor_rows)}]


def test_keep_alive_requests_are_answered_without_delayed_ack_stall(served: Served) -> None:
    """Regression: with Nagle's algorithm on, every kept-alive response waited ~40 ms for the delayed ACK."""
    with requests.Session() as session:
        elapsed = []
        for _ in range(6):
            started = time.perf_counter()
            response = session.get(
                served.base_url + "/api/v1/segment", headers={"x-pendo-integration-key": KEY_US}, timeout=5
            )
            elapsed.append(time.perf_counter() - started)
            assert response.status_code == 200
    assert sorted(elapsed)[3] < 0.025, elapsed


# --------------------------------------------------------------------------------------------- REST lists (§B-4)

CATALOGUES = {"page": "Page", "feature": "Feature", "guide": "Guide", "tracktype": "TrackType"}
PER_APP = {
    "page": SCALES["tiny"].pages_per_app,
    "feature": SCALES["tiny"].features_per_app,
    "guide": SCALES["tiny"].guides_per_app,
    "tracktype": SCALES["tiny"].track_types_per_app,
}


@pytest.mark.parametrize("kind", list(CATALOGUES))
def test_catalogue_list_is_bare_array_of_default_app_only(served: Served, kind: str) -> None:
    """§B-4: bare JSON array, no envelope; without `expand` only the default app -323232."""
    response = served.get(f"/api/v1/{kind}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    objects = response.json()
    assert isinstance(objects, list)
    assert len(objects) == PER_APP[kind]
    assert {o["appId"] for o in objects} == {DEFAULT_APP}


@pytest.mark.parametrize("kind", list(CATALOGUES))
def test_catalogue_expand_star_returns_all_apps(served: Served, kind: str) -> None:
    objects = served.get(f"/api/v1/{kind}", params={"expand": "*"}).json()
    assert {o["appId"] for o in objects} == set(served.dataset.app_ids)
    assert len(objects) == PER_APP[kind] * len(served.dataset.app_ids)
    assert len({o["id"] for o in objects}) == len(objects)


@pytest.mark.parametrize("kind", list(CATALOGUES))
def test_catalogue_app_id_param_selects_that_app(served: Served, kind: str) -> None:
    objects = served.get(f"/api/v1/{kind}", params={"appId": str(APP_2)}).json()
    assert len(objects) == PER_APP[kind]
    assert {o["appId"] for o in objects} == {APP_2}
    assert served.get(f"/api/v1/{kind}", params={"appId": "123"}).json() == []


@pytest.mark.parametrize("kind", list(CATALOGUES))
def test_catalogue_id_param_returns_that_object_only(served: Served, kind: str) -> None:
    everything = served.get(f"/api/v1/{kind}", params={"expand": "*"}).json()
    default = next(o for o in everything if o["appId"] == DEFAULT_APP)
    assert served.get(f"/api/v1/{kind}", params={"id": default["id"]}).json() == [default]
    other = next(o for o in everything if o["appId"] == APP_2)
    assert served.get(f"/api/v1/{kind}", params={"id": other["id"], "expand": "*"}).json() == [other]
    assert served.get(f"/api/v1/{kind}", params={"id": "no-such-id", "expand": "*"}).json() == []


def assert_pendo_user(user: dict[str, Any]) -> None:
    """§B-0 Pendo user objects."""
    assert {"id", "username", "first", "last", "role", "userType", "hasLoggedIn", "lastLogin"} <= set(user)
    assert user["id"].isdigit()
    assert "@" in user["username"]
    assert isinstance(user["role"], int) and user["userType"] == "normal"
    assert isinstance(user["hasLoggedIn"], bool) and isinstance(user["lastLogin"], int)


def assert_audited_object(obj: dict[str, Any], kind: str) -> None:
    """§B-0/§B-4 common fields: 27-char URL-safe id, kind, integer appId, epoch-ms audit stamps, version ids."""
    assert ID_RE.match(obj["id"]), obj["id"]
    assert obj["kind"] == kind
    assert type(obj["appId"]) is int
    assert obj["appIds"] == [obj["appId"]]
    for stamp in ("createdAt", "lastUpdatedAt"):
        assert type(obj[stamp]) is int and 1_000_000_000_000 < obj[stamp] <= NOW_MS  # ms, not s
    assert obj["createdAt"] <= obj["lastUpdatedAt"]
    assert_pendo_user(obj["createdByUser"])
    assert_pendo_user(obj["lastUpdatedByUser"])
    assert obj["rootVersionId"] == obj["id"]
    assert re.fullmatch(re.escape(obj["id"]) + r"-\d{14}\.\d+", obj["stableVersionId"])
    stamp = obj["stableVersionId"][len(obj["id"]) + 1 :].split(".")[0]
    assert stamp == datetime.fromtimestamp(obj["lastUpdatedAt"] / 1000, tz=timezone.utc).strftime(
        "%Y%m%d%H%M%S"
    )


@pytest.mark.parametrize("kind", list(CATALOGUES))
def test_catalogue_objects_carry_documented_common_fields(served: Served, kind: str) -> None:
    for obj in served.get(f"/api/v1/{kind}", params={"expand": "*"}).json():
        assert_audited_object(obj, CATALOGUES[kind])
        assert isinstance(obj["name"], str) and obj["name"]
        assert obj["dirty"] is False


def test_page_objects_carry_page_fields(served: Served) -> None:
    """§B-4."""
    for page in served.get("/api/v1/page", params={"expand": "*"}).json():
        assert {
            "group",
            "rules",
            "rulesjson",
            "isCoreEvent",
            "isSuggested",
            "suggestedName",
            "validThrough",
            "dailyMergeFirst",
            "dailyRollupFirst",
            "ignoredFrustrationTypes",
        } <= set(page)
        assert page["group"]["type"] == "group" and ID_RE.match(page["group"]["id"])
        assert page["rules"] and {"rule", "designerHint", "parsedRule"} <= set(page["rules"][0])
        assert all({"rule", "parsedRule"} <= set(r) for r in page["rules"])
        assert isinstance(page["ignoredFrustrationTypes"], list)


def test_feature_objects_carry_feature_fields_and_point_at_pages_of_their_app(served: Served) -> None:
    """§B-4: `pageId, appWide, elementPathRules[], ...`."""
    pages = {p["id"]: p for p in served.get("/api/v1/page", params={"expand": "*"}).json()}
    for feature in served.get("/api/v1/feature", params={"expand": "*"}).json():
        assert {
            "pageId",
            "appWide",
            "elementInitialTag",
            "eventPropertyConfigurations",
        } <= set(feature)
        assert pages[feature["pageId"]]["appId"] == feature["appId"]
        assert isinstance(feature.get("elementPathRules", []), list) and isinstance(feature["appWide"], bool)
    features = served.get("/api/v1/feature", params={"expand": "*"}).json()
    assert any("elementPathRules" not in f for f in features), "a feature listing no element rule (§B-23)"
    assert any(len(f.get("elementPathRules", [])) == 2 for f in features)


def test_guide_objects_carry_state_steps_and_polls(served: Served) -> None:
    """§B-4, §B-23: state values; steps with guideId, rank, pageId and the polls they show; NPS guides with a
    rating and a free-text poll, others with a pick list and a number scale, or no polls (no `polls` key, no
    `pollIds`, as CIN7's live guide); a guide without steps."""
    guides = served.get("/api/v1/guide", params={"expand": "*"}).json()
    for guide in guides:
        assert guide["state"] in {"public", "draft", "disabled", "_pendingReview_", "staged", "archived"}
        assert isinstance(guide["launchMethod"], str)
        assert all(
            step["guideId"] == guide["id"] and ID_RE.match(step["id"]) and isinstance(step["rank"], int)
            for step in guide["steps"]
        )
        assert guide["isMultiStep"] is (len(guide["steps"]) > 1)
        shown = [i for step in guide["steps"] for i in step.get("pollIds", [])]
        for poll in guide.get("polls", []):
            assert {"id", "question", "attributes"} <= set(poll) and "type" in poll["attributes"]
            assert shown.count(poll["id"]) == (1 if guide["steps"] else 0)
    kinds = [sorted(p["attributes"]["type"] for p in g.get("polls", [])) for g in guides]
    assert ["FreeForm", "NPSRating"] in kinds and ["NumberScale", "PickList"] in kinds
    assert all(k in (["FreeForm", "NPSRating"], ["NumberScale", "PickList"], []) for k in kinds)
    assert any("polls" not in g for g in guides) and any(not g["steps"] for g in guides)
    assert any("pollIds" not in s for g in guides for s in g["steps"])
    picks = [p for g in guides for p in g.get("polls", []) if p["attributes"]["type"] == "PickList"]
    assert all(p["idResponses"] and all(isinstance(v, str) for v in p["idResponses"].values()) for p in picks)
    scales = [p for g in guides for p in g.get("polls", []) if "Rating" in p["attributes"]["type"]]
    assert all(p["numericResponses"] == list(range(11)) for p in scales)


def test_tracktype_objects_carry_track_type_fields(served: Served) -> None:
    """§B-5: trackTypeName, trackTypeRules[], eventPropertyNameList (list or null)."""
    for tt in served.get("/api/v1/tracktype", params={"expand": "*"}).json():
        assert isinstance(tt["trackTypeName"], str) and isinstance(tt["trackTypeRules"], list)
        assert tt["eventPropertyNameList"] is None or isinstance(tt["eventPropertyNameList"], list)


def test_report_list_is_bare_array_of_report_definitions(served: Served) -> None:
    """§B-6."""
    reports = served.get("/api/v1/report").json()
    assert isinstance(reports, list) and reports
    for report in reports:
        assert_audited_object(dict(report, appId=0, appIds=[0]), "Report")
        assert {"type", "shared", "scope", "level", "definition", "aggregation"} <= set(report)
    assert {"Saved Reports", "Path"} <= {r["type"] for r in reports}


def test_report_results_json_are_rows_of_saved_reports(served: Served) -> None:
    """§B-6: flat row objects keyed by the report's columns."""
    for report in served.get("/api/v1/report").json():
        if report["type"] != "Saved Reports":
            continue
        response = served.get(f"/api/v1/report/{report['id']}/results.json")
        assert response.status_code == 200
        rows = response.json()
        assert isinstance(rows, list) and rows
        id_field = "visitorId" if report["level"] == "visitor" else "accountId"
        for row in rows:
            assert id_field in row
            assert not any(isinstance(v, dict) for v in row.values()), "rows are flat"
        if report["level"] == "visitor":
            assert not any(r["visitorId"].startswith(ANONYMOUS_PREFIX) for r in rows)


def test_report_results_of_path_report_is_404(served: Served) -> None:
    """§B-6: Paths, Funnels, ... are not exportable."""
    path_reports = [r for r in served.get("/api/v1/report").json() if r["type"] == "Path"]
    assert path_reports
    for report in path_reports:
        for fmt in ("results.json", "results.csv"):
            assert served.get(f"/api/v1/report/{report['id']}/{fmt}").status_code == 404


def test_report_results_of_unknown_report_is_404(served: Served) -> None:
    assert served.get("/api/v1/report/nope/results.json").status_code == 404


def test_report_results_csv_is_the_same_rows_as_csv(served: Served) -> None:
    for report in served.get("/api/v1/report").json():
        if report["type"] != "Saved Reports":
            continue
        rows = served.get(f"/api/v1/report/{report['id']}/results.json").json()
        response = served.get(f"/api/v1/report/{report['id']}/results.csv")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(response.text)))
        assert len(parsed) == len(rows)
        for csv_row, row in zip(parsed, rows, strict=True):
            assert set(csv_row) == set(row)
            assert csv_row == {k: "" if v is None else str(v) for k, v in row.items()}


def test_segment_list_is_bare_array(served: Served) -> None:
    """§B-7."""
    segments = served.get("/api/v1/segment").json()
    assert isinstance(segments, list) and segments
    for segment in segments:
        assert segment["kind"] == "Segment" and ID_RE.match(segment["id"])
        assert isinstance(segment["pipeline"], list) and isinstance(segment["definition"], dict)
        assert {"shared", "createdByApi", "dependentMetadata"} <= set(segment)


DESCRIPTOR_KEYS = {
    "Type",
    "DisplayName",
    "ElementType",
    "ElementFormat",
    "Dirty",
    "isHidden",
    "isDeleted",
    "isCalculated",
    "isPerApp",
    "isPromoted",
    "neverIndex",
}
SCHEMA_TYPES = {"string", "boolean", "integer", "float", "time", "list", ""}


@pytest.mark.parametrize("kind", ["visitor", "account"])
def test_metadata_schema_is_groups_of_descriptors_keyed_type_displayname(served: Served, kind: str) -> None:
    """§B-8: one object, group -> field -> descriptor with the mixed-capitalisation keys."""
    schema = served.get(f"/api/v1/metadata/schema/{kind}").json()
    assert isinstance(schema, dict)
    expected_groups = {"agent", "auto", "custom"} | ({"pendo"} if kind == "visitor" else set())
    assert expected_groups <= set(schema)
    for fields in schema.values():
        for name, descriptor in fields.items():
            assert name == name.lower(), "metadata field names are lower-cased (§B-0)"
            assert DESCRIPTOR_KEYS <= set(descriptor) <= DESCRIPTOR_KEYS | {"sample"}
            assert descriptor["Type"] in SCHEMA_TYPES
            assert isinstance(descriptor["DisplayName"], str)


def test_metadata_schema_auto_fields_are_the_documented_ones(served: Served) -> None:
    """§B-8 visitor `auto` and account `auto` field lists; `pendo.donotprocess` boolean."""
    visitor = served.get("/api/v1/metadata/schema/visitor").json()
    assert {
        "accountid",
        "accountids",
        "createdat",
        "firstvisit",
        "id",
        "lastbrowsername",
        "lastbrowserversion",
        "lastoperatingsystem",
        "lastservername",
        "lastvisit",
    } <= set(visitor["auto"])
    assert visitor["auto"]["firstvisit"]["Type"] == "time"
    assert visitor["auto"]["accountids"]["Type"] == "list"
    assert visitor["pendo"]["donotprocess"]["Type"] == "boolean"
    account = served.get("/api/v1/metadata/schema/account").json()
    assert {"firstvisit", "id", "lastvisit"} <= set(account["auto"])


@pytest.mark.parametrize("kind", ["guide", "AccountMetadata", "page"])
def test_metadata_schema_of_unknown_kind_is_empty_object(served: Served, kind: str) -> None:
    """§B-0: other kinds yield 200 {}."""
    response = served.get(f"/api/v1/metadata/schema/{kind}")
    assert response.status_code == 200
    assert response.json() == {}


# --------------------------------------------------------------------------------------------- visitor / account (§B-0)


def test_visitor_object_has_id_and_metadata(served: Served) -> None:
    row = served.dataset.visitor_rows[0]
    response = served.get("/api/v1/visitor/" + urllib.parse.quote(row["visitorId"], safe=""))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == row["visitorId"]
    assert set(body) <= {"id", "accountIds", "account", "lastStartTime", "metadata"}
    metadata = dict(body["metadata"])
    auto = dict(metadata.pop("auto"))
    auto.pop("firstidentifiedvisit", None)  # only in the REST object (§B-0)
    assert dict(metadata, auto=auto) == row["metadata"]


def test_visitor_object_carries_account_ids_and_account(served: Served) -> None:
    """Regression, §B-0: the visitor object lacked accountIds, account and firstidentifiedvisit."""
    row = next(r for r in served.dataset.visitor_rows if r["metadata"]["auto"].get("accountids"))
    body = served.get("/api/v1/visitor/" + urllib.parse.quote(row["visitorId"], safe="")).json()
    assert body["accountIds"] == row["metadata"]["auto"]["accountids"]
    assert body["account"] == {"id": row["metadata"]["auto"]["accountid"]}
    assert "firstidentifiedvisit" in body["metadata"]["auto"]


def test_visitor_object_url_encoded_id_with_quote_and_backslash(served: Served) -> None:
    tricky = 'o"brien\\test@example.com'
    response = served.get("/api/v1/visitor/" + urllib.parse.quote(tricky, safe=""))
    assert response.status_code == 200
    assert response.json()["id"] == tricky


def test_account_object_has_id_and_metadata(served: Served) -> None:
    for row in served.dataset.account_rows:
        response = served.get("/api/v1/account/" + urllib.parse.quote(row["accountId"], safe=""))
        assert response.status_code == 200
        assert response.json() == {"id": row["accountId"], "metadata": row["metadata"]}


@pytest.mark.parametrize("path", ["/api/v1/visitor/no-such-visitor", "/api/v1/account/me"])
def test_visitor_or_account_unknown_id_is_404_with_non_json_body(served: Served, path: str) -> None:
    """§B-0: unknown id -> 404, body not JSON (empty)."""
    response = served.get(path)
    assert response.status_code == 404
    assert response.text == ""


# --------------------------------------------------------------------------------------------- visitor history (§B-19)


def history_visitor(served: Served) -> tuple[str, int]:
    """A processable identified visitor and a window start with at least two history items."""
    ds = served.dataset
    for row in ds.visitor_rows:
        vid = row["visitorId"]
        items = ds.visitor_history.get(vid, [])
        if row["metadata"]["pendo"]["donotprocess"] or vid.startswith(ANONYMOUS_PREFIX) or len(items) < 4:
            continue
        return vid, items[1]["ts"] - 1  # a window that starts mid-history
    raise AssertionError("no visitor with history")


def test_visitor_history_is_24h_window_from_starttime(served: Served) -> None:
    vid, start = history_visitor(served)
    response = served.get(
        "/api/v1/visitor/" + urllib.parse.quote(vid, safe="") + "/history",
        params={"starttime": str(start)},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    items = response.json()
    assert isinstance(items, list) and items
    expected = [it for it in served.dataset.visitor_history[vid] if start <= it["ts"] < start + DAY_MS]
    assert items == expected
    before_or_after = [
        it for it in served.dataset.visitor_history[vid] if not start <= it["ts"] < start + DAY_MS
    ]
    assert before_or_after, "the window really cuts the history"
    for item in items:
        assert "visitorId" not in item
        assert start <= item["ts"] < start + DAY_MS
        assert item["type"] in {"page", "feature", "untagged", "guide"}
        assert item["lastTs"] >= item["ts"] and item["duration"] == item["lastTs"] - item["ts"]
        assert {"name", "version", "os"} <= set(item["parsedUserAgent"])
        assert type(item["appId"]) is int


def test_visitor_history_starttime_older_than_180_days_is_400(served: Served) -> None:
    vid, _ = history_visitor(served)
    path = "/api/v1/visitor/" + urllib.parse.quote(vid, safe="") + "/history"
    assert served.get(path, params={"starttime": str(NOW_MS - 180 * DAY_MS)}).status_code == 200
    assert served.get(path, params={"starttime": str(NOW_MS - 180 * DAY_MS - 1)}).status_code == 400
    assert served.get(path, params={"starttime": str(NOW_MS - 400 * DAY_MS)}).status_code == 400


def test_visitor_history_unknown_visitor_is_404(served: Served) -> None:
    response = served.get(
        "/api/v1/visitor/no-such-visitor/history", params={"starttime": str(NOW_MS - DAY_MS)}
    )
    assert response.status_code == 404


def test_visitor_history_donotprocess_visitor_is_empty_array(served: Served) -> None:
    """§B-19: `donotprocess` visitors have no usable history."""
    ds = served.dataset
    row = next(r for r in ds.visitor_rows if r["metadata"]["pendo"]["donotprocess"])
    items = ds.visitor_history[row["visitorId"]]
    assert items, "the visitor does have activity"
    response = served.get(
        "/api/v1/visitor/" + urllib.parse.quote(row["visitorId"], safe="") + "/history",
        params={"starttime": str(items[0]["ts"])},
    )
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("params", [{}, {"starttime": ""}, {"starttime": "yesterday"}])
def test_visitor_history_missing_or_bad_starttime_is_400(served: Served, params: dict[str, str]) -> None:
    vid, _ = history_visitor(served)
    response = served.get("/api/v1/visitor/" + urllib.parse.quote(vid, safe="") + "/history", params=params)
    assert response.status_code == 400


# --------------------------------------------------------------------------------------------- envelope (§B-9, §B-3)


def test_aggregation_envelope_has_exactly_start_time_and_results(served: Served) -> None:
    for pipeline_ in (
        [events_window(served, "events")],
        [source("visitors")],
        [source("pages")],
        [events_window(served, "guideEvents")],
    ):
        envelope = served.aggregate(pipeline_)
        assert set(envelope) == {"startTime", "results"}
        assert type(envelope["startTime"]) is int
        assert isinstance(envelope["results"], list) and envelope["results"]


def test_aggregation_start_time_is_first_local_midnight_for_day_range(served: Served) -> None:
    """§B-9/§B-18: startTime = first bucket start = New York midnight (04:00Z in summer, 05:00Z in winter)."""
    for first in (NOW_MS - 3 * DAY_MS, NOW_MS - 3 * DAY_MS + 7 * HOUR_MS, 1_783_000_000_000):
        start = served.aggregate([source("events", None, day_range(first, count=1))])["startTime"]
        assert is_local_midnight(start)
        assert start == local_midnight(first)
        assert datetime.fromtimestamp(start / 1000, tz=timezone.utc).hour in (4, 5)
    summer = served.aggregate([source("events", None, day_range(1_783_000_000_000, count=1))])["startTime"]
    winter = served.aggregate([source("events", None, day_range(NOW_MS, count=1))])["startTime"]
    assert datetime.fromtimestamp(summer / 1000, tz=timezone.utc).hour == 4
    assert datetime.fromtimestamp(winter / 1000, tz=timezone.utc).hour == 5


def test_aggregation_start_time_is_first_hour_for_hour_range(served: Served) -> None:
    first = NOW_MS - 5 * HOUR_MS + 17 * 60_000
    assert (
        served.aggregate([source("events", None, hour_range(first, count=2))])["startTime"]
        == NOW_MS - 5 * HOUR_MS
    )


def test_aggregation_start_time_is_zero_without_time_series(served: Served) -> None:
    """§B-9: unknown for sources without timeSeries; the emulator sends 0."""
    assert served.aggregate([source("visitors")])["startTime"] == 0
    assert served.aggregate([source("accounts")])["startTime"] == 0


def test_aggregation_empty_results_is_200_with_empty_array(served: Served) -> None:
    for pipeline_ in (
        [events_window(served, "events"), {"filter": "numEvents < 0"}],
        [source("featureEvents", {"featureId": "no-such-feature"}, day_range(NOW_MS - 2 * DAY_MS, count=2))],
        [source("events", None, day_range(NOW_MS + 10 * DAY_MS, count=3))],  # the future has no data
    ):
        response = served.aggregate_raw(pipeline_)
        assert response.status_code == 200
        assert response.json()["results"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"response": {"mimeType": "application/json"}, "pipeline": [{"source": {"visitors": None}}]},
        {"response": {"mimeType": "application/json"}, "request": {"requestId": "x"}},
        {"request": {"pipeline": {"source": {"visitors": None}}}},
        {},
    ],
    ids=["pipeline-at-top-level", "no-pipeline", "pipeline-not-a-list", "empty-object"],
)
def test_aggregation_missing_pipeline_is_422_with_validator_body(
    served: Served, body: dict[str, Any]
) -> None:
    """§B-9: 422 `{"overall":{},"fields":{"pipeline":"Required"}}`."""
    response = served.post("/api/v1/aggregation", body)
    assert response.status_code == 422
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"overall": {}, "fields": {"pipeline": "Required"}}


def test_aggregation_unparseable_body_is_422(served: Served) -> None:
    response = served.session.post(
        served.base_url + "/api/v1/aggregation",
        data=b"{not json",
        headers={"x-pendo-integration-key": KEY_US},
        timeout=30,
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "expression",
    ["visitorId >", 'visitorId in ["a", "b"]', "day >= ", "((day > 1)", "visitorId == 'single'", "day >>= 3"],
)
def test_aggregation_bad_filter_is_400_cannot_parse(served: Served, expression: str) -> None:
    """§B-3, §B-12: unparseable filter -> 400 text `Cannot parse filter expression`; `in [...]` is rejected."""
    response = served.aggregate_raw([events_window(served, "events"), {"filter": expression}])
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "Cannot parse filter expression"


@pytest.mark.parametrize("operator", ["fields", "frobnicate"])
def test_aggregation_unknown_operator_is_400(served: Served, operator: str) -> None:
    response = served.aggregate_raw([source("visitors"), {operator: {}}])
    assert response.status_code == 400


def test_aggregation_unknown_source_is_400(served: Served) -> None:
    response = served.aggregate_raw([source("noSuchSource")])
    assert response.status_code == 400
    assert "noSuchSource" in response.text


def test_aggregation_ignores_unknown_envelope_keys_and_source_params(served: Served) -> None:
    """§B-9: stray `request.sort`, `response.location`, `channelId`; unknown params (Estuary's nested
    timeSeries, LDNA's startTime/endTime) are ignored."""
    body = {
        "response": {"mimeType": "application/json", "location": "request"},
        "channelId": "",
        "request": {
            "name": "n",
            "requestId": "r",
            "sort": ["accountId"],
            "pipeline": [
                {
                    "source": {
                        "visitors": {"startTime": 1, "endTime": 2, "timeSeries": {"period": "dayRange"}}
                    }
                },
                {"count": None},
            ],
        },
    }
    response = served.post("/api/v1/aggregation", body)
    assert response.status_code == 200
    assert response.json()["results"] == [{"count": len(served.dataset.visitor_rows)}]


def test_aggregation_source_params_null_and_empty_object_are_alike(served: Served) -> None:
    ts = day_range(NOW_MS - 2 * DAY_MS, count=2)
    assert served.rows([source("pageEvents", None, ts)]) == served.rows([source("pageEvents", {}, ts)])


def test_aggregation_count_stage_yields_one_count_row(served: Served) -> None:
    """§B-13: `{"count": null}` -> results [{"count": N}]."""
    identified = [r for r in served.dataset.visitor_rows if not r["visitorId"].startswith(ANONYMOUS_PREFIX)]
    rows = served.rows(
        [
            source("visitors", {"identified": True}),
            {"sort": ["visitorId"]},
            {"filter": 'visitorId>""'},
            {"count": None},
        ]
    )
    assert rows == [{"count": len(identified)}]


def test_visitors_keyset_page_pattern_a(served: Served) -> None:
    """§B-17 (entities): sort by id, `id > last`, limit; pages concatenate to the whole set."""
    expected = sorted(
        r["visitorId"] for r in served.dataset.visitor_rows if not r["visitorId"].startswith(ANONYMOUS_PREFIX)
    )
    seen: list[str] = []
    last = ""
    while True:
        page = served.rows(
            [
                source("visitors", {"identified": True}),
                {"sort": ["visitorId"]},
                {"filter": f"visitorId>{json.dumps(last)}"},
                {"limit": 4},
            ]
        )
        seen += [r["visitorId"] for r in page]
        if len(page) < 4:
            break
        last = page[-1]["visitorId"]
    assert seen == expected


def test_aggregation_catalogue_sources_match_rest_lists(served: Served) -> None:
    """§B-5: `pages`/`features`/`guides`/`trackTypes` rows are the REST objects; appId rules apply."""
    for agg, rest in (
        ("pages", "page"),
        ("features", "feature"),
        ("guides", "guide"),
        ("trackTypes", "tracktype"),
    ):
        everything = served.get(f"/api/v1/{rest}", params={"expand": "*"}).json()
        assert served.rows([source(agg, {"appId": ALL_APPS})]) == everything
        assert served.rows([source(agg)]) == [o for o in everything if o["appId"] == DEFAULT_APP]
        assert served.rows([source(agg, {"appId": APP_2})]) == [o for o in everything if o["appId"] == APP_2]


# --------------------------------------------------------------------------------------------- day vs hour (§B-15, §B-18)


@pytest.mark.parametrize("name", ROLLUP_SOURCES)
def test_day_range_rows_carry_day_and_no_hour(served: Served, name: str) -> None:
    rows = served.rows([events_window(served, name, "dayRange")])
    assert rows
    assert all("day" in r and "hour" not in r for r in rows)
    assert all(is_local_midnight(r["day"]) for r in rows)


@pytest.mark.parametrize("name", ROLLUP_SOURCES)
def test_hour_range_rows_carry_hour_and_no_day(served: Served, name: str) -> None:
    rows = served.rows([events_window(served, name, "hourRange")])
    assert rows
    assert all("hour" in r and "day" not in r for r in rows)
    assert all(r["hour"] % HOUR_MS == 0 and r["hour"] < CURRENT_HOUR for r in rows)


@pytest.mark.parametrize("name", ROLLUP_SOURCES)
def test_rollup_rows_carry_documented_fields(served: Served, name: str) -> None:
    """§B-15 rollup row fields; firstTime/lastTime inside the bucket; numMinutes an integer >= 1."""
    for row in served.rows([events_window(served, name, "hourRange")]):
        assert {
            "visitorId",
            "accountId",
            "appId",
            "hour",
            "numEvents",
            "numMinutes",
            "server",
            "userAgent",
            "firstTime",
            "lastTime",
        } <= set(row)
        object_field = OBJECT_FIELD[name]
        if object_field:
            assert ID_RE.match(row[object_field])
        assert row["hour"] <= row["firstTime"] <= row["lastTime"] < row["hour"] + HOUR_MS
        assert type(row["numEvents"]) is int and row["numEvents"] >= 1
        assert type(row["numMinutes"]) is int and 1 <= row["numMinutes"] <= 60
    if name == "pageEvents":
        assert all(isinstance(r["parameters"], dict) for r in served.rows([events_window(served, name)]))
    if name == "trackEvents":
        assert all(isinstance(r["properties"], dict) for r in served.rows([events_window(served, name)]))


def assert_day_rows_sum_hour_rows(
    day_rows: list[dict[str, Any]], hour_rows: list[dict[str, Any]], name: str
) -> None:
    grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in hour_rows:
        day = local_midnight(row["hour"])
        key = rollup_key(dict(row, hour=day), name)
        acc = grouped.setdefault(
            key, {"numEvents": 0, "numMinutes": 0, "firstTime": row["firstTime"], "lastTime": row["lastTime"]}
        )
        acc["numEvents"] += row["numEvents"]
        acc["numMinutes"] += row["numMinutes"]
        acc["firstTime"] = min(acc["firstTime"], row["firstTime"])
        acc["lastTime"] = max(acc["lastTime"], row["lastTime"])
    by_key = {rollup_key(r, name): r for r in day_rows}
    assert len(by_key) == len(day_rows), "day rows are unique on the rollup key"
    assert set(by_key) == set(grouped)
    for key, acc in grouped.items():
        row = by_key[key]
        assert {k: row[k] for k in acc} == acc, key


def test_day_row_is_sum_of_hour_rows_of_that_local_day(served: Served) -> None:
    """§B-18: a day row sums numEvents/numMinutes and takes min firstTime / max lastTime of its local day's
    hour rows with the same key (featureEvents, all apps, whole days)."""
    ds = served.dataset
    first_day = local_midnight(ds.start_ms) + DAY_MS  # the first whole local day with data
    last_day = local_midnight(NOW_MS) - DAY_MS  # the last whole local day
    days = served.rows([source("featureEvents", {"appId": ALL_APPS}, day_range(first_day, last=last_day))])
    hours = served.rows(
        [source("featureEvents", {"appId": ALL_APPS}, hour_range(first_day, last=last_day + DAY_MS - 1))]
    )
    assert days and hours
    assert_day_rows_sum_hour_rows(days, hours, "featureEvents")


def test_day_buckets_follow_daylight_saving_time(served_small: Served) -> None:
    """§B-18: across the end of DST (2026-11-01) days start at 04:00Z before and 05:00Z after, the 25-hour
    local day sums 25 hours, and days still equal the sum of their hours."""
    first = int(datetime(2026, 10, 30, tzinfo=NEW_YORK).timestamp() * 1000)
    last = int(datetime(2026, 11, 3, tzinfo=NEW_YORK).timestamp() * 1000)
    days = served_small.rows([source("events", {"appId": ALL_APPS}, day_range(first, last=last))])
    hours = served_small.rows(
        [source("events", {"appId": ALL_APPS}, hour_range(first, last=last + DAY_MS - 1))]
    )
    starts = sorted({r["day"] for r in days})
    assert [datetime.fromtimestamp(d / 1000, tz=timezone.utc).hour for d in starts] == [4, 4, 4, 5, 5]
    assert starts[3] - starts[2] == 25 * HOUR_MS  # Sunday 2026-11-01 has 25 hours
    fall_back_hours = {r["hour"] for r in hours if starts[2] <= r["hour"] < starts[3]}
    assert max(fall_back_hours) >= starts[2] + 24 * HOUR_MS, "the 25th hour is in the day"
    assert_day_rows_sum_hour_rows(days, hours, "events")


# --------------------------------------------------------------------------------------------- anonymous visitors (§B-0, §B-13)


def test_anonymous_visitor_ids_are_pendo_t_plus_11_url_safe_chars(served: Served) -> None:
    rows = served.rows([source("visitors")])
    anonymous = [r["visitorId"] for r in rows if r["visitorId"].startswith(ANONYMOUS_PREFIX)]
    assert len(anonymous) == SCALES["tiny"].anonymous_visitors
    assert all(ANON_RE.match(v) for v in anonymous)
    events = served.rows([events_window(served, "events")])
    anon_events = {r["visitorId"] for r in events if r["visitorId"].startswith(ANONYMOUS_PREFIX)}
    assert anon_events and all(ANON_RE.match(v) for v in anon_events)


def test_visitors_identified_true_excludes_anonymous(served: Served) -> None:
    everyone = served.rows([source("visitors")])
    identified = served.rows([source("visitors", {"identified": True})])
    assert identified == [r for r in everyone if not r["visitorId"].startswith(ANONYMOUS_PREFIX)]
    assert len(identified) == SCALES["tiny"].identified_visitors


def test_identified_stage_excludes_anonymous_from_events(served: Served) -> None:
    everything = served.rows([events_window(served, "events")])
    identified = served.rows([events_window(served, "events"), {"identified": "visitorId"}])
    assert identified == [r for r in everything if not r["visitorId"].startswith(ANONYMOUS_PREFIX)]
    assert len(identified) < len(everything)


def test_identified_stage_negated_keeps_only_anonymous(served: Served) -> None:
    everything = served.rows([events_window(served, "events")])
    anonymous = served.rows([events_window(served, "events"), {"identified": "!visitorId"}])
    assert anonymous and all(r["visitorId"].startswith(ANONYMOUS_PREFIX) for r in anonymous)
    assert anonymous == [r for r in everything if r["visitorId"].startswith(ANONYMOUS_PREFIX)]


def test_visitor_rows_carry_metadata_groups(served: Served) -> None:
    """§B-14 visitors/accounts rows: id + metadata{agent, auto, auto_<app>, custom, pendo}; per-app group =
    `auto_` + app id with `-` written as `_` (default app -> `auto__323232`)."""
    per_app_names = {"auto_" + str(a).replace("-", "_") for a in served.dataset.app_ids}
    assert "auto__323232" in per_app_names
    rows = served.rows([source("visitors")])
    for row in rows:
        assert set(row) == {"visitorId", "metadata"}
        assert row["metadata"]["auto"]["id"] == row["visitorId"]
        assert "donotprocess" in row["metadata"]["pendo"]
        assert {g for g in row["metadata"] if g.startswith("auto_")} <= per_app_names
        assert type(row["metadata"]["auto"]["lastupdated"]) is int
    assert any("auto__323232" in r["metadata"] for r in rows)
    for row in served.rows([source("accounts")]):
        assert set(row) == {"accountId", "metadata"} and row["metadata"]["auto"]["id"] == row["accountId"]


# --------------------------------------------------------------------------------------------- appId (§B-10)


def test_app_id_omitted_gives_default_app_rows_only(served: Served) -> None:
    rows = served.rows([source("events", None, day_range(served.dataset.start_ms, last="now()"))])
    assert rows and {r["appId"] for r in rows} == {DEFAULT_APP}


@pytest.mark.parametrize("app", [APP_2, str(APP_2)])
def test_app_id_single_int_or_string_selects_that_app(served: Served, app: Any) -> None:
    rows = served.rows([events_window(served, "events", apps=app)])
    assert rows and {r["appId"] for r in rows} == {APP_2}


def test_app_id_list_of_strings_selects_those_apps(served: Served) -> None:
    rows = served.rows([events_window(served, "events", apps=[str(DEFAULT_APP), str(APP_2)])])
    assert {r["appId"] for r in rows} == {DEFAULT_APP, APP_2}
    everything = served.rows([events_window(served, "events")])
    assert rows == [r for r in everything if r["appId"] in (DEFAULT_APP, APP_2)]


def test_app_id_expand_app_ids_star_and_backtick_form_give_all_apps(served: Served) -> None:
    quoted = served.rows([events_window(served, "events", apps=ALL_APPS)])
    backtick = served.rows([events_window(served, "events", apps=ALL_APPS_BACKTICK)])
    assert quoted == backtick
    assert {r["appId"] for r in quoted} == set(served.dataset.app_ids)


def test_app_id_invalid_value_is_400(served: Served) -> None:
    assert served.aggregate_raw([events_window(served, "events", apps="not-an-app")]).status_code == 400


@pytest.mark.parametrize("name", [*ROLLUP_SOURCES, "guideEvents", "pollEvents"])
def test_third_app_rows_have_no_remote_ip(served: Served, name: str) -> None:
    """§B-15: remoteIp only when the app logs remote addresses (the third app does not)."""
    rows = served.rows([events_window(served, name, "hourRange")])
    third = [r for r in rows if r["appId"] == APP_3]
    others = [r for r in rows if r["appId"] != APP_3]
    assert third and others
    assert all("remoteIp" not in r for r in third)
    assert all("remoteIp" in r for r in others)


# --------------------------------------------------------------------------------------------- object-id params (§B-15)


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("featureEvents", "featureId"),
        ("pageEvents", "pageId"),
        ("trackEvents", "trackTypeId"),
        ("guideEvents", "guideId"),
        ("pollEvents", "pollId"),
    ],
)
def test_object_param_limits_rows_to_that_object(served: Served, name: str, param: str) -> None:
    everything = served.rows([events_window(served, name)])
    ids = Counter(r[param] for r in everything)
    assert len(ids) > 1, "without the param, all objects come in one response"
    wanted = ids.most_common(1)[0][0]
    only = served.rows(
        [source(name, {"appId": ALL_APPS, param: wanted}, day_range(served.dataset.start_ms, last="now()"))]
    )
    assert only == [r for r in everything if r[param] == wanted]


def test_feature_events_without_feature_id_returns_all_features(served: Served) -> None:
    rows = served.rows([events_window(served, "featureEvents")])
    features = served.get("/api/v1/feature", params={"expand": "*"}).json()
    assert {r["featureId"] for r in rows} <= {f["id"] for f in features}
    assert len({r["featureId"] for r in rows}) > len(served.dataset.app_ids)


def test_raw_event_rows_carry_documented_fields(served: Served) -> None:
    """§B-16 guideEvents/pollEvents: one row per raw event with browserTime/guideTimestamp, no day/hour."""
    guide_rows = served.rows([events_window(served, "guideEvents")])
    for row in guide_rows:
        assert {
            "guideId",
            "guideStepId",
            "visitorId",
            "accountId",
            "accountIds",
            "appId",
            "type",
            "browserTime",
            "guideTimestamp",
            "receivedTime",
            "url",
            "serverName",
            "userAgent",
        } <= set(row)
        assert "day" not in row and "hour" not in row
        assert row["type"] in {
            "guideSeen",
            "guideAdvanced",
            "guideDismissed",
            "guideSnoozed",
            "guideActivity",
            "guideTimeout",
            "guideSnoozeCanceled",
            "guideNotSeen",
        }
    poll_rows = served.rows([events_window(served, "pollEvents")])
    assert poll_rows
    for row in poll_rows:
        assert {"pollId", "pollType", "pollResponse", "browserTime", "guideId"} <= set(row)
        if row["pollType"] == "NPSRating":  # a rating is the number, a pick list the choice's id (§B-23)
            assert type(row["pollResponse"]) is int and 0 <= row["pollResponse"] <= 10
        elif row["pollType"] == "NumberScale":
            assert type(row["pollResponse"]) is int and 1 <= row["pollResponse"] <= 5
        else:
            assert row["pollType"] in ("FreeForm", "PickList") and isinstance(row["pollResponse"], str)
    assert {r["pollType"] for r in poll_rows} == {"NPSRating", "FreeForm", "PickList", "NumberScale"}


# --------------------------------------------------------------------------------------------- timeSeries (§B-11)


def buckets(rows: list[dict[str, Any]], field: str) -> list[int]:
    return sorted({r[field] for r in rows})


def busy_hour(served: Served, n: int, before: int = NOW_MS - 4 * HOUR_MS) -> int:
    """The latest hour h < `before` such that h .. h+n-1 all have `events` rows (any app) and so does h-1."""
    hours = {r["hour"] for r in served.dataset.hour_rows("events")}
    h = before - before % HOUR_MS
    while not all(h + i * HOUR_MS in hours for i in range(-1, n)):
        h -= HOUR_MS
    return h


def test_time_series_first_and_positive_count(served: Served) -> None:
    h = busy_hour(served, 4)
    rows = served.rows([source("events", {"appId": ALL_APPS}, hour_range(h, count=3))])
    assert buckets(rows, "hour") == [h, h + HOUR_MS, h + 2 * HOUR_MS]
    d = local_midnight(NOW_MS) - 3 * DAY_MS
    rows = served.rows([source("events", {"appId": ALL_APPS}, day_range(d + 13 * HOUR_MS, count=2))])
    assert buckets(rows, "day") == [d, d + DAY_MS]


def test_time_series_negative_count_goes_backwards(served: Served) -> None:
    """§B-11: `first: now(), count: -1` is yesterday; -3 the three days before today."""
    today = local_midnight(NOW_MS)
    envelope = served.aggregate([source("events", {"appId": ALL_APPS}, day_range("now()", count=-1))])
    assert envelope["startTime"] == today - DAY_MS
    assert buckets(envelope["results"], "day") == [today - DAY_MS]
    rows = served.rows([source("events", {"appId": ALL_APPS}, day_range("now()", count=-3))])
    assert buckets(rows, "day") == [today - 3 * DAY_MS, today - 2 * DAY_MS, today - DAY_MS]
    h = busy_hour(served, 3)
    rows = served.rows(
        [source("events", {"appId": ALL_APPS}, hour_range(h + 2 * HOUR_MS + 60_000, count=-2))]
    )
    assert buckets(rows, "hour") == [h, h + HOUR_MS]


def test_time_series_first_and_last_is_inclusive_of_lasts_bucket(served: Served) -> None:
    h = busy_hour(served, 4)
    rows = served.rows(
        [source("events", {"appId": ALL_APPS}, hour_range(h, last=h + 2 * HOUR_MS + 5 * 60_000))]
    )
    assert buckets(rows, "hour") == [h, h + HOUR_MS, h + 2 * HOUR_MS]
    one = served.rows([source("events", {"appId": ALL_APPS}, hour_range(h, last=h))])
    assert buckets(one, "hour") == [h]  # first == last selects exactly one bucket
    d = local_midnight(NOW_MS) - 4 * DAY_MS
    rows = served.rows([source("events", {"appId": ALL_APPS}, day_range(d, last=d + DAY_MS + 1))])
    assert buckets(rows, "day") == [d, d + DAY_MS]


def test_time_series_first_is_snapped_to_bucket_start(served: Served) -> None:
    h = busy_hour(served, 2)
    rows = served.rows([source("events", {"appId": ALL_APPS}, hour_range(h + 59 * 60_000, count=1))])
    assert buckets(rows, "hour") == [h]
    assert any(r["firstTime"] < h + 59 * 60_000 for r in rows)


def test_time_series_last_now_includes_the_latest_closed_hour(served: Served) -> None:
    assert NOW_MS - HOUR_MS in {r["hour"] for r in served.dataset.hour_rows("events")}, "precondition"
    rows = served.rows(
        [source("events", {"appId": ALL_APPS}, hour_range(NOW_MS - 3 * HOUR_MS, last="now()"))]
    )
    assert buckets(rows, "hour")[-1] == NOW_MS - HOUR_MS
    future = served.rows(
        [source("events", {"appId": ALL_APPS}, hour_range(NOW_MS - 3 * HOUR_MS, last=NOW_MS + 30 * DAY_MS))]
    )
    assert future == rows  # a future `last` is allowed; data just stops at now


def test_time_series_numeric_string_and_expression_first_equal_integer_first(served: Served) -> None:
    d = local_midnight(NOW_MS) - 2 * DAY_MS
    as_int = served.aggregate([source("events", {"appId": ALL_APPS}, day_range(d, count=2))])
    as_string = served.aggregate([source("events", {"appId": ALL_APPS}, day_range(str(d), count=2))])
    as_expr = served.aggregate(
        [source("events", {"appId": ALL_APPS}, day_range(f"now() - {NOW_MS - d}", count=2))]
    )
    assert as_int == as_string == as_expr
    assert as_int["results"]


def test_time_series_without_it_event_sources_return_all_time(served: Served) -> None:
    """§B-11: without timeSeries, event sources return all time."""
    rows = served.rows([source("events", {"appId": ALL_APPS}), {"count": None}])
    assert rows == [{"count": len(served.dataset.hour_rows("events"))}]


@pytest.mark.parametrize(
    "ts",
    [
        {"period": "weekRange", "first": 0, "count": 1},
        {"period": "dayRange", "count": 1},
        {"period": "dayRange", "first": 0},
        {"period": "dayRange", "first": 0, "count": 1, "last": 5},
        {"period": "dayRange", "first": "garbage(", "count": 1},
    ],
)
def test_time_series_invalid_is_400(served: Served, ts: dict[str, Any]) -> None:
    assert served.aggregate_raw([{"source": {"events": None, "timeSeries": ts}}]).status_code == 400


# --------------------------------------------------------------------------------------------- fast vs generic path (§B-17)


def fast_and_generic(
    served: Served, src: dict[str, Any], stages: list[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The same query answered on the fast path and, with a no-op eval stage in front, on the generic path."""
    fast_pipeline = [src, *stages]
    generic_pipeline = [src, {"eval": {"x": "1"}}, *stages]
    assert uses_fast_path(served, fast_pipeline)
    assert not uses_fast_path(served, generic_pipeline)
    fast = served.rows(fast_pipeline)
    generic = served.rows(generic_pipeline)
    for row in generic:
        assert row.pop("x") == 1
    return fast, generic


@pytest.mark.parametrize(
    ("name", "period"), [("featureEvents", "dayRange"), ("events", "hourRange"), ("pageEvents", "hourRange")]
)
def test_fast_path_equals_generic_path_for_window_query(served: Served, name: str, period: str) -> None:
    field = "day" if period == "dayRange" else "hour"
    all_rows = served.rows([events_window(served, name, period)])
    middle = buckets(all_rows, field)[len(buckets(all_rows, field)) // 2]
    stages = [
        {"sort": [field, "visitorId"]},
        {"filter": f"{field} >= {middle} && numEvents > 3"},
        {"limit": 40},
    ]
    fast, generic = fast_and_generic(served, events_window(served, name, period), stages)
    assert fast == generic
    assert len(fast) == 40
    assert all(r[field] >= middle and r["numEvents"] > 3 for r in fast)


def test_fast_path_equals_generic_path_with_identified_and_no_sort(served: Served) -> None:
    stages = [{"identified": "visitorId"}, {"filter": "numEvents >= 10"}]
    fast, generic = fast_and_generic(served, events_window(served, "featureEvents", "hourRange"), stages)
    assert fast == generic and fast


def tricky_bounds(rows: list[dict[str, Any]], field: str) -> list[tuple[int, str]]:
    """(bucket, visitorId) keyset points: the tricky visitor's rows, first/last rows, and a mid point."""
    points = [(r[field], r["visitorId"]) for r in rows if '"' in r["visitorId"] or "\\" in r["visitorId"]]
    assert points, "the visitor with a quote and a backslash has activity"
    points += [(rows[0][field], rows[0]["visitorId"]), (rows[-1][field], rows[-1]["visitorId"])]
    mid = rows[len(rows) // 2]
    points += [(mid[field], mid["visitorId"]), (mid[field], mid["visitorId"] + "\\"), (mid[field], 'o"')]
    return points


@pytest.mark.parametrize("period", ["dayRange", "hourRange"])
def test_keyset_filter_returns_exactly_rows_from_b_v_on(served: Served, period: str) -> None:
    """§B-17: `t > B || (t == B && visitorId >= "V")` keeps exactly the rows with (t, visitorId) >= (B, V),
    on both paths, also for ids with `"` and `\\` written as JSON string literals."""
    field = "day" if period == "dayRange" else "hour"
    src = events_window(served, "featureEvents", period)
    ordered = served.rows([src, {"sort": [field, "visitorId"]}])
    for bucket, vid in tricky_bounds(ordered, field)[:12]:
        expected = [r for r in ordered if (r[field], r["visitorId"]) >= (bucket, vid)]
        fast, generic = fast_and_generic(
            served, src, [{"sort": [field, "visitorId"]}, {"filter": keyset_filter(field, bucket, vid)}]
        )
        assert fast == expected, (bucket, vid)
        assert generic == expected, (bucket, vid)


def test_keyset_filter_with_escaped_id_selects_the_tricky_visitor(served: Served) -> None:
    tricky = 'o"brien\\test@example.com'
    src = events_window(served, "events", "hourRange")
    rows = served.rows([src, {"filter": f"visitorId == {json.dumps(tricky)}"}])
    assert rows and {r["visitorId"] for r in rows} == {tricky}


def test_keyset_filter_with_number_v_agrees_on_both_paths(served: Served) -> None:
    """Regression: the fast path bisected a number V below every string id and kept all rows of day B."""
    src = events_window(served, "featureEvents", "dayRange")
    ordered = served.rows([src, {"sort": ["day", "visitorId"]}])
    bucket = buckets(ordered, "day")[2]
    fast, generic = fast_and_generic(
        served,
        src,
        [
            {"sort": ["day", "visitorId"]},
            {"filter": f"day > {bucket} || (day == {bucket} && visitorId >= 5)"},
        ],
    )
    assert generic == [r for r in ordered if r["day"] > bucket]
    assert fast == generic


@pytest.mark.parametrize(
    ("name", "period"), [("events", "dayRange"), ("featureEvents", "hourRange"), ("events", "hourRange")]
)
def test_keyset_paging_with_limit_7_yields_exactly_the_unpaged_result(
    served: Served, name: str, period: str
) -> None:
    """§B-17: sort + keyset `>=` filter + limit 7, de-duplicated on the natural key = the unpaged rows."""
    field = "day" if period == "dayRange" else "hour"
    src = events_window(served, name, period)
    unpaged = served.rows([src, {"sort": [field, "visitorId"]}])
    per_key = Counter((r[field], r["visitorId"]) for r in unpaged)
    assert max(per_key.values()) < 7, "paging by (bucket, visitorId) can always advance"
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    bucket, vid = unpaged[0][field], ""
    for _ in range(10_000):
        page = served.rows(
            [src, {"sort": [field, "visitorId"]}, {"filter": keyset_filter(field, bucket, vid)}, {"limit": 7}]
        )
        for row in page:
            seen.setdefault(rollup_key(row, name), row)
        if len(page) < 7:
            break
        bucket, vid = page[-1][field], page[-1]["visitorId"]
    assert sorted(seen.values(), key=lambda r: (r[field], r["visitorId"])) == unpaged
    assert len(seen) == len(unpaged)


def test_limit_is_exact_and_sort_descending_works(served: Served) -> None:
    rows = served.rows(
        [events_window(served, "events"), {"sort": ["-numEvents", "visitorId"]}, {"limit": 11}]
    )
    assert len(rows) == 11
    assert [r["numEvents"] for r in rows] == sorted((r["numEvents"] for r in rows), reverse=True)
    everything = served.rows([events_window(served, "events"), {"sort": ["-numEvents", "visitorId"]}])
    assert rows == everything[:11]


# --------------------------------------------------------------------------------------------- gzip + chunked (§B-0)


def test_gzip_response_is_chunked_and_decodes_to_the_same_json(served: Served) -> None:
    pipeline_ = [events_window(served, "featureEvents", "hourRange")]
    plain = served.aggregate_raw(pipeline_, headers={"Accept-Encoding": "identity"})
    zipped = served.aggregate_raw(pipeline_, headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Transfer-Encoding"] == "chunked"
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in zipped.headers
    assert zipped.json() == plain.json()
    rest = served.get("/api/v1/page", headers={"Accept-Encoding": "gzip"})
    assert rest.headers["Content-Encoding"] == "gzip" and rest.json() == served.get("/api/v1/page").json()


def test_large_response_is_sent_in_several_chunks_gzip_and_plain(served_small: Served) -> None:
    window = source("events", {"appId": ALL_APPS}, hour_range(NOW_MS - 6 * DAY_MS, last="now()"))
    body = json.dumps(aggregation_body([window])).encode()
    headers = {"x-pendo-integration-key": KEY_US, "Content-Type": "application/json"}
    status, plain_headers, raw, error = raw_exchange(
        served_small.base_url, "POST", "/api/v1/aggregation", headers, body
    )
    assert (status, error) == (200, None)
    assert plain_headers["transfer-encoding"] == "chunked" and "content-encoding" not in plain_headers
    chunks, complete = dechunk(raw)
    assert complete and len(chunks) > 3
    plain = json.loads(b"".join(chunks))
    assert len(plain["results"]) == sum(
        r["hour"] >= NOW_MS - 6 * DAY_MS for r in served_small.dataset.hour_rows("events")
    )

    status, zip_headers, raw, error = raw_exchange(
        served_small.base_url,
        "POST",
        "/api/v1/aggregation",
        dict(headers, **{"Accept-Encoding": "gzip"}),
        body,
    )
    assert (status, error) == (200, None)
    assert zip_headers["transfer-encoding"] == "chunked" and zip_headers["content-encoding"] == "gzip"
    chunks, complete = dechunk(raw)
    assert complete and len(chunks) > 3
    assert json.loads(gzip.decompress(b"".join(chunks))) == plain


# --------------------------------------------------------------------------------------------- faults (§B-3)


def test_fault_429_with_retry_after_header(faults: Served) -> None:
    faults.set_faults([{"kind": "status", "status": 429, "retry_after": 3, "route": "aggregation"}])
    response = faults.aggregate_raw([source("visitors")])
    assert response.status_code == 429
    assert response.reason == "Too Many Requests"
    assert response.headers["Retry-After"] == "3"
    assert faults.aggregate_raw([source("visitors")]).status_code == 200  # times defaults to 1


def test_fault_429_without_retry_after_header(faults: Served) -> None:
    faults.set_faults([{"kind": "status", "status": 429, "route": "page"}])
    response = faults.get("/api/v1/page")
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert faults.get("/api/v1/page").status_code == 200


@pytest.mark.parametrize("status", [500, 502, 503])
def test_fault_5xx_burst_of_two_then_success(faults: Served, status: int) -> None:
    faults.set_faults([{"kind": "status", "status": status, "times": 2}])
    assert [faults.aggregate_raw([source("visitors")]).status_code for _ in range(4)] == [
        status,
        status,
        200,
        200,
    ]


def test_fault_after_one_skips_the_first_match(faults: Served) -> None:
    faults.set_faults([{"kind": "status", "status": 503, "after": 1, "times": 1, "route": "feature"}])
    assert [faults.get("/api/v1/feature").status_code for _ in range(3)] == [200, 503, 200]


def test_fault_probability_with_seed_is_repeatable(faults: Served) -> None:
    rule = {"kind": "status", "status": 503, "probability": 0.5, "seed": 11, "route": "segment"}
    outcomes = []
    for _ in range(2):
        faults.set_faults([rule])
        outcomes.append([faults.get("/api/v1/segment").status_code for _ in range(16)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}, "a coin, not a constant"
    faults.set_faults([dict(rule, seed=12)])
    assert [faults.get("/api/v1/segment").status_code for _ in range(16)] != outcomes[0]


def test_fault_slow_delays_the_headers(faults: Served) -> None:
    faults.set_faults([{"kind": "slow", "delay_s": 0.4, "route": "aggregation", "source": "events"}])
    started = time.monotonic()
    response = faults.aggregate_raw([events_window(faults, "events")])
    assert response.status_code == 200 and response.json()["results"]
    assert time.monotonic() - started >= 0.4
    with pytest.raises(requests.exceptions.ReadTimeout):  # longer than the client's read timeout = a timeout
        faults.set_faults([{"kind": "slow", "delay_s": 0.5, "route": "page"}])
        faults.session.get(
            faults.base_url + "/api/v1/page", headers={"x-pendo-integration-key": KEY_US}, timeout=(5, 0.1)
        )


def full_body(served: Served, path: str, body: bytes, gzip_: bool = False) -> bytes:
    headers = {"x-pendo-integration-key": KEY_US, "Content-Type": "application/json"}
    if gzip_:
        headers["Accept-Encoding"] = "gzip"
    status, _, raw, error = raw_exchange(served.base_url, "POST", path, headers, body)
    assert (status, error) == (200, None)
    chunks, complete = dechunk(raw)
    assert complete
    data = b"".join(chunks)
    return gzip.decompress(data) if gzip_ else data


def test_fault_stall_sends_after_bytes_then_stops(faults: Served) -> None:
    body = json.dumps(aggregation_body([events_window(faults, "events")])).encode()
    expected = full_body(faults, "/api/v1/aggregation", body)
    faults.set_faults([{"kind": "stall", "after_bytes": 300, "delay_s": 1.0, "route": "aggregation"}])
    headers = {"x-pendo-integration-key": KEY_US, "Content-Type": "application/json"}
    status, response_headers, raw, error = raw_exchange(
        faults.base_url, "POST", "/api/v1/aggregation", headers, body, read_timeout=0.4
    )
    assert status == 200 and response_headers["transfer-encoding"] == "chunked"
    assert error in ("TimeoutError", "timeout")
    chunks, complete = dechunk(raw)
    assert not complete
    assert b"".join(chunks) == expected[:300]


def test_fault_stall_is_in_the_request_log_while_it_stalls(faults: Served) -> None:
    faults.set_faults([{"kind": "stall", "after_bytes": 50, "delay_s": 3.0, "route": "aggregation"}])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        faults.session.post(
            faults.base_url + "/api/v1/aggregation",
            json=aggregation_body([events_window(faults, "events")]),
            headers={"x-pendo-integration-key": KEY_US},
            timeout=(5, 0.3),
        ).json()
    assert faults.stats()["requests"][-1].get("fault") == "stall"  # logged before the 3 s are up


def test_fault_stall_is_a_read_error_for_the_client(faults: Served) -> None:
    faults.set_faults([{"kind": "stall", "after_bytes": 50, "delay_s": 0.6, "route": "aggregation"}])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        faults.session.post(
            faults.base_url + "/api/v1/aggregation",
            json=aggregation_body([events_window(faults, "events")]),
            headers={"x-pendo-integration-key": KEY_US},
            timeout=(5, 0.2),
        ).json()


@pytest.mark.parametrize("use_gzip", [False, True])
def test_fault_reset_breaks_the_body_after_after_bytes(faults: Served, use_gzip: bool) -> None:
    body = json.dumps(aggregation_body([events_window(faults, "events")])).encode()
    expected = full_body(faults, "/api/v1/aggregation", body)
    faults.set_faults([{"kind": "reset", "after_bytes": 500, "route": "aggregation"}])
    headers = {"x-pendo-integration-key": KEY_US, "Content-Type": "application/json"}
    if use_gzip:
        headers["Accept-Encoding"] = "gzip"
    status, _, raw, _ = raw_exchange(faults.base_url, "POST", "/api/v1/aggregation", headers, body)
    assert status == 200
    chunks, complete = dechunk(raw)
    assert not complete, "no terminating chunk: the client sees an incomplete read"
    received = b"".join(chunks)
    if use_gzip and received:
        received = __import__("zlib").decompressobj(31).decompress(received)
    assert expected[:500].startswith(received)
    # and through requests: an error while reading the body
    faults.set_faults([{"kind": "reset", "after_bytes": 500, "route": "aggregation"}])
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        faults.aggregate_raw([events_window(faults, "events")], headers=headers)


@pytest.mark.parametrize("use_gzip", [False, True])
def test_fault_truncate_gives_well_framed_200_whose_json_does_not_parse(
    faults: Served, use_gzip: bool
) -> None:
    body = json.dumps(aggregation_body([events_window(faults, "events")])).encode()
    expected = full_body(faults, "/api/v1/aggregation", body)
    faults.set_faults([{"kind": "truncate", "after_bytes": 777, "route": "aggregation"}])
    headers = {"Accept-Encoding": "gzip" if use_gzip else "identity"}
    response = faults.aggregate_raw([events_window(faults, "events")], headers=headers)
    assert response.status_code == 200
    assert response.content == expected[:777]  # requests read a complete, well-framed body
    with pytest.raises(ValueError):
        json.loads(response.content)


def test_fault_wrong_region_is_400(faults: Served) -> None:
    faults.set_faults([{"kind": "wrong_region", "route": "metadata_schema"}])
    assert faults.get("/api/v1/metadata/schema/account").status_code == 400
    assert faults.get("/api/v1/metadata/schema/account").status_code == 200


def test_fault_matches_route_and_source(faults: Served) -> None:
    faults.set_faults(
        [{"kind": "status", "status": 503, "route": "aggregation", "source": "featureEvents", "times": 10}]
    )
    assert faults.aggregate_raw([events_window(faults, "events")]).status_code == 200
    assert faults.aggregate_raw([source("visitors")]).status_code == 200
    assert faults.get("/api/v1/feature").status_code == 200
    assert faults.aggregate_raw([events_window(faults, "featureEvents")]).status_code == 503
    faults.set_faults([{"kind": "status", "status": 503, "route": "page", "times": 10}])
    assert faults.get("/api/v1/feature").status_code == 200
    assert faults.get("/api/v1/page").status_code == 503


def test_fault_path_contains_fails_only_that_object(faults: Served) -> None:
    reports = [r["id"] for r in faults.get("/api/v1/report").json()]
    exportable = [r for r in reports if faults.get(f"/api/v1/report/{r}/results.json").status_code == 200]
    gone, kept = exportable[0], exportable[1]
    faults.set_faults(
        [{"kind": "status", "status": 404, "route": "report_results", "path_contains": gone, "times": None}]
    )
    assert [faults.get(f"/api/v1/report/{gone}/results.json").status_code for _ in range(2)] == [404, 404]
    assert faults.get(f"/api/v1/report/{kept}/results.json").status_code == 200


def test_fault_covers_ms_fails_every_window_containing_the_instant(faults: Served) -> None:
    start = faults.dataset.start_ms - faults.dataset.start_ms % DAY_MS
    instant = start + 2 * DAY_MS + 5 * HOUR_MS
    faults.set_faults(
        [{"kind": "status", "status": 503, "route": "aggregation", "covers_ms": instant, "times": None}]
    )

    def status(first: int, last: int) -> int:
        return faults.aggregate_raw(
            [source("events", {"appId": ALL_APPS}, hour_range(first, last=last))]
        ).status_code

    assert status(start, start + 4 * DAY_MS - 1) == 503  # contains it
    assert status(instant, instant + HOUR_MS - 1) == 503  # its own hour, again and again
    assert status(instant, instant + HOUR_MS - 1) == 503
    assert status(start, instant - 1) == 200  # the windows either side do not
    assert status(instant + HOUR_MS, start + 4 * DAY_MS - 1) == 200
    assert faults.get("/api/v1/page").status_code == 200  # no timeSeries: never covers


def test_fault_status_with_retry_after_on_503(faults: Served) -> None:
    faults.set_faults([{"kind": "status", "status": 503, "retry_after": 1, "route": "page"}])
    response = faults.get("/api/v1/page")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")


def test_fault_body_cut_is_logged_only_when_the_body_was_cut(faults: Served) -> None:
    whole = faults.get("/api/v1/segment").content
    faults.set_faults([{"kind": "truncate", "route": "segment", "after_bytes": len(whole) + 10, "times": 2}])
    assert faults.get("/api/v1/segment").content == whole  # past the end: nothing to cut
    faults.set_faults([{"kind": "truncate", "route": "segment", "after_bytes": 10}])
    assert faults.get("/api/v1/segment").content == whole[:10]
    assert [r.get("fault") for r in faults.stats()["requests"][-2:]] == [None, "truncate"]


def test_fault_status_body_can_echo_the_integration_key(faults: Served) -> None:
    faults.set_faults([{"kind": "status", "status": 403, "route": "page", "body": "no access for key {key}"}])
    response = faults.get("/api/v1/page")
    assert (response.status_code, response.text) == (403, f"no access for key {KEY_US}")


def test_fault_rules_reset_to_none(faults: Served) -> None:
    faults.set_faults([{"kind": "status", "status": 500, "times": 100}])
    assert faults.get("/api/v1/page").status_code == 500
    faults.set_faults([])
    assert faults.get("/api/v1/page").status_code == 200


@pytest.mark.parametrize("rule", [{"kind": "explode"}, {"kind": "status", "bogus": 1}])
def test_fault_control_rejects_bad_rules(served: Served, rule: dict[str, Any]) -> None:
    response = served.session.post(served.base_url + "/_emulator/faults", json=[rule], timeout=30)
    assert response.status_code == 400


# --------------------------------------------------------------------------------------------- late rows (§B-18 lag)


LATE_UA = "LateArrival/1.0"


@pytest.mark.parametrize("period", ["hourRange", "dayRange"])
def test_late_rows_appear_only_after_the_bucket_was_served(fresh: Served, period: str) -> None:
    fresh.control("late_rows", True)
    src = events_window(fresh, "featureEvents", period)
    first = fresh.rows([src])
    assert not any(r["userAgent"].startswith(LATE_UA) for r in first), "never before the bucket was served"
    second = fresh.rows([src])
    late = [r for r in second if r["userAgent"].startswith(LATE_UA)]
    assert late, "the second time, late rows arrived"
    assert [r for r in second if not r["userAgent"].startswith(LATE_UA)] == first
    assert all(r["numEvents"] == 1 for r in late)
    keys = [rollup_key(r, "featureEvents") for r in second]
    assert len(set(keys)) == len(keys), "late rows are new rollup keys"


def test_late_rows_stay_hidden_for_buckets_not_yet_served(fresh: Served) -> None:
    fresh.control("late_rows", True)
    h = NOW_MS - 30 * HOUR_MS
    fresh.rows([source("featureEvents", {"appId": ALL_APPS}, hour_range(h, count=10))])
    other = fresh.rows([source("featureEvents", {"appId": ALL_APPS}, hour_range(h - 40 * HOUR_MS, count=30))])
    assert not any(r["userAgent"].startswith(LATE_UA) for r in other)
    again = fresh.rows([source("featureEvents", {"appId": ALL_APPS}, hour_range(h, count=10))])
    late = [r for r in again if r["userAgent"].startswith(LATE_UA)]
    assert late and all(h <= r["hour"] < h + 10 * HOUR_MS for r in late)


def test_late_rows_off_by_default(fresh: Served) -> None:
    src = events_window(fresh, "featureEvents", "hourRange")
    assert fresh.rows([src]) == fresh.rows([src])


def test_late_rows_obey_the_filter_on_the_fast_path(fresh: Served) -> None:
    """Regression: late rows bypassed the bounds the fast path answers from the index."""
    fresh.control("late_rows", True)
    src = events_window(fresh, "featureEvents", "hourRange")
    fresh.rows([src])
    served_twice = fresh.rows([src])
    hours = buckets(served_twice, "hour")
    cut = hours[len(hours) // 2]
    assert [r for r in served_twice if r["userAgent"].startswith(LATE_UA) and r["hour"] < cut], "precondition"
    rows = fresh.rows([src, {"sort": ["hour", "visitorId"]}, {"filter": f"hour >= {cut}"}])
    assert all(r["hour"] >= cut for r in rows)


# --------------------------------------------------------------------------------------------- stats


def test_stats_count_requests_per_route_and_source(fresh: Served) -> None:
    fresh.rows([events_window(fresh, "events")])
    fresh.rows([events_window(fresh, "events")])
    fresh.rows([events_window(fresh, "featureEvents")])
    fresh.get("/api/v1/page")
    fresh.get("/api/v1/nothing")
    fresh.get("/api/v1/metadata/schema/visitor")
    stats = fresh.stats()
    assert stats["counts"] == {
        "aggregation:events": 2,
        "aggregation:featureEvents": 1,
        "page": 1,
        "unknown": 1,
        "metadata_schema": 1,
    }
    statuses = [(r["route"], r["status"]) for r in stats["requests"]]
    assert statuses == [("aggregation", 200)] * 3 + [
        ("page", 200),
        ("unknown", 404),
        ("metadata_schema", 200),
    ]
    assert stats["requests"][0]["rows"] == len(fresh.rows([events_window(fresh, "events")]))


def test_stats_log_arrival_time_window_and_gzip(fresh: Served) -> None:
    first = fresh.dataset.start_ms
    before = time.time()  # arrival times are real time (how long a client waited), not the dataset's clock
    fresh.aggregate_raw([source("events", {"appId": ALL_APPS}, hour_range(first, last=first + DAY_MS - 1))])
    fresh.aggregate_raw([events_window(fresh, "events")], headers={"Accept-Encoding": "identity"})
    windowed, plain = fresh.stats()["requests"]
    assert windowed["window"] == [first, first + DAY_MS - 1]
    assert windowed["gzip"] is True and plain["gzip"] is False  # requests asks for gzip by default
    assert before <= windowed["t"] <= plain["t"] <= time.time()


def test_stats_reset_clears_the_log(fresh: Served) -> None:
    fresh.get("/api/v1/page")
    fresh.control("reset", {})
    assert fresh.stats()["counts"] == {}


# --------------------------------------------------------------------------------------------- TAP's requests


def tap_requests() -> list[tuple[str, dict[str, Any]]]:
    return list(json.loads(TAP_REQUESTS.read_text())["requests"].items())


def substitute_placeholders(served: Served, spec: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """TAP's captured ids (`feat-1`, `page-1`, `tt-1`, `guide-1`, visitor `v-1`) are placeholders: swap in the
    busiest real id of the default app so row shapes are checked on real rows."""
    ds = served.dataset
    path = spec["path"]
    if "/visitor/v-1/" in path:
        vid, _ = history_visitor(served)
        path = path.replace("v-1", urllib.parse.quote(vid, safe=""))
    body = spec.get("body")
    if body is None:
        return path, None
    text = json.dumps(body)
    for placeholder, src, field in (
        ("feat-1", "featureEvents", "featureId"),
        ("page-1", "pageEvents", "pageId"),
        ("tt-1", "trackEvents", "trackTypeId"),
    ):
        counts = Counter(r[field] for r in ds.hour_rows(src) if r["appId"] == DEFAULT_APP)
        text = text.replace(f'"{placeholder}"', json.dumps(counts.most_common(1)[0][0]))
    counts = Counter(
        r["guideId"]
        for r in ds.guide_events
        if r["appId"] == DEFAULT_APP and r["browserTime"] >= 1794873600000
    )
    text = text.replace('"guide-1"', json.dumps(counts.most_common(1)[0][0]))
    return path, json.loads(text)


@pytest.mark.parametrize(("name", "spec"), tap_requests(), ids=[name for name, _ in tap_requests()])
def test_tap_request_gets_200_and_documented_shapes(served: Served, name: str, spec: dict[str, Any]) -> None:
    path, body = substitute_placeholders(served, spec)
    key = KEY_EU if path.startswith("/eu/") else KEY_US
    headers = {"x-pendo-integration-key": key, **(spec.get("headers") or {})}
    response = served.session.request(
        spec["method"],
        served.base_url + path,
        params=spec.get("query") or None,
        data=None if body is None else json.dumps(body),
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text[:300]
    payload = response.json()
    if "/metadata/schema/" in path:
        assert isinstance(payload, dict) and payload
        return
    if path.endswith("/history"):
        assert isinstance(payload, list) and payload
        assert all("ts" in it and "visitorId" not in it for it in payload)
        return
    assert set(payload) == {"startTime", "results"}
    assert body is not None
    rows = payload["results"]
    assert rows, f"{name}: no rows"
    src = body["request"]["pipeline"][0]["source"]
    source_name = next(k for k in src if k != "timeSeries")
    stages = [next(iter(s)) for s in body["request"]["pipeline"][1:]]
    if "count" in stages:
        assert len(rows) == 1 and set(rows[0]) == {"count"} and rows[0]["count"] > 0
        return
    limit = next(s["limit"] for s in body["request"]["pipeline"][1:] if "limit" in s)
    assert len(rows) <= limit
    if source_name == "visitors":
        assert all({"visitorId", "metadata"} <= set(r) for r in rows)
    elif source_name == "accounts":
        assert all({"accountId", "metadata"} <= set(r) for r in rows)
    elif source_name in ROLLUP_SOURCES:
        field = "day" if src["timeSeries"]["period"] == "dayRange" else "hour"
        other = "hour" if field == "day" else "day"
        assert all(field in r and other not in r for r in rows)
        assert [r[field] for r in rows] == sorted(r[field] for r in rows)
    elif source_name in ("guideEvents", "pollEvents"):
        assert all("browserTime" in r for r in rows)
        assert [r["browserTime"] for r in rows] == sorted(r["browserTime"] for r in rows)
    else:
        assert all(ID_RE.match(r["id"]) and "lastUpdatedAt" in r for r in rows)
    app_param = (src[source_name] or {}).get("appId")
    if isinstance(app_param, list) and source_name not in ("visitors", "accounts"):
        assert {r["appId"] for r in rows} <= {int(a) for a in app_param}
    if app_param is None and source_name not in ("visitors", "accounts"):
        assert {r["appId"] for r in rows} == {DEFAULT_APP}


def test_tap_requests_as_captured_with_placeholder_ids_get_200_or_404_for_the_unknown_visitor(
    served: Served,
) -> None:
    for name, spec in tap_requests():
        key = KEY_EU if spec["path"].startswith("/eu/") else KEY_US
        response = served.session.request(
            spec["method"],
            served.base_url + spec["path"],
            params=spec.get("query") or None,
            data=None if spec.get("body") is None else json.dumps(spec["body"]),
            headers={"x-pendo-integration-key": key, **(spec.get("headers") or {})},
            timeout=30,
        )
        expected = (
            404 if "/visitor/v-1/" in spec["path"] else 200
        )  # v-1 is not a visitor of this subscription
        assert response.status_code == expected, name


# --------------------------------------------------------------------------------------------- misc invariants


def test_rollup_rows_are_unique_on_the_full_key_over_http(served: Served) -> None:
    """§B-15: aggregate rows are unique only on the full tuple."""
    for name in ROLLUP_SOURCES:
        for period in ("dayRange", "hourRange"):
            rows = served.rows([events_window(served, name, period)])
            keys = [rollup_key(r, name) for r in rows]
            assert len(set(keys)) == len(keys), (name, period)


def test_day_rows_of_all_sources_sum_their_hours(served: Served) -> None:
    by_source = defaultdict(list)
    for name in ROLLUP_SOURCES:
        days = served.rows([events_window(served, name, "dayRange")])
        hours = served.rows([events_window(served, name, "hourRange")])
        by_source[name] = days
        assert_day_rows_sum_hour_rows(days, hours, name)
    assert all(by_source.values())
