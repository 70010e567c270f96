"""validate_config: one actionable config_error per bad field; api_base and start_ms; spec and code agree."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from builders import API_KEY, ConfigBuilder

from source_pendo.settings.config import (
    DEFAULTS,
    RANGES,
    REGION_HOSTS,
    api_base,
    complete_config,
    start_ms,
    validate_config,
)
from source_pendo.source import MANIFEST_PATH

NOW_MS = 1_779_286_800_000  # 2026-05-20T14:20Z: the connector's clock in this module, not the wall clock
TOMORROW = "2026-05-21"


@pytest.fixture(autouse=True)
def _clock_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """`start_date` in the future is judged by the connector's clock (source_pendo/clock.py): pin it."""
    monkeypatch.setenv("SOURCE_PENDO_NOW_MS", str(NOW_MS))


def _message(**fields: Any) -> str:
    config = ConfigBuilder().with_(**fields).build()
    with pytest.raises(AirbyteTracedException) as raised:
        validate_config({k: v for k, v in config.items() if v is not None})
    assert raised.value.failure_type == FailureType.config_error
    assert API_KEY not in raised.value.message
    return raised.value.message


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"api_key": ""}, "`api_key` is empty"),
        ({"api_key": "   "}, "`api_key` is empty"),
        ({"api_key": None}, "`api_key` is empty"),
        ({"api_key": API_KEY + "\n"}, "`api_key` contains a space, a line break"),
        ({"api_key": " " + API_KEY}, "`api_key` contains a space, a line break"),
        ({"api_key": API_KEY[:4] + "\u00e9" + API_KEY[4:]}, "`api_key` contains a space, a line break"),
        ({"region": "mars"}, "`region` 'mars' is not a Pendo region: use one of us, us1, eu, jpn, au"),
        ({"start_date": "2024-13-45"}, "`start_date` '2024-13-45' is not a date: write YYYY-MM-DD"),
        ({"start_date": "01/31/2024"}, "`start_date` '01/31/2024' is not a date"),
        ({"start_date": "2024-01-31T00:00:00+02:00"}, "is not a date"),
        ({"start_date": None}, "`start_date` is missing: set it to the first UTC day of activity to read"),
        ({"start_date": ""}, "`start_date` is missing"),
        ({"start_date": TOMORROW}, f"`start_date` {TOMORROW} is in the future"),
        (
            {"start_date": "2026-05-20T14:20:00.001Z"},
            "`start_date` 2026-05-20T14:20:00.001Z is in the future",
        ),
        ({"period": "WEEK"}, "`period` 'WEEK' is not supported: use DAY or HOUR."),
        ({"app_ids": ["-323232", "web app"]}, "not an app id: 'web app'."),
        (
            {"app_ids": ["9" * 5000]},
            "not an app id: '9999999999999999999999999999999999999999… (5000 characters)'.",
        ),
        ({"app_ids": ["9223372036854775808"]}, "(at most 19 digits); not an app id: '9223372036854775808'."),
        ({"app_ids": [True]}, "not an app id: 'True'."),
        ({"app_ids": ["1\n2"]}, "not an app id"),
        ({"region": ["us", "eu"]}, "`region` '['us', 'eu']' is not a Pendo region"),
        ({"base_url": 42}, "`base_url` must be text such as https://app.pendo.io"),
        ({"start_date": "0001-01-01"}, "`start_date` 0001-01-01 is before 2013-01-01, the earliest allowed"),
        ({"start_date": "2012-12-31T23:59:59Z"}, "is before 2013-01-01, the earliest allowed"),
        ({"app_ids": "-323232"}, "`app_ids` must be a list"),
        ({"lookback_window_days": -1}, "`lookback_window_days` is -1: it cannot be negative"),
        (
            {"lookback_window_days": 366},
            "`lookback_window_days` is 366: it must be a whole number from 0 to 365.",
        ),
        ({"page_size": 999}, "`page_size` is 999: it must be a whole number from 1000 to 500000."),
        ({"page_size": 500_001}, "`page_size` is 500001"),
        ({"concurrency": 0}, "`concurrency` is 0: it must be a whole number from 1 to 16."),
        ({"concurrency": 17}, "`concurrency` is 17"),
        (
            {"request_timeout_seconds": 5},
            "`request_timeout_seconds` is 5: it must be a whole number from 10 to 3600.",
        ),
        ({"request_timeout_seconds": "300"}, "`request_timeout_seconds` is '300'"),
        ({"backfill_new_tags": "yes"}, "`backfill_new_tags` is 'yes': it must be true or false."),
        ({"tag_settle_days": 31}, "`tag_settle_days` is 31: it must be a whole number from 0 to 30."),
        (
            {"response_deadline_seconds": 0},
            "`response_deadline_seconds` is 0: it must be a whole number from 1 to 86400.",
        ),
        (
            {"base_url": "app.pendo.io"},
            "`base_url` 'app.pendo.io' needs a scheme: write https://app.pendo.io (without /api/v1).",
        ),
        ({"base_url": "ftp://proxy.example.com"}, "must start with https://"),
        (
            {"base_url": "http://proxy.example.com"},
            "must start with https://: the integration key never travels",
        ),
        ({"base_url": "http://127.0.0.1.example.com"}, "must start with https://"),
        ({"base_url": "http://10.0.0.1:8080"}, "plain http is accepted only for a server on this machine"),
        ({"base_url": "https://proxy.example.com/api/v1"}, "must not end with /api/v1"),
    ],
)
def test_config_invalid_field_gets_one_actionable_message(fields: dict[str, Any], expected: str) -> None:
    assert expected in _message(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"start_date": "2024-01-31T00:00:00Z", "region": "eu", "period": "HOUR"},
        {"start_date": "2024-01-31T00:00:00.123Z", "app_ids": ["-323232", "5629499534213120"]},
        {"base_url": "http://127.0.0.1:8080/prefix/", "lookback_window_days": 0, "page_size": 1000},
        {"concurrency": 16, "request_timeout_seconds": 3600, "include_anonymous_visitors": True},
        {"start_date": "2026-05-20"},  # today, by the pinned clock
        {"start_date": "2013-01-01"},  # the earliest allowed
        {"app_ids": ["5629499534213120\n", " -323232 ", 5629499534213121, "9223372036854775807"]},
        {"start_date": "2026-05-20T14:20:00Z"},  # now exactly
        {"backfill_new_tags": True, "tag_settle_days": 0},
    ],
)
def test_config_valid_configs_pass(fields: dict[str, Any]) -> None:
    validate_config(ConfigBuilder().with_(**fields).build())


@pytest.mark.parametrize(("region", "host"), sorted(REGION_HOSTS.items()))
def test_config_api_base_is_the_region_host_plus_api_v1(region: str, host: str) -> None:
    assert api_base({"region": region}) == f"{host}/api/v1"


def test_config_api_base_defaults_to_us() -> None:
    assert api_base({}) == "https://app.pendo.io/api/v1"


def test_config_base_url_overrides_the_region_and_keeps_its_path_prefix() -> None:
    assert (
        api_base({"region": "eu", "base_url": "http://proxy:8080/pendo/"}) == "http://proxy:8080/pendo/api/v1"
    )


def test_config_start_ms_reads_both_formats_as_utc() -> None:
    assert start_ms({"start_date": "2024-01-31"}) == 1706659200000
    assert start_ms({"start_date": "2024-01-31T12:00:00Z"}) == 1706702400000


def test_config_complete_config_fills_defaults_and_derives_api_base() -> None:
    completed = complete_config({"api_key": "k", "start_date": "2024-01-01", "app_ids": [-323232]})
    assert completed["page_size"] == 50_000
    assert completed["app_ids"] == ["-323232"]
    assert completed["api_base"] == "https://app.pendo.io/api/v1"


def test_config_app_ids_are_trimmed_and_kept_once_in_order() -> None:
    config = ConfigBuilder().with_(app_ids=["5629499534213120\n", " -323232", "5629499534213120", 7]).build()
    assert complete_config(config)["app_ids"] == ["5629499534213120", "-323232", "7"]


def test_config_constants_match_the_spec() -> None:
    spec = yaml.safe_load(MANIFEST_PATH.read_text())["spec"]["connection_specification"]["properties"]
    assert {name: spec[name]["default"] for name in DEFAULTS} == DEFAULTS
    assert {name: (spec[name]["minimum"], spec[name]["maximum"]) for name in RANGES} == RANGES
    assert spec["region"]["enum"] == list(REGION_HOSTS)


@pytest.mark.parametrize(
    "fields,expected",
    [
        (
            {"include_anonymous_visitors": []},
            "`include_anonymous_visitors` is [], which this setting does not accept",
        ),
        ({"include_anonymous_visitors": "yes"}, "(expected boolean)"),
        ({"base_url": []}, "`base_url` must be text"),
        ({"base_url": 0}, "`base_url` must be text"),
    ],
)
def test_config_a_setting_of_the_wrong_type_is_named_not_left_to_the_cdk_schema_check(
    fields: dict[str, Any], expected: str
) -> None:
    """Found by the fuzz test: a falsy value of the wrong type passed the checks and the CDK's spec check then
    failed with a traceback naming no setting (`[] is not of type 'boolean'`)."""
    assert expected in _message(**fields)
