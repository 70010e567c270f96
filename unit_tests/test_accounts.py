"""accounts: keyset over the aggregation API, incremental on metadata.auto.lastupdated."""

from __future__ import annotations

from unittest import TestCase

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.mock_http import HttpMocker
from builders import (
    ALL_APPS,
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

_STREAM = "accounts"
_PAGE = 1_000


def _accounts_request(after: str = "", since_ms: int = 0, app_ids: object = ALL_APPS, limit: int = 50_000):
    return aggregation_request(
        _STREAM,
        {"accounts": {"appId": app_ids}},
        f'accountId > "{after}" && metadata.auto.lastupdated >= {since_ms}',
        "accountId",
        limit,
    )


def _mock_metadata_schema(http_mocker: HttpMocker) -> None:
    http_mocker.get(get_request("metadata/schema/account"), json_response(payload("metadata_accounts")))


class AccountsFullRefreshTest(TestCase):
    @HttpMocker()
    def test_accounts_first_page_body_is_keyset_query_over_all_apps(self, http_mocker: HttpMocker) -> None:
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_accounts_request(), aggregation_response(payload(_STREAM)["results"]))

        output = read_stream(_STREAM, ConfigBuilder().build())

        assert [r.record.data["accountId"] for r in output.records] == ["Acme Corp", "Globex"]

    @HttpMocker()
    def test_accounts_configured_app_ids_become_the_source_app_list(self, http_mocker: HttpMocker) -> None:
        _mock_metadata_schema(http_mocker)
        http_mocker.post(
            _accounts_request(app_ids=["-323232", "5629499534213120"]),
            aggregation_response(payload(_STREAM)["results"]),
        )

        output = read_stream(_STREAM, ConfigBuilder().with_(app_ids=["-323232", "5629499534213120"]).build())

        assert len(output.records) == 2

    @HttpMocker()
    def test_accounts_next_page_starts_after_the_last_id_escaping_quote_and_backslash(
        self, http_mocker: HttpMocker
    ) -> None:
        awkward_id = 'Acme "West" \\ Co'
        first_page = rows_like(
            _STREAM, "accountId", [f"acct-{i:04d}" for i in range(_PAGE - 1)] + [awkward_id]
        )
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_accounts_request(limit=_PAGE), aggregation_response(first_page))
        http_mocker.post(
            aggregation_request(
                _STREAM,
                {"accounts": {"appId": ALL_APPS}},
                'accountId > "Acme \\"West\\" \\\\ Co" && metadata.auto.lastupdated >= 0',
                "accountId",
                _PAGE,
            ),
            aggregation_response(rows_like(_STREAM, "accountId", ["zeta"])),
        )

        output = read_stream(_STREAM, ConfigBuilder().with_(page_size=_PAGE).build())

        assert len(output.records) == _PAGE + 1
        assert output.records[-1].record.data["accountId"] == "zeta"

    @HttpMocker()
    def test_accounts_numeric_looking_id_stays_a_string_key(self, http_mocker: HttpMocker) -> None:
        first_page = rows_like(_STREAM, "accountId", [f"{i:04d}" for i in range(_PAGE - 1)] + ["1_000"])
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_accounts_request(limit=_PAGE), aggregation_response(first_page))
        http_mocker.post(_accounts_request(after="1_000", limit=_PAGE), aggregation_response([]))

        output = read_stream(_STREAM, ConfigBuilder().with_(page_size=_PAGE).build())

        assert len(output.records) == _PAGE

    @HttpMocker()
    def test_accounts_short_page_is_the_last_request(self, http_mocker: HttpMocker) -> None:
        _mock_metadata_schema(http_mocker)
        request = _accounts_request(limit=_PAGE)
        http_mocker.post(request, aggregation_response(rows_like(_STREAM, "accountId", ["a", "b"])))

        read_stream(_STREAM, ConfigBuilder().with_(page_size=_PAGE).build())

        http_mocker.assert_number_of_calls(request, 1)

    @HttpMocker()
    def test_accounts_record_is_the_row_plus_lastupdated_and_metadata_columns(
        self, http_mocker: HttpMocker
    ) -> None:
        row = payload(_STREAM)["results"][0]
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_accounts_request(), aggregation_response([row]))

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


class AccountsIncrementalTest(TestCase):
    @HttpMocker()
    def test_accounts_without_state_read_everything_and_save_the_max_lastupdated(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_accounts_request(since_ms=0), aggregation_response(payload(_STREAM)["results"]))

        output = read_stream(_STREAM, ConfigBuilder().build(), SyncMode.incremental)

        assert len(output.records) == 2
        assert output.most_recent_state.stream_state.__dict__ == {"lastupdated": "1709305390000"}

    @HttpMocker()
    def test_accounts_with_state_read_from_the_state_minus_the_lookback(
        self, http_mocker: HttpMocker
    ) -> None:
        saved = 1709305390000
        _mock_metadata_schema(http_mocker)
        http_mocker.post(
            _accounts_request(since_ms=saved - 2 * DAY_MS),
            aggregation_response(payload(_STREAM)["results"][:1]),
        )

        output = read_stream(
            _STREAM,
            ConfigBuilder().with_(lookback_window_days=2).build(),
            SyncMode.incremental,
            state(_STREAM, {"lastupdated": str(saved)}),
        )

        assert len(output.records) == 1
        assert output.most_recent_state.stream_state.__dict__ == {"lastupdated": str(saved)}

    @HttpMocker()
    def test_accounts_with_zero_lookback_read_from_the_state_itself(self, http_mocker: HttpMocker) -> None:
        saved = 1709269300000
        _mock_metadata_schema(http_mocker)
        http_mocker.post(_accounts_request(since_ms=saved), aggregation_response(payload(_STREAM)["results"]))

        output = read_stream(
            _STREAM,
            ConfigBuilder().with_(lookback_window_days=0).build(),
            SyncMode.incremental,
            state(_STREAM, {"lastupdated": str(saved)}),
        )

        assert output.most_recent_state.stream_state.__dict__ == {"lastupdated": "1709305390000"}

    @HttpMocker()
    def test_accounts_with_state_in_the_future_read_nothing(self, http_mocker: HttpMocker) -> None:
        _mock_metadata_schema(http_mocker)

        output = read_stream(
            _STREAM,
            ConfigBuilder().build(),
            SyncMode.incremental,
            state(_STREAM, {"lastupdated": "4102444800000"}),  # 2100-01-01
        )

        assert output.records == []
        assert not output.errors
