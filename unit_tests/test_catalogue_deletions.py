"""Deletions in the catalogue (source_pendo/deletions/records.py): an incremental catalogue stream saves the ids its
listing held, and emits a deletion record for each saved id Pendo no longer lists."""

from __future__ import annotations

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import discover
from airbyte_cdk.test.mock_http import HttpMocker
from builders import NOW_ENV, NOW_MS, ConfigBuilder, get_request, json_response, payload, read_stream, state

from source_pendo.deletions.records import CATALOGUE_STREAMS
from source_pendo.source import SourcePendo

DELETED_AT = "2024-03-03T00:00:00Z"  # NOW_MS
DISCOVER_CONFIG = {"api_key": "00000000-deletions-test-key.us", "start_date": "2024-01-01"}


@pytest.fixture(autouse=True)
def _pinned_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NOW_ENV, str(NOW_MS))


def _ids(stream: str) -> list[str]:
    return sorted(o["id"] for o in payload(stream))


def _newest(stream: str) -> int:
    return max(o["lastUpdatedAt"] for o in payload(stream))


def _read(stream: str, saved: dict, expecting_exception: bool = False):
    return read_stream(
        stream, ConfigBuilder().build(), SyncMode.incremental, state(stream, saved), expecting_exception
    )


@pytest.mark.parametrize(("stream", "endpoint"), [("features", "feature"), ("segments", "segment")])
def test_an_object_gone_since_the_last_sync_is_one_deletion_record(
    http_mocker: HttpMocker, stream: str, endpoint: str
) -> None:
    http_mocker.get(
        get_request(endpoint, **({"expand": "*"} if stream == "features" else {})),
        json_response(payload(stream)),
    )

    output = _read(stream, {"lastUpdatedAt": _newest(stream), "listed_ids": [*_ids(stream), "gone-object"]})

    # (the newest object is emitted too: the CDK's client-side cursor lets a lastUpdatedAt equal to it through)
    assert [r.record.data for r in output.records if "_ab_cdc_deleted_at" in r.record.data] == [
        {"id": "gone-object", "lastUpdatedAt": NOW_MS, "_ab_cdc_deleted_at": DELETED_AT}
    ]
    assert output.most_recent_state.stream_state.__dict__ == {
        "lastUpdatedAt": _newest(stream),
        "listed_ids": _ids(stream),
    }


def test_an_object_listed_again_is_an_ordinary_record_whatever_its_lastupdatedat(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.get(get_request("feature", expand="*"), json_response(payload("features")))
    oldest = min(payload("features"), key=lambda o: o["lastUpdatedAt"])
    others = [i for i in _ids("features") if i != oldest["id"]]

    output = _read("features", {"lastUpdatedAt": _newest("features"), "listed_ids": others})

    back = [r.record.data for r in output.records if r.record.data["id"] == oldest["id"]]
    assert back == [{k: v for k, v in oldest.items() if v is not None}]


def test_an_empty_listing_is_not_taken_for_the_deletion_of_everything(http_mocker: HttpMocker) -> None:
    http_mocker.get(get_request("feature", expand="*"), json_response([]))

    output = _read("features", {"lastUpdatedAt": _newest("features"), "listed_ids": _ids("features")})

    assert output.records == []
    assert output.most_recent_state.stream_state.__dict__["listed_ids"] == _ids("features")
    assert any("listed no objects" in m.log.message for m in output.logs)


def test_listed_ids_that_are_not_a_list_of_ids_are_a_config_error_of_that_stream_state_kept(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.get(get_request("feature", expand="*"), json_response(payload("features")))

    output = _read("features", {"lastUpdatedAt": 1, "listed_ids": "abc"}, expecting_exception=True)

    errors = [e.trace.error for e in output.errors]
    assert errors and errors[0].failure_type.value == "config_error"
    assert "listed_ids" in errors[0].message and "features" in errors[0].message
    assert output.records == [] and output.state_messages == [], "the saved state is never overwritten"


@pytest.mark.allow_unmocked_requests  # discover needs no answer for these streams (test_docs.py)
def test_the_streams_with_deletions_are_keyed_and_cursored_as_the_manifest_declares() -> None:
    """deletions/records.py keeps each stream's key and cursor (its deletion records carry them): the same as
    discover announces from manifest.yaml."""
    with HttpMocker():
        output = discover(SourcePendo(config=DISCOVER_CONFIG), DISCOVER_CONFIG)
    streams = {s.name: s for s in output.catalog.catalog.streams}
    for name, keyed in CATALOGUE_STREAMS.items():
        assert streams[name].source_defined_primary_key == [[field] for field in keyed.key], name
        assert streams[name].default_cursor_field == [keyed.cursor], name
