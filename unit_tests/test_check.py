"""check: GET /page?expand=* then a one-row aggregation, without retries, one actionable message per failure."""

from __future__ import annotations

import logging
from unittest import TestCase
from unittest.mock import patch

from airbyte_cdk.models import AirbyteConnectionStatus, Status
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from builders import (
    ALL_APPS,
    API_BASE,
    API_KEY,
    ConfigBuilder,
    get_request,
    json_response,
    payload,
    text_response,
)

from source_pendo.source import SourcePendo

_LOGGER = logging.getLogger("airbyte")


def _check(config: dict) -> AirbyteConnectionStatus:
    return SourcePendo(config=config).check(_LOGGER, config)


def _pages_request():
    return get_request("page", expand="*")


def _probe_request(app_ids: object = ALL_APPS) -> HttpRequest:
    """The aggregation probe: one row of the pages source, with the streams' app selection (R-14)."""
    return HttpRequest(
        url=f"{API_BASE}/aggregation",
        body={
            "response": {"mimeType": "application/json"},
            "request": {
                "name": "source-pendo-check",
                "pipeline": [{"source": {"pages": {"appId": app_ids}}}, {"limit": 1}],
            },
        },
    )


_RATE_LIMITED = '{"error": "rateLimitExceeded", "message": "Rate limit exceeded, retry later", "status": 403}'


class CheckTest(TestCase):
    @HttpMocker()
    def test_check_succeeds_when_pendo_lists_pages(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
        http_mocker.post(_probe_request(), json_response({"startTime": 0, "results": [{"id": "p"}]}))
        assert _check(ConfigBuilder().build()).status == Status.SUCCEEDED

    @HttpMocker()
    def test_check_succeeds_when_the_probe_answers_null_results(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
        http_mocker.post(_probe_request(), json_response({"startTime": 0, "results": None}))
        assert _check(ConfigBuilder().build()).status == Status.SUCCEEDED

    @HttpMocker()
    def test_check_aggregation_403_says_the_key_lacks_write_access(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
        http_mocker.post(_probe_request(), text_response("Forbidden", 403))

        status = _check(ConfigBuilder().build())

        assert status.status == Status.FAILED
        assert status.message.startswith(
            "The integration key can read but Pendo refused an aggregation query with it (HTTP 403 from "
            "https://app.pendo.io/api/v1/aggregation): the key lacks write access. Pendo requires "
            '"Allow Write Access" on the integration key for aggregation queries'
        )

    @HttpMocker()
    def test_check_aggregation_400_quotes_pendo_and_is_not_the_region(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
        http_mocker.post(_probe_request(), text_response("Bad Request", 400))

        status = _check(ConfigBuilder().build())

        assert status.message == (
            'Pendo refused an aggregation query (HTTP 400 from https://app.pendo.io/api/v1/aggregation: "Bad '
            "Request\") although the same key and host serve GET /page: the subscription's plan may lack access "
            "to Pendo's Aggregation API, or its key may not use it."
        )

    @HttpMocker()
    def test_check_rate_limit_403_is_asked_again_not_a_wrong_key(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), [HttpResponse(_RATE_LIMITED, 403), json_response(payload("pages"))])
        http_mocker.post(_probe_request(), [HttpResponse(_RATE_LIMITED, 403), json_response({"results": []})])

        with patch("time.sleep") as sleep:
            status = _check(ConfigBuilder().build())

        assert status.status == Status.SUCCEEDED
        assert [call.args[0] for call in sleep.call_args_list] == [2.0, 2.0]

    @HttpMocker()
    def test_check_succeeds_when_every_configured_app_has_pages(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
        http_mocker.post(_probe_request(["-323232", "6253630842798080"]), json_response({"results": []}))
        config = ConfigBuilder().with_(app_ids=["-323232", "6253630842798080"]).build()
        assert _check(config).status == Status.SUCCEEDED

    @HttpMocker()
    def test_check_403_says_the_key_was_rejected_and_where_keys_are_made(
        self, http_mocker: HttpMocker
    ) -> None:
        http_mocker.get(_pages_request(), text_response("Forbidden", 403))

        status = _check(ConfigBuilder().build())

        assert status.status == Status.FAILED
        assert status.message == (
            "Pendo rejected the integration key (HTTP 403 from https://app.pendo.io/api/v1). Check `api_key`: "
            'create or copy a key in Pendo under Settings > Integrations > Integration Keys, with "Allow Write '
            'Access" on (Pendo requires it for aggregation queries; the connector never writes).'
        )
        assert API_KEY not in status.message

    @HttpMocker()
    def test_check_400_says_wrong_region(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), text_response("Bad Request", 400))

        status = _check(ConfigBuilder().with_(api_key="0000-no-suffix").build())

        assert status.message == (
            "https://app.pendo.io/api/v1 answered 400, which is how Pendo answers a valid key used against another "
            "region's host; set `region` to the subscription's region (us, us1, eu, jpn, au) or fix `base_url`."
        )

    @HttpMocker()
    def test_check_400_with_a_region_suffixed_key_names_that_region(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), text_response("Bad Request", 400))

        status = _check(ConfigBuilder().with_(api_key="0000-secret.jpn").build())

        assert status.message.endswith(" The key ends with .jpn, which suggests region jpn.")
        assert "0000-secret" not in status.message

    @HttpMocker()
    def test_check_unknown_app_id_lists_the_apps_that_have_pages(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))

        status = _check(ConfigBuilder().with_(app_ids=["-323232", "123"]).build())

        assert status.message == (
            "App ID(s) 123 not found in this subscription (apps with tagged pages: -323232, 5629499534213120, "
            "6253630842798080); check `app_ids`."
        )

    @HttpMocker()
    def test_check_makes_one_call_and_does_not_retry(self, http_mocker: HttpMocker) -> None:
        request = _pages_request()
        http_mocker.get(request, text_response("unavailable", 503))

        status = _check(ConfigBuilder().build())

        assert status.status == Status.FAILED
        assert "answered HTTP 503" in status.message
        http_mocker.assert_number_of_calls(request, 1)


def test_check_unreachable_host_names_the_host_and_the_settings() -> None:
    status = _check(ConfigBuilder().with_(base_url="http://127.0.0.1:1").build())

    assert status.status == Status.FAILED
    assert status.message.startswith(
        "Could not reach Pendo at http://127.0.0.1:1/api/v1 (the connection was refused)."
    )
    assert "`region`" in status.message and "`base_url`" in status.message


def test_check_invalid_config_fails_before_any_call() -> None:
    status = _check(ConfigBuilder().with_(region="mars").build())

    assert status.status == Status.FAILED
    assert status.message.startswith("`region` 'mars' is not a Pendo region")
