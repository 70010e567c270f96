"""One small request of a custom aggregation stream: `check` runs it (a pipeline Pendo rejects fails check with
Pendo's message, naming the stream) and `discover` infers a schema from it (custom/schema.py).

The request is the stream's own body (custom/bodies.py) for the most recent complete period of the first
app partition (activity sources) or the first rows (other sources), with a small `limit`, sent once without
retries like check's other calls (http/quick.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import requests
from airbyte_cdk.models import AirbyteConnectionStatus, Status

from ..clock import now_ms
from ..http.messages import body_start
from ..http.quick import quick_aggregation
from ..http.transport import RedirectRefused
from ..pendo import PERIOD_MS
from ..settings.custom_aggregations import (
    SAMPLE_LIMIT,
    CustomAggregation,
    parse_custom_aggregations,
)
from .bodies import request_body


def sample_pipeline(
    config: Mapping[str, Any], entry: CustomAggregation, limit: int = SAMPLE_LIMIT
) -> list[Any]:
    """The pipeline of a sample: the last complete period of the first app partition, or the first rows."""
    if not entry.is_activity:
        body = request_body(entry, config, limit)
    else:
        length = PERIOD_MS[str(config.get("period") or "DAY")]
        bucket = now_ms() // length * length - length
        apps = list(config.get("app_ids") or [])
        body = request_body(entry, config, limit, apps[0] if apps else "*", bucket + length - 1)
    pipeline: list[Any] = body["request"]["pipeline"]
    return pipeline


def sample_rows(
    config: Mapping[str, Any], entry: CustomAggregation, limit: int = SAMPLE_LIMIT
) -> requests.Response:
    return quick_aggregation(config, sample_pipeline(config, entry, limit), entry.name)


def check_custom_aggregations(config: Mapping[str, Any], logger: logging.Logger) -> AirbyteConnectionStatus:
    """Each custom stream's pipeline, once with `limit` 1: the first one Pendo refuses fails check with Pendo's
    answer (its start, the key masked), naming the stream."""
    for entry in parse_custom_aggregations(config):
        try:
            response = sample_rows(config, entry, limit=1)
        except RedirectRefused as error:
            return AirbyteConnectionStatus(status=Status.FAILED, message=str(error))
        except (requests.ConnectionError, requests.Timeout) as error:
            logger.info(f"check: custom stream {entry.name}: {type(error).__name__}")
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=f"Custom aggregation stream `{entry.name}`: Pendo did not answer its pipeline ({type(error).__name__}); try again later.",
            )
        if 400 <= response.status_code < 500:
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=(
                    f"Custom aggregation stream `{entry.name}`: Pendo rejected its pipeline (HTTP {response.status_code}): "
                    f'"{body_start(response, config)}". Fix the `source` or `pipeline` of custom_aggregations entry '
                    f"`{entry.name}` (the stages Pendo documents: filter, select, eval, group, sort, limit, unwind ...)."
                ),
            )
        if not response.ok:
            return AirbyteConnectionStatus(
                status=Status.FAILED,
                message=f"Custom aggregation stream `{entry.name}`: Pendo answered HTTP {response.status_code} to its pipeline; Pendo may be down, try again later.",
            )
    return AirbyteConnectionStatus(status=Status.SUCCEEDED)
