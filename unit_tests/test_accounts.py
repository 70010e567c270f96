"""accounts: what only accounts do (the app list as the source, the record's columns). The keyset and the
lastupdated cursor they share with visitors are in test_entity_streams.py."""

from __future__ import annotations

from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ALL_APPS,
    ConfigBuilder,
    aggregation_request,
    mock_count,
    mock_keyset_pages,
    mock_metadata_schema,
    payload,
    read_stream,
)

_STREAM = "accounts"


def _accounts_request(app_ids: object = ALL_APPS, after: str = ""):
    return aggregation_request(
        _STREAM,
        {"accounts": {"appId": app_ids}},
        f'accountId > "{after}"',
        "accountId",
    )


def _mock_accounts(http_mocker: HttpMocker, rows: list, app_ids: object = ALL_APPS) -> None:
    """The one page of rows, and the probe after it (a short first page, builders.mock_keyset_pages)."""
    mock_keyset_pages(http_mocker, lambda after: _accounts_request(app_ids, after), [rows], "accountId")


def test_accounts_configured_app_ids_become_the_source_app_list(http_mocker: HttpMocker) -> None:
    app_ids = ["-323232", "5629499534213120"]
    mock_metadata_schema(http_mocker, _STREAM)
    mock_count(http_mocker, _STREAM, {"accounts": {"appId": app_ids}})
    _mock_accounts(http_mocker, payload(_STREAM)["results"], app_ids)

    output = read_stream(_STREAM, ConfigBuilder().with_(app_ids=app_ids).build())

    assert len(output.records) == 2


def test_accounts_record_is_the_row_plus_lastupdated_and_metadata_columns(http_mocker: HttpMocker) -> None:
    row = payload(_STREAM)["results"][0]
    mock_metadata_schema(http_mocker, _STREAM)
    mock_count(http_mocker, _STREAM, {"accounts": {"appId": ALL_APPS}})
    _mock_accounts(http_mocker, [row])

    output = read_stream(_STREAM, ConfigBuilder().build())

    assert output.records[0].record.data == {
        **row,
        "lastupdated": 1709305390000,
        "metadata_agent_name": "Acme Corporation",
        "metadata_auto_id": "Acme Corp",
        "metadata_auto_idhash": 1234567890,
        "metadata_auto_nid": 3,
        "metadata_auto_firstvisit": 1685320590281,
        "metadata_auto_lastvisit": 1709305380812,
        "metadata_auto_lastupdated": 1709305390000,
        "metadata_custom_tier": "gold",
        "metadata_custom_arr": 120000.5,
    }
