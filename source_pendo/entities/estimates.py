"""Pendo's count of accounts and visitors before a full read: the streams' size estimate, and their check.

Before a sync reads `accounts` or `visitors` from the beginning (full refresh, or no saved state), one
aggregation `count` over the same source the stream reads gives the number of records it will emit; the
platform shows it as the stream's progress, and the read is held to it (`COUNTS`, checked by the keyset
paginator when the last page is read: fewer rows than counted stops the stream, BEHAVIOR.md §B-22). The count
is a courtesy where it fails: the failure is logged and the sync goes on unchecked (the stream's own requests
have the retries and the error messages).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteTraceMessage,
    ConfiguredAirbyteCatalog,
    EstimateType,
    SyncMode,
    TraceType,
    Type,
)

from ..http.quick import quick_aggregation
from ..pendo import EVERY_APP, count_in


class EntityCounts:
    """Pendo's count of each entity stream read in full this sync (thread-safe): what its read is held to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def expect(self, stream: str, count: int) -> None:
        with self._lock:
            self._counts[stream] = count

    def expected(self, stream: str) -> int | None:
        with self._lock:
            return self._counts.get(stream)


COUNTS = EntityCounts()


def _count_source(stream: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The aggregation source the stream reads (manifest.yaml, entity_aggregation_requester)."""
    if stream == "visitors":  # every app's visitors, whatever app_ids says (BEHAVIOR.md §R-2)
        identified = not config.get("include_anonymous_visitors", False)
        return {"visitors": {"identified": identified, "appId": EVERY_APP}}
    return {"accounts": {"appId": config.get("app_ids") or EVERY_APP}}


def entity_estimates(
    config: Mapping[str, Any],
    catalog: ConfiguredAirbyteCatalog,
    state: list[AirbyteStateMessage] | None,
    logger: logging.Logger,
) -> Iterator[AirbyteMessage]:
    saved = {
        s.stream.stream_descriptor.name for s in state or [] if s.stream is not None and s.stream.stream_state
    }
    for configured in catalog.streams:
        name = configured.stream.name
        if name not in ("accounts", "visitors"):
            continue
        if configured.sync_mode == SyncMode.incremental and name in saved:
            continue  # an incremental sync reads what changed: its size is not known up front
        try:
            response = quick_aggregation(
                config, [{"source": _count_source(name, config)}, {"count": None}], f"{name}-count"
            )
            response.raise_for_status()
            count = count_in(response.json())
        except Exception as error:  # an estimate must never fail the sync
            logger.info(f"{name}: no size estimate ({type(error).__name__}); reading without one.")
            continue
        logger.info(f"{name}: Pendo counts {count} records to read.")
        COUNTS.expect(name, count)
        yield AirbyteMessage(
            type=Type.TRACE,
            trace=AirbyteTraceMessage(
                type=TraceType.ESTIMATE,
                emitted_at=time.time() * 1000,
                estimate=AirbyteEstimateTraceMessage(name=name, type=EstimateType.STREAM, row_estimate=count),
            ),
        )
