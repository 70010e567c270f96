"""The size estimate: one aggregation `count` before accounts or visitors are read from the beginning."""

from __future__ import annotations

import pytest
from airbyte_cdk.models import EstimateType, TraceType
from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ALL_APPS,
    ConfigBuilder,
    aggregation_request,
    aggregation_response,
    count_response,
    json_response,
    mock_count,
    mock_keyset_pages,
    mock_metadata_schema,
    payload,
    read_stream,
    text_response,
)

_SOURCES = {
    "accounts": {"accounts": {"appId": ALL_APPS}},
    "visitors": {"visitors": {"identified": True, "appId": ALL_APPS}},
}
_ID_FIELDS = {"accounts": "accountId", "visitors": "visitorId"}
STREAMS = pytest.mark.parametrize("stream", list(_SOURCES))


def _mock_first_page(http_mocker: HttpMocker, stream: str) -> None:
    id_field = _ID_FIELDS[stream]
    mock_metadata_schema(http_mocker, stream)
    mock_keyset_pages(
        http_mocker,
        lambda after: aggregation_request(stream, _SOURCES[stream], f'{id_field} > "{after}"', id_field),
        [payload(stream)["results"]],
        id_field,
    )


def _estimates(output) -> list[tuple[str, EstimateType, int]]:
    return [
        (t.trace.estimate.name, t.trace.estimate.type, t.trace.estimate.row_estimate)
        for t in output.trace_messages
        if t.trace.type == TraceType.ESTIMATE
    ]


@STREAMS
def test_entity_estimate_trace_carries_the_count_pendo_answers(http_mocker: HttpMocker, stream: str) -> None:
    _mock_first_page(http_mocker, stream)
    rows = len(payload(stream)["results"])
    mock_count(http_mocker, stream, _SOURCES[stream], count_response(rows))

    output = read_stream(stream, ConfigBuilder().build())

    assert _estimates(output) == [(stream, EstimateType.STREAM, rows)]
    assert len(output.records) == 2


@STREAMS
def test_entity_full_read_holding_fewer_rows_than_pendos_count_stops_naming_both_numbers(
    http_mocker: HttpMocker, stream: str
) -> None:
    """The read is held to the count behind the estimate (BEHAVIOR.md §B-22): its pages held one row fewer (rows
    before the record filter: visitors' pages hold an anonymous visitor the stream leaves out)."""
    _mock_first_page(http_mocker, stream)
    rows = len(payload(stream)["results"])
    mock_count(http_mocker, stream, _SOURCES[stream], count_response(rows + 1))

    output = read_stream(stream, ConfigBuilder().build(), expecting_exception=True)

    error = output.errors[0].trace.error
    assert error.message.startswith(
        f"{stream}: Pendo counted {rows + 1} rows before the read, but its pages held {rows}."
    )
    assert error.failure_type.value == "system_error"
    # the cursor never moved past the start of the read
    assert [m.state.stream.stream_state.__dict__["lastupdated"] for m in output.state_messages] == [0]


@STREAMS
def test_entity_full_read_with_more_rows_than_counted_is_complete(
    http_mocker: HttpMocker, stream: str
) -> None:
    """Rows that arrive between the count and the read are more, never fewer: accepted."""
    _mock_first_page(http_mocker, stream)
    mock_count(http_mocker, stream, _SOURCES[stream], count_response(1))

    output = read_stream(stream, ConfigBuilder().build())

    assert len(output.records) == 2


@STREAMS
@pytest.mark.parametrize(
    "answer",
    [text_response("oops", 500), text_response("{}", 200)],
    ids=["server_error", "not_a_count"],
)
def test_entity_failing_count_request_does_not_fail_the_read(
    http_mocker: HttpMocker, stream: str, answer
) -> None:
    _mock_first_page(http_mocker, stream)
    mock_count(http_mocker, stream, _SOURCES[stream], answer)

    output = read_stream(stream, ConfigBuilder().build())

    assert _estimates(output) == []
    assert not output.errors
    assert len(output.records) == 2
    assert any(f"{stream}: no size estimate" in log.log.message for log in output.logs)


def test_entity_estimate_of_null_results_is_zero(http_mocker: HttpMocker) -> None:
    # `"results": null` is no rows; the count of nothing is 0, not "no estimate"
    mock_metadata_schema(http_mocker, "accounts")
    mock_count(
        http_mocker, "accounts", _SOURCES["accounts"], json_response({"startTime": 0, "results": None})
    )
    http_mocker.post(
        aggregation_request("accounts", _SOURCES["accounts"], 'accountId > ""', "accountId"),
        aggregation_response([]),
    )

    output = read_stream("accounts", ConfigBuilder().build())

    estimates = [m.trace.estimate for m in output.trace_messages if m.trace.estimate is not None]
    assert [e.row_estimate for e in estimates] == [0]
