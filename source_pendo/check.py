"""`check`: one cheap call, GET /page?expand=*, turned into one actionable message per failure.

Why the manifest cannot say it: `CheckStream` reads a stream through the retrying requester (a dead host
would take minutes to report), its messages cannot name the region a key's suffix points to, and it cannot
compare `app_ids` with the apps the subscription really has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from airbyte_cdk.models import AirbyteConnectionStatus, Status
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_pendo.api import quick_get
from source_pendo.config import DEFAULTS, REGION_HOSTS, api_base, validate_config

KEYS_PAGE = "Settings > Integrations > Integration Keys"


def _failed(message: str) -> AirbyteConnectionStatus:
    return AirbyteConnectionStatus(status=Status.FAILED, message=message)


def _wrong_region(config: Mapping[str, Any]) -> str:
    """The 400 message, naming the region a region-suffixed key (`….eu`) points to when it is another one."""
    message = (
        f"{api_base(config)} answered 400, which is how Pendo answers a valid key used against another "
        f"region's host; set `region` to the subscription's region ({', '.join(REGION_HOSTS)}) or fix `base_url`."
    )
    suffix = str(config.get("api_key", "")).rsplit(".", 1)[-1].lower()
    if suffix in REGION_HOSTS and suffix != config.get("region", DEFAULTS["region"]):
        message += f" The key ends with .{suffix}, which suggests region {suffix}."
    return message


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
        response = quick_get(config, "page", {"expand": "*"})
    except (requests.ConnectionError, requests.Timeout) as error:
        logger.info(f"check: GET {host}/page failed: {type(error).__name__}")
        return _failed(
            f"Could not reach Pendo at {host} ({type(error).__name__}). Check `region` "
            f"(currently {config.get('region', DEFAULTS['region'])}) and `base_url`, and that this host is reachable "
            "from where the connector runs."
        )

    if response.status_code in (401, 403):
        return _failed(
            f"Pendo rejected the integration key (HTTP {response.status_code} from {host}). Check `api_key`: "
            f"create or copy a key in Pendo under {KEYS_PAGE} (read access is enough)."
        )
    if response.status_code == 400:
        return _failed(_wrong_region(config))
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
    return AirbyteConnectionStatus(status=Status.SUCCEEDED)
