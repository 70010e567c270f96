"""`check`: two cheap calls, GET /page?expand=* and a one-row aggregation, each failure one actionable message.

The GET proves host, region and key; the aggregation (`pages` source, `limit 1`) proves the key may run
aggregation queries, which Pendo allows only with "Allow Write Access" on the key (BEHAVIOR.md §R-14): a
read-only key passes every GET and is refused every aggregation. A 403 whose body names a rate limit is
throttling (BEHAVIOR.md §R-13): asked again after a short pause, never reported as a wrong key.

Why the manifest cannot say it: `CheckStream` reads a stream through the retrying requester (a dead host
would take minutes to report), its messages cannot name the region a key's suffix points to, and it cannot
compare `app_ids` with the apps the subscription really has.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from airbyte_cdk.models import AirbyteConnectionStatus, Status
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .custom.sample import check_custom_aggregations
from .http.messages import KEYS_PAGE, WRITE_ACCESS, body_start, is_rate_limited, wrong_region
from .http.quick import quick_aggregation, quick_get
from .http.transport import RedirectRefused, connection_cause
from .pendo import EVERY_APP
from .settings.config import DEFAULTS, api_base, validate_config

THROTTLED_ATTEMPTS = 3
THROTTLED_PAUSE_SECONDS = 2.0


def _failed(message: str) -> AirbyteConnectionStatus:
    return AirbyteConnectionStatus(status=Status.FAILED, message=message)


def _throttled(host: str) -> AirbyteConnectionStatus:
    return _failed(
        f"Pendo kept throttling the check (HTTP 403 naming a rate limit from {host}); try again later."
    )


def _unthrottled(send: Callable[[], requests.Response]) -> requests.Response:
    """`send()`, asked again after a pause while Pendo answers 403 naming a rate limit (at most 3 times)."""
    response = send()
    for _ in range(THROTTLED_ATTEMPTS - 1):
        if response.status_code != 403 or not is_rate_limited(response):
            break
        time.sleep(THROTTLED_PAUSE_SECONDS)
        response = send()
    return response


def _app_ids(pages: Iterable[Any]) -> set[int]:
    found: set[int] = set()
    for page in pages:
        if not isinstance(page, dict):
            continue
        for app_id in [page.get("appId"), *(page.get("appIds") or [])]:
            try:
                found.add(int(app_id))
            except (TypeError, ValueError):
                continue
    return found


def check_connection(config: Mapping[str, Any], logger: logging.Logger) -> AirbyteConnectionStatus:
    try:
        validate_config(config)
    except AirbyteTracedException as error:
        return _failed(str(error))

    host = api_base(config)
    try:
        response = _unthrottled(lambda: quick_get(config, "page", {"expand": "*"}))
    except RedirectRefused as error:
        return _failed(str(error))
    except (requests.ConnectionError, requests.Timeout) as error:
        logger.info(f"check: GET {host}/page failed: {type(error).__name__}")
        return _failed(
            f"Could not reach Pendo at {host} ({connection_cause(error) or type(error).__name__}). Check `region` "
            f"(currently {config.get('region', DEFAULTS['region'])}) and `base_url`, and that this host is reachable "
            "from where the connector runs."
        )

    if response.status_code in (401, 403):
        if is_rate_limited(response):
            return _throttled(host)
        return _failed(
            f"Pendo rejected the integration key (HTTP {response.status_code} from {host}). Check `api_key`: "
            f'create or copy a key in Pendo under {KEYS_PAGE}, with "Allow Write Access" on (Pendo requires it '
            "for aggregation queries; the connector never writes)."
        )
    if response.status_code == 400:
        return _failed(wrong_region(config))
    if response.status_code in (404, 405):
        return _failed(
            f"{host}/page answered HTTP {response.status_code} (not found): the URL is wrong. Check `base_url` "
            "(it must be the Pendo API host, e.g. https://app.pendo.io, without a path; /api/v1 is added) or "
            f"leave it empty and set `region` (currently {config.get('region') or DEFAULTS['region']})."
        )
    if not response.ok:
        return _failed(
            f"{host}/page answered HTTP {response.status_code}; Pendo may be down, try again later."
        )
    try:
        pages = response.json()
    except ValueError:
        return _failed(
            f"{host}/page did not answer JSON: check `base_url` (it must point at a Pendo API host)."
        )

    wanted = config.get("app_ids") or []
    found = _app_ids(pages if isinstance(pages, list) else [])
    missing = [app_id for app_id in wanted if int(app_id) not in found]
    if missing:
        known = ", ".join(str(app_id) for app_id in sorted(found)) or "none"
        return _failed(
            f"App ID(s) {', '.join(missing)} not found in this subscription "
            f"(apps with tagged pages: {known}); check `app_ids`."
        )
    return _check_aggregation(config, logger)


def _check_aggregation(config: Mapping[str, Any], logger: logging.Logger) -> AirbyteConnectionStatus:
    """One row of the `pages` source: the key may run aggregation queries (needs write access, §R-14)."""
    host = api_base(config)
    pipeline: list[dict[str, Any]] = [
        {"source": {"pages": {"appId": config.get("app_ids") or EVERY_APP}}},
        {"limit": 1},
    ]
    try:
        response = _unthrottled(lambda: quick_aggregation(config, pipeline, "check"))
    except RedirectRefused as error:
        return _failed(str(error))
    except (requests.ConnectionError, requests.Timeout) as error:
        logger.info(f"check: POST {host}/aggregation failed: {type(error).__name__}")
        return _failed(
            f"Could not reach Pendo's aggregation API at {host}/aggregation ({type(error).__name__}); try again later."
        )
    if response.status_code in (401, 403):
        if is_rate_limited(response):
            return _throttled(host)
        return _failed(
            f"The integration key can read but Pendo refused an aggregation query with it (HTTP "
            f"{response.status_code} from {host}/aggregation): the key lacks write access. {WRITE_ACCESS}"
        )
    if response.status_code == 400:
        return _failed(
            f"Pendo refused an aggregation query (HTTP 400 from {host}/aggregation: "
            f'"{body_start(response, config)}") although the same key and host serve GET /page: the '
            "subscription's plan may lack access to Pendo's Aggregation API, or its key may not use it."
        )
    if not response.ok:
        return _failed(
            f"{host}/aggregation answered HTTP {response.status_code}; Pendo may be down, try again later."
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("results") or [], list):
        return _failed(f"{host}/aggregation did not answer an aggregation result: check `base_url`.")
    return check_custom_aggregations(config, logger)  # each custom stream's pipeline, as Pendo judges it
