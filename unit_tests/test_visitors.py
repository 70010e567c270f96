"""visitors: keyset over the aggregation API; anonymous visitors excluded server- and client-side."""

from __future__ import annotations

from unittest import TestCase

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    DAY_MS,
    ConfigBuilder,
    aggregation_request,
    aggregation_response,
    get_request,
    json_response,
    payload,
    read_stream,
    rows_like,
    state,
)

_STREAM = "visitors"
_PAGE = 1_000
_ANONYMOUS = "_PENDO_T_dPRrqg5DlCC"


def _visitors_request(identified: bool = True, after: str = "", since_ms: int = 0, limit: int = 50_000):
    return aggregation_request(
        _STREAM,
        {"visitors": {"identified": identified}},
        f'visitorId > "{after}" && metadata.auto.lastupdated >= {since_ms}',
        "visitorId",
        limit,
    )


def _mock_metadata_schema(http_mocker: HttpMocker) -> None:
    http_mocker.get(get_request("metadata/schema/visitor"), json_response(payload("metadata_visitors")))


class VisitorsFullRefreshTest(TestCase):
    @HttpMocker()
    def test_visitors_first_page_asks_for_identified_visitors_and_drops_anonymous_rows(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_metadata_schema(http_mocker)
        http_mocker.post(
            _visitors_request(identified=True), aggregation_response(payload(_STREAM)["results"])
        )

        output = read_stream(_STREAM, ConfigBuilder().build())

        assert [r.record.data["visitorId"] for r in output.records] == ["42", "43"]

    @HttpMocker()
    def test_visitors_with_anonymous_included_ask_for_all_visitors_and_keep_anonymous_rows(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_metadata_schema(http_mocker)
        http_mocker.post(
            _visitors_request(identified=False), aggregation_response(payload(_STREAM)["results"])
        )

        output = read_stream(_STREAM, ConfigBuilder().with_(include_anonymous_visitors=True).build())

        assert [r.record.data["visitorId"] for r in output.records] == ["42", _ANONYMOUS, "43"]

    @HttpMocker()
    def test_visitors_next_page_starts_after_the_last_id_escaping_quote_and_backslash(
        self, http_mocker: HttpMocker
    ) -> None:
        awkward_id = 'jane "j" \\ doe@example.com'
        first_page = rows_like(_STREAM, "visitorId", [f"v{i:04d}" for i in range(_PAGE - 1)] + [awkward_id])
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_visitors_request(limit=_PAGE), aggregation_response(first_page))
        http_mocker.post(
            aggregation_request(
                _STREAM,
                {"visitors": {"identified": True}},
                'visitorId > "jane \\"j\\" \\\\ doe@example.com" && metadata.auto.lastupdated >= 0',
                "visitorId",
                _PAGE,
            ),
            aggregation_response(rows_like(_STREAM, "visitorId", ["zed"])),
        )

        output = read_stream(_STREAM, ConfigBuilder().with_(page_size=_PAGE).build())

        assert len(output.records) == _PAGE + 1

    @HttpMocker()
    def test_visitors_full_page_ending_in_dropped_anonymous_rows_still_reads_the_next_page(
        self, http_mocker: HttpMocker
    ) -> None:
        # The server should not send anonymous rows when identified is true; if it does, the dropped rows must
        # neither make the page look short nor move the keyset back.
        ids = [f"v{i:04d}" for i in range(_PAGE - 3)] + ["_PENDO_T_a", "_PENDO_T_b", "_PENDO_T_c"]
        _mock_metadata_schema(http_mocker)
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

    @HttpMocker()
    def test_visitors_record_promotes_every_group_but_per_app_ones(self, http_mocker: HttpMocker) -> None:
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_visitors_request(), aggregation_response(payload(_STREAM)["results"][:1]))

        record = read_stream(_STREAM, ConfigBuilder().build()).records[0].record.data

        assert record["lastupdated"] == 1709305390000
        assert record["metadata_agent_email"] == "jane@example.com"
        assert record["metadata_auto_accountids"] == ["Acme Corp"]
        assert record["metadata_pendo_donotprocess"] is False
        assert not [column for column in record if column.startswith("metadata_auto__")]
        assert record["metadata"]["auto__323232"]["lastvisit"] == 1709305380812


class VisitorsIncrementalTest(TestCase):
    @HttpMocker()
    def test_visitors_with_state_read_from_the_state_minus_one_day_and_keep_the_max(
        self, http_mocker: HttpMocker
    ) -> None:
        saved = 1709269300000
        _mock_metadata_schema(http_mocker)
        http_mocker.post(
            _visitors_request(since_ms=saved - DAY_MS), aggregation_response(payload(_STREAM)["results"])
        )

        output = read_stream(
            _STREAM,
            ConfigBuilder().build(),
            SyncMode.incremental,
            state(_STREAM, {"lastupdated": str(saved)}),
        )

        assert output.most_recent_state.stream_state.__dict__ == {"lastupdated": "1709305390000"}
