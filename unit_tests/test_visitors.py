"""visitors: what only visitors do (anonymous visitors excluded server- and client-side, per-app metadata
groups). The keyset and the lastupdated cursor they share with accounts are in test_entity_streams.py."""

from __future__ import annotations

from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ALL_APPS,
    ConfigBuilder,
    aggregation_request,
    aggregation_response,
    mock_count,
    mock_keyset_pages,
    mock_metadata_schema,
    payload,
    read_stream,
    rows_like,
)

_STREAM = "visitors"
_PAGE = 1_000
_ANONYMOUS = "_PENDO_T_dPRrqg5DlCC"


def _visitors_request(identified: bool = True, after: str = "", limit: int = 50_000):
    return aggregation_request(
        _STREAM,
        {"visitors": {"identified": identified, "appId": ALL_APPS}},
        f'visitorId > "{after}"',
        "visitorId",
        limit,
    )


def _mock_read_prerequisites(http_mocker: HttpMocker, identified: bool = True) -> None:
    mock_metadata_schema(http_mocker, _STREAM)
    mock_count(http_mocker, _STREAM, {"visitors": {"identified": identified, "appId": ALL_APPS}})


def test_visitors_with_anonymous_included_ask_for_all_visitors_and_keep_anonymous_rows(
    http_mocker: HttpMocker,
) -> None:
    _mock_read_prerequisites(http_mocker, identified=False)
    mock_keyset_pages(
        http_mocker,
        lambda after: _visitors_request(identified=False, after=after),
        [payload(_STREAM)["results"]],
        "visitorId",
    )

    output = read_stream(_STREAM, ConfigBuilder().with_(include_anonymous_visitors=True).build())

    assert [r.record.data["visitorId"] for r in output.records] == ["42", _ANONYMOUS, "43"]


def test_visitors_full_page_ending_in_dropped_anonymous_rows_still_reads_the_next_page(
    http_mocker: HttpMocker,
) -> None:
    # The server should not send anonymous rows when identified is true; if it does, the dropped rows must
    # neither make the page look short nor move the keyset back.
    ids = [f"v{i:04d}" for i in range(_PAGE - 3)] + ["_PENDO_T_a", "_PENDO_T_b", "_PENDO_T_c"]
    _mock_read_prerequisites(http_mocker)
    http_mocker.post(
        _visitors_request(limit=_PAGE), aggregation_response(rows_like(_STREAM, "visitorId", ids))
    )
    http_mocker.post(
        _visitors_request(after="_PENDO_T_c", limit=_PAGE),
        aggregation_response(rows_like(_STREAM, "visitorId", ["zed"])),
    )

    output = read_stream(_STREAM, ConfigBuilder().with_(page_size=_PAGE).build())

    assert len(output.records) == _PAGE - 3 + 1
    assert not any(r.record.data["visitorId"].startswith("_PENDO_T_") for r in output.records)


def test_visitors_record_promotes_every_group_but_per_app_ones(http_mocker: HttpMocker) -> None:
    _mock_read_prerequisites(http_mocker)
    mock_keyset_pages(
        http_mocker,
        lambda after: _visitors_request(after=after),
        [payload(_STREAM)["results"][:1]],
        "visitorId",
    )

    record = read_stream(_STREAM, ConfigBuilder().build()).records[0].record.data

    assert record["lastupdated"] == 1709305390000
    assert record["metadata_agent_email"] == "jane@example.com"
    assert record["metadata_auto_accountids"] == ["Acme Corp"]
    assert record["metadata_pendo_donotprocess"] is False
    assert not [column for column in record if column.startswith("metadata_auto__")]
    assert record["metadata"]["auto__323232"]["lastvisit"] == 1709305380812


def test_visitors_ask_for_every_app_whatever_app_ids_says(http_mocker: HttpMocker) -> None:
    # configured ids would make the answer depend on whether Pendo scopes visitors by app at all
    _mock_read_prerequisites(http_mocker)
    mock_keyset_pages(
        http_mocker, lambda after: _visitors_request(after=after), [payload(_STREAM)["results"]], "visitorId"
    )

    output = read_stream(_STREAM, ConfigBuilder().with_(app_ids=["-323232"]).build())

    assert [r.record.data["visitorId"] for r in output.records] == ["42", "43"]
