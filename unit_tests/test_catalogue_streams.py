"""The list streams: features, pages, guides (GET ?expand=*, filtered to app_ids, client-side incremental),
track_types (the `trackTypes` aggregation source, keyset on id, client-side incremental), reports (client-side
incremental) and segments; the records unchanged."""

from __future__ import annotations

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ALL_APPS,
    ConfigBuilder,
    aggregation_request,
    aggregation_response,
    get_request,
    json_response,
    mock_keyset_pages,
    payload,
    read_stream,
    state,
)

_CATALOGUE = {"features": "feature", "pages": "page", "guides": "guide", "track_types": None}
_LISTS = {
    **{stream: (endpoint, {"expand": "*"}) for stream, endpoint in _CATALOGUE.items() if endpoint},
    "reports": ("report", {}),
    "segments": ("segment", {}),
}
_INCREMENTAL = [*_CATALOGUE, "reports", "segments"]
_MAX_LAST_UPDATED_AT = 1709305390000  # saved as an integer (entities/cursor_state.py)


def track_types_request(app_ids: object = ALL_APPS, after: str = "", limit: int = 50_000):
    """POST /aggregation over the trackTypes source: how tap-pendo and Estuary read track types (R-8)."""
    return aggregation_request(
        "track_types", {"trackTypes": {"appId": app_ids}}, f'id > "{after}"', "id", limit
    )


def _mock_list(http_mocker: HttpMocker, stream: str) -> None:
    if stream == "track_types":
        mock_keyset_pages(
            http_mocker, lambda after: track_types_request(after=after), [payload(stream)], "id"
        )
        return
    endpoint, query = _LISTS[stream]
    http_mocker.get(get_request(endpoint, **query), json_response(payload(stream)))


def _as_records(objects: list[dict]) -> list[dict]:
    """The objects as the CDK emits them: a top-level field that is null is left out of the record
    (features' `pageId`, track types' `eventPropertyNameList`); nested nulls stay."""
    return [{key: value for key, value in obj.items() if value is not None} for obj in objects]


def _max_last_updated(stream: str) -> int:
    return max(o["lastUpdatedAt"] for o in payload(stream))


def _ids(output) -> list[str]:
    return [r.record.data["id"] for r in output.records]


# ------------------------------------------------------------------------------------------ full refresh
@pytest.mark.parametrize("stream", [*_LISTS, "track_types"])
def test_list_stream_reads_every_object_of_every_app_unchanged(http_mocker: HttpMocker, stream: str) -> None:
    _mock_list(http_mocker, stream)

    output = read_stream(stream, ConfigBuilder().build())

    assert [r.record.data for r in output.records] == _as_records(payload(stream))


@pytest.mark.parametrize(
    ("stream", "app_ids", "expected_ids"),
    [
        ("pages", ["5629499534213120"], ["-AsTA2Rjbf2Z4MeGdfhWLaRVri4"]),
        # the third page's appId is another app; its appIds list holds -323232
        ("pages", ["-323232"], ["aRnno0-bo2WMPJ7HBIFzCuDtKfg", "Zk3xq2c6tN0RzY7uWmS1aB4dEfG"]),
        ("features", ["-323232"], ["uXfQdbqvfgduiCvUF1gjVBA4vng"]),
    ],
    ids=["pages_app_id", "pages_app_ids_list", "features_app_id"],
)
def test_catalogue_stream_keeps_only_objects_of_the_configured_apps(
    http_mocker: HttpMocker, stream: str, app_ids: list[str], expected_ids: list[str]
) -> None:
    _mock_list(http_mocker, stream)

    output = read_stream(stream, ConfigBuilder().with_(app_ids=app_ids).build())

    assert _ids(output) == expected_ids


# ------------------------------------------------------------------------------------------ incremental
@pytest.mark.parametrize("stream", _INCREMENTAL)
def test_list_stream_without_state_reads_every_object_whatever_the_start_date(
    http_mocker: HttpMocker, stream: str
) -> None:
    _mock_list(http_mocker, stream)

    output = read_stream(stream, ConfigBuilder().with_(start_date="2025-01-01").build(), SyncMode.incremental)

    assert [r.record.data for r in output.records] == _as_records(payload(stream))
    assert output.most_recent_state.stream_state.__dict__ == {
        "lastUpdatedAt": _max_last_updated(stream),
        "listed_ids": sorted(o["id"] for o in payload(stream)),
    }


@pytest.mark.parametrize(
    ("stream", "saved", "expected_ids"),
    [
        ("pages", 1709269300000, ["aRnno0-bo2WMPJ7HBIFzCuDtKfg", "Zk3xq2c6tN0RzY7uWmS1aB4dEfG"]),
        # saved as text, as versions before 1.0.0 did: read alike
        ("reports", "1709000000000", ["aJ0EPRi4vs3gNnYh3yIj4g3MBo0"]),
    ],
    ids=["pages", "reports"],
)
def test_list_stream_with_state_emits_only_objects_updated_since(
    http_mocker: HttpMocker, stream: str, saved: int | str, expected_ids: list[str]
) -> None:
    _mock_list(http_mocker, stream)

    output = read_stream(
        stream, ConfigBuilder().build(), SyncMode.incremental, state(stream, {"lastUpdatedAt": saved})
    )

    assert _ids(output) == expected_ids
    assert output.most_recent_state.stream_state.__dict__ == {
        "lastUpdatedAt": _MAX_LAST_UPDATED_AT,
        "listed_ids": sorted(o["id"] for o in payload(stream)),
    }


@pytest.mark.parametrize("stream", _INCREMENTAL)
def test_list_stream_with_state_in_the_future_emits_nothing(http_mocker: HttpMocker, stream: str) -> None:
    output = read_stream(
        stream,
        ConfigBuilder().build(),
        SyncMode.incremental,
        state(stream, {"lastUpdatedAt": 4102444800000}),
    )

    assert output.records == []
    assert not output.errors


# ------------------------------------------------------------------------------------------ track_types
def test_track_types_ask_pendo_for_the_configured_apps_and_page_on_id(http_mocker: HttpMocker) -> None:
    app_ids = ["-323232", "5629499534213120"]
    objects = payload("track_types")
    first_page = [dict(objects[0], id=f"tt-{i:04d}") for i in range(999)] + [dict(objects[0], id='tt "z" \\')]
    http_mocker.post(track_types_request(app_ids, limit=1_000), aggregation_response(first_page))
    http_mocker.post(
        track_types_request(app_ids, after='tt \\"z\\" \\\\', limit=1_000), aggregation_response([])
    )

    output = read_stream("track_types", ConfigBuilder().with_(app_ids=app_ids, page_size=1_000).build())

    # Pendo selects the apps: every row it answers is a record (no client-side app filter)
    assert len(output.records) == 1_000
