"""One plain GET to Pendo for the Python paths that must answer fast and never retry: `check` and the
metadata-schema lookup behind discover. Streams go through the manifest's requesters instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from ..pendo import aggregation_body
from ..settings.config import DEFAULTS, api_base
from .transport import install

install()  # no redirect to another origin with the key (http/transport.py)

API_KEY_HEADER = "x-pendo-integration-key"
QUICK_TIMEOUT_SECONDS = 30


def quick_get(
    config: Mapping[str, Any], endpoint: str, params: Mapping[str, str] | None = None
) -> requests.Response:
    """GET {api_base}/{endpoint} with the integration key; timeout min(request_timeout_seconds, 30) s."""
    return requests.get(
        f"{api_base(config)}/{endpoint}",
        params=params,
        headers={API_KEY_HEADER: config["api_key"]},
        timeout=_quick_timeout(config),
    )


def quick_aggregation(
    config: Mapping[str, Any], pipeline: list[dict[str, Any]], name: str
) -> requests.Response:
    """POST {api_base}/aggregation with `pipeline` (named `source-pendo-<name>`); key header and timeout as `quick_get`."""
    return requests.post(
        f"{api_base(config)}/aggregation",
        json=aggregation_body(name, pipeline),
        headers={API_KEY_HEADER: config["api_key"]},
        timeout=_quick_timeout(config),
    )


def _quick_timeout(config: Mapping[str, Any]) -> float:
    return float(
        min(
            config.get("request_timeout_seconds") or DEFAULTS["request_timeout_seconds"],
            QUICK_TIMEOUT_SECONDS,
        )
    )
