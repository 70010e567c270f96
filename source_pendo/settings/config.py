"""The connector's config: actionable validation, defaults and the values derived from it.

Validation runs before any network call (run.py calls it for check, discover and read) and raises one
`AirbyteTracedException(failure_type=config_error)` whose message names the field and says how to fix it.
The bounds, enums and defaults below mirror the spec in manifest.yaml; a unit test keeps the two equal.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from ..clock import now_ms
from ..pendo import DAY_MS, HOUR_MS
from . import filters as activity_filters
from .custom_aggregations import complete_custom_aggregations, validate_custom_aggregations
from .dates import EARLIEST_START, date_or_none, parse_start_date

REGION_HOSTS: dict[str, str] = {
    "us": "https://app.pendo.io",
    "us1": "https://us1.app.pendo.io",
    "eu": "https://app.eu.pendo.io",
    "jpn": "https://app.jpn.pendo.io",
    "au": "https://app.au.pendo.io",
}
API_PATH = "/api/v1"
PERIODS = ("DAY", "HOUR")

DEFAULTS: dict[str, Any] = {
    "region": "us",
    "period": "DAY",
    "app_ids": [],
    "include_anonymous_visitors": False,
    "lookback_window_days": 1,
    "page_size": 50_000,
    "concurrency": 4,
    "request_timeout_seconds": 300,
    "custom_aggregations": [],
    "backfill_new_tags": True,
    "tag_settle_days": 2,
    "response_deadline_seconds": 600,
    "track_events_lookback_window_days": 7,
}
RANGES: dict[str, tuple[int, int]] = {
    "lookback_window_days": (0, 365),
    "page_size": (1_000, 500_000),
    "concurrency": (1, 16),
    "request_timeout_seconds": (10, 3_600),
    "tag_settle_days": (0, 30),
    "response_deadline_seconds": (1, 86_400),
    "track_events_lookback_window_days": (0, 365),
}

_APP_ID = re.compile(r"-?[0-9]{1,19}")  # fullmatch: a signed 64-bit integer's digits, as Pendo's app ids
MAX_APP_ID = 2**63 - 1
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: a UUID with a region suffix


def _config_error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(
        message=message, internal_message=message, failure_type=FailureType.config_error
    )


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise a config_error naming the first invalid field; never include the api_key in a message."""
    api_key = config.get("api_key")
    if not isinstance(api_key, str) or not api_key.strip():
        raise _config_error(
            "`api_key` is empty: paste a Pendo integration key (Settings > Integrations > Integration Keys; "
            'with "Allow Write Access" on, which Pendo requires for aggregation queries).'
        )
    if not _KEY_CHARACTERS.fullmatch(api_key):
        # Never echo the key. requests would refuse it as a header value with an error that quotes it.
        raise _config_error(
            "`api_key` contains a space, a line break or a character an integration key never has (often a "
            "newline pasted with it): paste the key alone, as Pendo shows it under Settings > Integrations > "
            "Integration Keys."
        )

    region = config.get("region", DEFAULTS["region"])
    if not isinstance(region, str) or region not in REGION_HOSTS:
        raise _config_error(
            f"`region` '{region}' is not a Pendo region: use one of {', '.join(REGION_HOSTS)} "
            "(the host your Pendo subscription lives on)."
        )

    base_url = config.get("base_url")
    if base_url is None:
        base_url = ""
    if not isinstance(base_url, str):  # also [], {}, 0 or false: not "empty", a wrong type
        raise _config_error(
            f"`base_url` must be text such as https://app.pendo.io (or left empty to use `region`), not {base_url!r}."
        )
    base_url = base_url.strip()
    if base_url:
        if not _SCHEME.match(base_url):
            raise _config_error(
                f"`base_url` '{base_url}' needs a scheme: write https://{base_url.rstrip('/')} (without /api/v1)."
            )
        if not base_url.startswith("https://") and not _plain_http_on_this_machine(base_url):
            raise _config_error(
                f"`base_url` '{base_url}' must start with https://: the integration key never travels unencrypted "
                "(plain http is accepted only for a server on this machine, such as a test server on localhost, "
                "127.0.0.1 or [::1])."
            )
        if base_url.rstrip("/").endswith(API_PATH):
            raise _config_error(
                f"`base_url` '{base_url}' must not end with {API_PATH}: the connector adds it; "
                f"write {base_url.rstrip('/')[: -len(API_PATH)]}."
            )

    start_date = config.get("start_date")
    if start_date in (None, ""):
        raise _config_error(
            "`start_date` is missing: set it to the first UTC day of activity to read, as YYYY-MM-DD (e.g. "
            "2024-01-01; accounts, visitors and the catalogue are read whole whatever it says). Configs of "
            "source-pendo before 1.0.0 held only `api_key`: see the migration guide, "
            "https://docs.airbyte.com/integrations/sources/pendo-migrations."
        )
    start = date_or_none(start_date)
    if start is None:
        raise _config_error(
            f"`start_date` '{start_date}' is not a date: write YYYY-MM-DD or a UTC timestamp such as "
            "2024-01-31T00:00:00Z."
        )
    if start < parse_start_date(EARLIEST_START):
        raise _config_error(
            f"`start_date` {start_date} is before {EARLIEST_START}, the earliest allowed: Pendo was founded in 2013 "
            f"and holds no earlier data; use {EARLIEST_START} or later."
        )
    if start.timestamp() * 1000 > now_ms():
        raise _config_error(
            f"`start_date` {start_date} is in the future: Pendo has no data after now; use today or an earlier date."
        )

    end_date = config.get("end_date")
    if end_date not in (None, ""):
        end = date_or_none(end_date)
        if end is None:
            raise _config_error(
                f"`end_date` '{end_date}' is not a date: write YYYY-MM-DD (that whole day is read) or a UTC "
                "timestamp such as 2024-01-31T23:00:00Z, or leave it empty to read up to now."
            )
        if end <= start:
            raise _config_error(
                f"`end_date` {end_date} is not after `start_date` {start_date}: activity is read from start_date "
                "up to end_date (a date includes its whole day); set an end_date later than start_date."
            )

    try:
        activity_filters.parse(config.get("filters"))
    except activity_filters.FilterError as error:
        raise _config_error(str(error)) from None

    period = config.get("period", DEFAULTS["period"])
    if period not in PERIODS:
        raise _config_error(f"`period` '{period}' is not supported: use DAY or HOUR.")

    app_ids = config.get("app_ids", DEFAULTS["app_ids"])
    if not isinstance(app_ids, list):
        raise _config_error(
            '`app_ids` must be a list of numeric app ids, e.g. ["-323232"], or empty for all apps.'
        )
    invalid = [app_id for app_id in app_ids if not is_app_id(app_id)]
    if invalid:
        shown = ", ".join(repr(_shorten(str(app_id))) for app_id in invalid)
        raise _config_error(
            f"`app_ids` must hold Pendo app ids, whole numbers such as -323232 or 5629499534213120 (at most 19 "
            f"digits); not an app id: {shown}."
        )

    lookback = config.get("lookback_window_days", DEFAULTS["lookback_window_days"])
    if isinstance(lookback, int) and not isinstance(lookback, bool) and lookback < 0:
        raise _config_error(
            f"`lookback_window_days` is {lookback}: it cannot be negative; use 0 to re-read nothing."
        )

    backfill = config.get("backfill_new_tags", DEFAULTS["backfill_new_tags"])
    if not isinstance(backfill, bool):
        raise _config_error(f"`backfill_new_tags` is {backfill!r}: it must be true or false.")

    for field, (low, high) in RANGES.items():
        value = config.get(field, DEFAULTS[field])
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _config_error(f"`{field}` is {value!r}: it must be a whole number from {low} to {high}.")

    validate_custom_aggregations(config)
    _check_against_spec(config)


def _check_against_spec(config: Mapping[str, Any]) -> None:
    """The spec's own JSON-schema check, which the CDK runs next and would otherwise end in a traceback with a
    message naming no field (`[] is not of type 'boolean'`): whatever the checks above let through (a setting
    of the wrong type such as `include_anonymous_visitors: []` or `base_url: []`) gets one config error."""
    import jsonschema

    from .spec import spec_message

    schema = spec_message()["spec"]["connectionSpecification"]
    # what the CDK checks: the config the source runs with (complete_config: defaults, trimmed app ids, no nulls)
    user = {key: value for key, value in complete_config(config).items() if not str(key).startswith("__")}
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(user), key=lambda e: list(map(str, e.path))
    )
    if not errors:
        return
    error = errors[0]
    field = str(error.path[0]) if error.path else None
    if field is None:
        raise _config_error(f"The config is not valid for this connector: {_shorten(error.message, 200)}.")
    value = "(hidden)" if field == "api_key" else _shorten(repr(config.get(field)))
    wanted = (schema.get("properties", {}).get(field) or {}).get("type") or error.validator
    raise _config_error(
        f"`{field}` is {value}, which this setting does not accept (expected {wanted}"
        f"{'' if error.validator == 'type' else f'; {error.validator} {_shorten(repr(error.validator_value))}'}): "
        "fix it in the source's settings, or remove it to use the default."
    )


def _plain_http_on_this_machine(base_url: str) -> bool:
    """An http URL whose host is this machine (a loopback name or address): the only plain http accepted."""
    if not base_url.startswith("http://"):  # ignore-https-check: the loopback exception is checked here
        return False
    try:
        host = urlsplit(base_url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_app_id(value: Any) -> bool:
    """A Pendo app id (a signed 64-bit integer), as text or a number; surrounding whitespace is trimmed."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    text = str(value).strip() if isinstance(value, str) else str(value) if abs(value) <= MAX_APP_ID else ""
    return bool(_APP_ID.fullmatch(text)) and abs(int(text)) <= MAX_APP_ID


def app_ids(config: Mapping[str, Any]) -> list[str]:
    """`app_ids` as trimmed text, each once in the order given (the state is keyed by them)."""
    ids = config.get("app_ids") or []
    return list(dict.fromkeys(str(app_id).strip() for app_id in ids)) if isinstance(ids, list) else []


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def api_base(config: Mapping[str, Any]) -> str:
    """`base_url` (proxies, tests) or the region's host, followed by /api/v1."""
    base_url = str(config.get("base_url") or "").strip()
    host = base_url or REGION_HOSTS[config.get("region") or DEFAULTS["region"]]
    return host.rstrip("/") + API_PATH


def start_ms(config: Mapping[str, Any]) -> int:
    """`start_date` as epoch milliseconds, the unit of every Pendo timestamp."""
    return int(parse_start_date(config["start_date"]).timestamp() * 1000)


def end_ms(config: Mapping[str, Any]) -> int | None:
    """The exclusive end of the activity read, in epoch ms, or None without `end_date`.

    `end_date` is inclusive: a date includes its whole day (the next midnight UTC); a timestamp includes the
    hour holding it (the next whole hour), as start_date's hour is read whole: Pendo's smallest bucket is an
    hour.
    """
    value = config.get("end_date")
    if not isinstance(value, str) or not value:
        return None
    moment = int(parse_start_date(value).timestamp() * 1000)
    if len(value) == 10:
        return moment + DAY_MS
    return moment - moment % HOUR_MS + HOUR_MS


def complete_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config the manifest reads: defaults filled in and `api_base` derived.

    Lenient on purpose (an unknown region leaves `api_base` out): validation is `validate_config`'s job.
    """
    completed = {**DEFAULTS, **{key: value for key, value in config.items() if value is not None}}
    if "filters" in completed:  # a value written bare, as before 1.0.0, in the spec's form (filters.py)
        completed["filters"] = activity_filters.in_spec_form(completed["filters"])
    if isinstance(completed["app_ids"], list):
        completed["app_ids"] = app_ids(completed)
    region = completed["region"]
    if str(completed.get("base_url") or "").strip() or (isinstance(region, str) and region in REGION_HOSTS):
        completed["api_base"] = api_base(completed)
    with contextlib.suppress(KeyError, TypeError, ValueError):  # reported by validate_config
        completed["start_ms"] = start_ms(completed)
    complete_custom_aggregations(completed)
    return completed
