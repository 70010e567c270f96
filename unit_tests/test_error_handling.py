"""The shared error handler: one test per status, each with the message a user sees."""

from __future__ import annotations

from unittest import TestCase
from unittest.mock import patch

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse
from builders import (
    ALL_APPS,
    API_KEY,
    ConfigBuilder,
    aggregation_request,
    aggregation_response,
    get_request,
    json_response,
    mock_count,
    mock_metadata_schema,
    payload,
    read_stream,
    text_response,
)

from source_pendo.pendo import MAX_RETRY_AFTER_SECONDS
from source_pendo.source import SourcePendo


def _pages_request():
    return get_request("page", expand="*")


def _accounts_request():
    return aggregation_request(
        "accounts",
        {"accounts": {"appId": ALL_APPS}},
        'accountId > ""',
        "accountId",
    )


def _mock_accounts_read_prerequisites(http_mocker: HttpMocker) -> None:
    mock_metadata_schema(http_mocker, "accounts")
    mock_count(http_mocker, "accounts", {"accounts": {"appId": ALL_APPS}})


def _waits(sleep) -> list[float]:
    """Seconds slept between attempts (the backoff library adds a sleep(0) after each CDK-handled wait)."""
    return [call.args[0] for call in sleep.call_args_list if call.args[0]]


def _first_error(output):
    return output.errors[0].trace.error


class ErrorHandlingTest(TestCase):
    @HttpMocker()
    def test_pages_403_fails_as_config_error_pointing_to_integration_keys(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(_pages_request(), text_response("Forbidden", 403))

        output = read_stream("pages", ConfigBuilder().build(), expecting_exception=True)

        error = _first_error(output)
        assert error.failure_type == FailureType.config_error
        assert "Settings > Integrations > Integration Keys" in error.message
        assert API_KEY not in str(output.records_and_state_messages) + str(output.errors) + str(output.logs)

    @HttpMocker()
    def test_pages_400_fails_as_system_error_quoting_pendo_and_naming_stream_and_request(
        self, http_mocker: HttpMocker
    ) -> None:
        # Only check's probe may call a 400 the region: during a read it is a rejected request.
        http_mocker.get(_pages_request(), text_response("Bad Request", 400))

        output = read_stream("pages", ConfigBuilder().build(), expecting_exception=True)

        error = _first_error(output)
        assert error.failure_type == FailureType.system_error
        assert (
            error.message
            == 'Pendo rejected a request of stream pages (HTTP 400 to GET /api/v1/page): "Bad Request".'
        )

    @HttpMocker()
    def test_accounts_aggregation_400_names_the_source_and_masks_the_key(
        self, http_mocker: HttpMocker
    ) -> None:
        _mock_accounts_read_prerequisites(http_mocker)
        http_mocker.post(
            _accounts_request(), text_response(f"Bad Request: plan has no access ({API_KEY})", 400)
        )

        output = read_stream("accounts", ConfigBuilder().build(), expecting_exception=True)

        error = _first_error(output)
        assert error.failure_type == FailureType.system_error
        assert error.message == (
            "Pendo rejected a request of stream accounts (HTTP 400 to POST /api/v1/aggregation (source accounts)): "
            '"Bad Request: plan has no access (****)". If every aggregation answers this, the subscription\'s '
            "plan may lack access to Pendo's Aggregation API; otherwise please report it with the sync logs."
        )

    @HttpMocker()
    def test_accounts_aggregation_403_says_the_key_lacks_write_access(self, http_mocker: HttpMocker) -> None:
        _mock_accounts_read_prerequisites(http_mocker)
        request = _accounts_request()
        http_mocker.post(request, text_response("Forbidden", 403))

        output = read_stream("accounts", ConfigBuilder().build(), expecting_exception=True)

        error = _first_error(output)
        assert error.failure_type == FailureType.config_error
        assert error.message.startswith(
            "Pendo refused an aggregation query of stream accounts (HTTP 403 to POST /api/v1/aggregation (source "
            "accounts)) although the key is accepted for reads: the key most likely lacks write access. Pendo "
            'requires "Allow Write Access"'
        )
        http_mocker.assert_number_of_calls(request, 1)

    @HttpMocker()
    def test_pages_403_naming_a_rate_limit_is_retried_with_backoff(self, http_mocker: HttpMocker) -> None:
        throttled = HttpResponse('{"error": "rateLimitExceeded", "message": "Rate limit exceeded"}', 403)
        http_mocker.get(_pages_request(), [throttled, json_response(payload("pages"))])

        with patch("time.sleep") as sleep:
            output = read_stream("pages", ConfigBuilder().build())

        assert len(output.records) == 3
        assert _waits(sleep) == [7]

    @HttpMocker()
    def test_pages_400_with_an_eu_key_on_the_us_host_suggests_region_eu(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(_pages_request(), text_response("Bad Request", 400))

        output = read_stream(
            "pages", ConfigBuilder().with_(api_key="abc.eu").build(), expecting_exception=True
        )

        assert _first_error(output).message.endswith(" The key ends with .eu, which suggests region eu.")

    @HttpMocker()
    def test_accounts_400_cannot_parse_filter_fails_as_system_error(self, http_mocker: HttpMocker) -> None:
        _mock_accounts_read_prerequisites(http_mocker)
        http_mocker.post(_accounts_request(), text_response("Cannot parse filter expression", 400))

        output = read_stream("accounts", ConfigBuilder().build(), expecting_exception=True)

        error = _first_error(output)
        assert error.failure_type == FailureType.system_error
        assert "could not parse the aggregation filter" in error.message

    @HttpMocker()
    def test_accounts_422_fails_at_once_as_system_error(self, http_mocker: HttpMocker) -> None:
        _mock_accounts_read_prerequisites(http_mocker)
        request = _accounts_request()
        http_mocker.post(request, json_response({"overall": {}, "fields": {"pipeline": "Required"}}, 422))

        output = read_stream("accounts", ConfigBuilder().build(), expecting_exception=True)

        assert _first_error(output).failure_type == FailureType.system_error
        http_mocker.assert_number_of_calls(request, 1)

    @HttpMocker()
    def test_pages_429_waits_for_retry_after_then_reads(self, http_mocker: HttpMocker) -> None:
        throttled = HttpResponse("Too Many Requests", 429, {"Retry-After": "7"})
        http_mocker.get(_pages_request(), [throttled, json_response(payload("pages"))])

        with patch("time.sleep") as sleep:
            output = read_stream("pages", ConfigBuilder().build())

        assert len(output.records) == 3
        assert _waits(sleep) == [8]  # Retry-After 7, plus the CDK's 1 s

    @HttpMocker()
    def test_pages_429_with_a_huge_retry_after_waits_the_cap_and_logs_it(
        self, http_mocker: HttpMocker
    ) -> None:
        throttled = HttpResponse("Too Many Requests", 429, {"Retry-After": "86400"})
        http_mocker.get(_pages_request(), [throttled, json_response(payload("pages"))])

        with patch("time.sleep") as sleep:
            output = read_stream("pages", ConfigBuilder().build())

        assert len(output.records) == 3
        assert _waits(sleep) == [MAX_RETRY_AFTER_SECONDS + 1]  # the cap, plus the CDK's 1 s
        assert any(
            "Retry-After 86400" in m.log.message and f"waiting {MAX_RETRY_AFTER_SECONDS} s" in m.log.message
            for m in output.logs
        )

    @HttpMocker()
    def test_pages_5xx_are_retried_with_backoff_then_read(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(
            _pages_request(),
            [
                text_response("oops", 500),
                text_response("bad gateway", 502),
                text_response("unavailable", 503),
                text_response("timeout", 504),
                json_response(payload("pages")),
            ],
        )

        with patch("time.sleep") as sleep:
            output = read_stream("pages", ConfigBuilder().build())

        assert len(output.records) == 3
        assert _waits(sleep) == [7, 13, 25, 49]

    @HttpMocker()
    def test_pages_500_gives_up_after_six_retries(self, http_mocker: HttpMocker) -> None:
        request = _pages_request()
        http_mocker.get(request, [text_response("oops", 500)] * 7)

        with patch("time.sleep"):
            output = read_stream("pages", ConfigBuilder().build(), expecting_exception=True)

        assert output.errors
        http_mocker.assert_number_of_calls(request, 7)


def test_requests_use_request_timeout_seconds_for_read_and_at_most_30_s_to_connect() -> None:
    source = SourcePendo(ConfigBuilder().with_(request_timeout_seconds=120).build())
    requesters = [stream["retriever"]["requester"] for stream in source.resolved_manifest["streams"]]
    assert {(r["read_timeout_in_seconds"], r["connect_timeout_in_seconds"]) for r in requesters} == {
        (120, 30)
    }


MAINTENANCE = "<!DOCTYPE html><html><title>Pendo is down for maintenance</title></html>"


@pytest.mark.parametrize("stream,endpoint", [("segments", "segment"), ("reports", "report")])
def test_a_rest_list_answered_by_a_maintenance_page_is_asked_again_and_read_whole(
    http_mocker: HttpMocker, stream: str, endpoint: str
) -> None:
    http_mocker.get(
        get_request(endpoint),
        [HttpResponse(MAINTENANCE, 200, {"Content-Type": "text/html"}), json_response(payload(stream))],
    )
    with patch("time.sleep"):
        output = read_stream(stream, ConfigBuilder().build())
    assert len(output.records) == len(payload(stream)) and not output.errors


def test_a_rest_list_that_keeps_answering_a_maintenance_page_fails_naming_it_never_empty(
    http_mocker: HttpMocker,
) -> None:
    request = get_request("segment")
    http_mocker.get(request, [HttpResponse(MAINTENANCE, 200, {"Content-Type": "text/html"})] * 4)
    with patch("time.sleep"):
        output = read_stream("segments", ConfigBuilder().build(), expecting_exception=True)
    assert not output.records
    error = _first_error(output)  # (the in-process read adds the CDK's summary; the process prints one trace)
    assert "GET /api/v1/segment" in error.message and "Pendo is down for maintenance" in error.message
    assert "not JSON" in error.message and "4 times" in error.message
    http_mocker.assert_number_of_calls(request, 4)


def test_an_entity_page_answered_by_an_error_object_is_asked_again_never_a_record(
    http_mocker: HttpMocker,
) -> None:
    _mock_accounts_read_prerequisites(http_mocker)
    http_mocker.post(
        _accounts_request(),
        [json_response({"error": "internal error, try again"}), json_response(payload("accounts"))],
    )
    http_mocker.post(  # the probe after the short page (builders.mock_keyset_pages)
        aggregation_request(
            "accounts", {"accounts": {"appId": ALL_APPS}}, 'accountId > "Globex"', "accountId"
        ),
        aggregation_response([]),
    )
    with patch("time.sleep"):
        output = read_stream("accounts", ConfigBuilder().build())
    assert not output.errors
    assert len(output.records) == len(payload("accounts")["results"])
    assert all("error" not in r.record.data for r in output.records)
