"""features, pages, guides, track_types: GET ?expand=*, filtered to app_ids, client-side incremental."""

from __future__ import annotations

from unittest import TestCase

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import ConfigBuilder, get_request, json_response, payload, read_stream, state

_ENDPOINTS = {"features": "feature", "pages": "page", "guides": "guide", "track_types": "tracktype"}


def _mock_list(http_mocker: HttpMocker, stream: str) -> None:
    http_mocker.get(get_request(_ENDPOINTS[stream], expand="*"), json_response(payload(stream)))


def _ids(output) -> list[str]:
    return [r.record.data["id"] for r in output.records]


class CatalogueFullRefreshTest(TestCase):
    @HttpMocker()
    def test_features_read_every_object_of_every_app(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "features")
        output = read_stream("features", ConfigBuilder().build())
        assert output.records[0].record.data == payload("features")[0]
        assert len(output.records) == 2

    @HttpMocker()
    def test_pages_read_every_object_of_every_app(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "pages")
        assert len(read_stream("pages", ConfigBuilder().build()).records) == 3

    @HttpMocker()
    def test_guides_read_every_object_of_every_app(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "guides")
        assert len(read_stream("guides", ConfigBuilder().build()).records) == 2

    @HttpMocker()
    def test_track_types_read_every_object_of_every_app(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "track_types")
        assert len(read_stream("track_types", ConfigBuilder().build()).records) == 2

    @HttpMocker()
    def test_pages_keep_only_objects_of_the_configured_apps(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "pages")
        output = read_stream("pages", ConfigBuilder().with_(app_ids=["5629499534213120"]).build())
        assert _ids(output) == ["-AsTA2Rjbf2Z4MeGdfhWLaRVri4"]

    @HttpMocker()
    def test_pages_keep_an_object_whose_app_ids_list_holds_a_configured_app(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_list(http_mocker, "pages")
        output = read_stream("pages", ConfigBuilder().with_(app_ids=["-323232"]).build())
        assert _ids(output) == ["aRnno0-bo2WMPJ7HBIFzCuDtKfg", "Zk3xq2c6tN0RzY7uWmS1aB4dEfG"]

    @HttpMocker()
    def test_features_keep_only_objects_of_the_configured_apps(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "features")
        output = read_stream("features", ConfigBuilder().with_(app_ids=["-323232"]).build())
        assert _ids(output) == ["uXfQdbqvfgduiCvUF1gjVBA4vng"]


class CatalogueIncrementalTest(TestCase):
    @HttpMocker()
    def test_pages_without_state_read_every_object_whatever_the_start_date(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_list(http_mocker, "pages")
        output = read_stream(
            "pages", ConfigBuilder().with_(start_date="2025-01-01").build(), SyncMode.incremental
        )
        assert len(output.records) == 3
        assert output.most_recent_state.stream_state.__dict__ == {"lastUpdatedAt": "1709305390000"}

    @HttpMocker()
    def test_pages_with_state_emit_only_objects_updated_since(self, http_mocker: HttpMocker) -> None:
        _mock_list(http_mocker, "pages")
        output = read_stream(
            "pages",
            ConfigBuilder().build(),
            SyncMode.incremental,
            state("pages", {"lastUpdatedAt": "1709269300000"}),
        )
        assert _ids(output) == ["aRnno0-bo2WMPJ7HBIFzCuDtKfg", "Zk3xq2c6tN0RzY7uWmS1aB4dEfG"]

    @HttpMocker()
    def test_track_types_with_state_in_the_future_emit_nothing(self, http_mocker: HttpMocker) -> None:
        output = read_stream(
            "track_types",
            ConfigBuilder().build(),
            SyncMode.incremental,
            state("track_types", {"lastUpdatedAt": "4102444800000"}),
        )
        assert output.records == []
        assert not output.errors
