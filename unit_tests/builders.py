"""Config, request and response builders for the unit tests; payloads live in resource/http/response/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from airbyte_cdk.test.state_builder import StateBuilder

from source_pendo.source import SourcePendo

RESPONSES = Path(__file__).parent / "resource" / "http" / "response"
API_KEY = "00000000-unit-test-key.us"
API_BASE = "https://app.pendo.io/api/v1"
START_DATE = "2024-01-01"
DAY_MS = 86_400_000
ALL_APPS = 'expandAppIds("*")'


def payload(stream: str) -> Any:
    """A fresh copy of the stream's payload file."""
    return json.loads((RESPONSES / f"{stream}.json").read_text())


class ConfigBuilder:
    def __init__(self) -> None:
        self._config: dict[str, Any] = {"api_key": API_KEY, "start_date": START_DATE}

    def with_(self, **fields: Any) -> ConfigBuilder:
        self._config.update(fields)
        return self

    def build(self) -> dict[str, Any]:
        return dict(self._config)


def aggregation_request(
    stream: str, source: dict[str, Any], pipeline_filter: str, id_field: str, limit: int = 50_000
) -> HttpRequest:
    """POST /aggregation with exactly this body (matched as a dict)."""
    return HttpRequest(
        url=f"{API_BASE}/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {
                "name": f"source-pendo-{stream}",
                "pipeline": [
                    {"source": source},
                    {"filter": pipeline_filter},
                    {"sort": [id_field]},
                    {"limit": limit},
                ],
            },
        },
    )


ENTITY_METADATA_KIND = {"accounts": "account", "visitors": "visitor"}


def mock_metadata_schema(http_mocker: HttpMocker, stream: str) -> None:
    """GET /metadata/schema/<kind>: the schema loader of accounts and visitors asks for it on every read."""
    kind = ENTITY_METADATA_KIND[stream]
    http_mocker.get(get_request(f"metadata/schema/{kind}"), json_response(payload(f"metadata_{kind}s")))


def mock_count(http_mocker: HttpMocker, stream: str, source: dict[str, Any], response: HttpResponse | None = None) -> None:
    """The size estimate's count request, sent before a read of accounts or visitors without saved state."""
    http_mocker.post(count_request(stream, source), response or count_response())


def count_request(stream: str, source: dict[str, Any]) -> HttpRequest:
    """POST /aggregation: the size estimate's `count` over the source the entity stream reads."""
    return HttpRequest(
        url=f"{API_BASE}/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {"name": f"source-pendo-{stream}-count", "pipeline": [{"source": source}, {"count": None}]},
        },
    )


def count_response(count: int | None = None) -> HttpResponse:
    """The count payload file, or the same envelope with `count`."""
    body = payload("aggregation_count")
    if count is not None:
        body["results"][0]["count"] = count
    return json_response(body)


def get_request(endpoint: str, **query: str) -> HttpRequest:
    return HttpRequest(url=f"{API_BASE}/{endpoint}", query_params=query or None)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(json.dumps(body), status, headers or {})


def text_response(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status, {"Content-Type": "text/plain; charset=utf-8"})


def aggregation_response(rows: list[dict[str, Any]]) -> HttpResponse:
    return json_response({"startTime": 0, "results": rows})


def rows_like(stream: str, id_field: str, ids: list[str]) -> list[dict[str, Any]]:
    """One row per id, each a copy of the payload file's first row."""
    template = payload(stream)["results"][0]
    rows = []
    for row_id in ids:
        row = copy.deepcopy(template)
        row[id_field] = row_id
        rows.append(row)
    return rows


def catalog(stream: str, sync_mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    return CatalogBuilder().with_stream(stream, sync_mode).build()


def state(stream: str, value: dict[str, Any]) -> list[AirbyteStateMessage]:
    return StateBuilder().with_stream_state(stream, value).build()


def read_stream(
    stream: str,
    config: dict[str, Any],
    sync_mode: SyncMode = SyncMode.full_refresh,
    stream_state: list[AirbyteStateMessage] | None = None,
    expecting_exception: bool = False,
) -> EntrypointOutput:
    configured = catalog(stream, sync_mode)
    source = SourcePendo(config=config, catalog=configured, state=stream_state)
    return read(source, config, configured, stream_state, expecting_exception=expecting_exception)
