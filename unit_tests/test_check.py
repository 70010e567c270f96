"""check: one GET /page?expand=* without retries, one actionable message per failure."""

from __future__ import annotations

import logging
from unittest import TestCase

from airbyte_cdk.models import AirbyteConnectionStatus, Status
from airbyte_cdk.test.mock_http import HttpMocker
from builders import API_KEY, ConfigBuilder, get_request, json_response, payload, text_response

from source_pendo.source import SourcePendo

_LOGGER = logging.getLogger("airbyte")


def _check(config: dict) -> AirbyteConnectionStatus:
    return SourcePendo(config=config).check(_LOGGER, config)


def _pages_request():
    return get_request("page", expand="*")


class CheckTest(TestCase):
    @HttpMocker()
    def test_check_succeeds_when_pendo_lists_pages(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
        assert _check(ConfigBuilder().build()).status == Status.SUCCEEDED

    @HttpMocker()
    def test_check_succeeds_when_every_configured_app_has_pages(self, http_mocker: HttpMocker) -> None:
        http_mocker.get(_pages_request(), json_response(payload("pages")))
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
            "create or copy a key in Pendo under Settings > Integrations > Integration Keys (read access is enough)."
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
    assert status.message.startswith("Could not reach Pendo at http://127.0.0.1:1/api/v1 (ConnectionError).")
    assert "`region`" in status.message and "`base_url`" in status.message


def test_check_invalid_config_fails_before_any_call() -> None:
    status = _check(ConfigBuilder().with_(region="mars").build())

    assert status.status == Status.FAILED
    assert status.message.startswith("`region` 'mars' is not a Pendo region")
