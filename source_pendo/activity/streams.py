"""Builds the activity streams (events, feature/page/track events, guide and poll events).

They are declared in manifest.yaml like every other stream: retriever (the aggregation requester and
the Pendo source to read), primary key, schema and a DatetimeBasedCursor that names the cursor field.
What the declarative framework cannot give them is a cursor with per-app state checkpointed after
every window (activity/cursor.py explains why), so SourcePendo.streams() replaces the
framework's stream object for these with one built here from the same manifest definition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from importlib import resources
from typing import Any

from airbyte_cdk.sources.declarative.models.declarative_component_schema import (
    CustomRetriever as CustomRetrieverModel,
)
from airbyte_cdk.sources.declarative.stream_slicers.declarative_partition_generator import (
    DeclarativePartitionFactory,
    StreamSlicerPartitionGenerator,
)
from airbyte_cdk.sources.streams.concurrent.default_stream import DefaultStream

from ..clock import now_ms
from ..pendo import DAY_MS, HISTORY_DAYS, HOUR_MS, MAX_WINDOW_MS
from .cursor import ActivityCursor
from ..config import start_ms

ACTIVITY_RETRIEVER = "source_pendo.activity.retriever.ActivityRetriever"
HISTORY_RETRIEVER = "source_pendo.activity.visitor_history.VisitorHistoryRetriever"


def is_activity_stream(stream_config: Mapping[str, Any]) -> bool:
    return stream_config.get("retriever", {}).get("class_name") in (ACTIVITY_RETRIEVER, HISTORY_RETRIEVER)


class _FileSchema:
    """The stream's JSON schema file, loaded once."""

    def __init__(self, name: str) -> None:
        self._schema = json.loads(resources.files("source_pendo").joinpath("schemas", f"{name}.json").read_text())

    def get_json_schema(self) -> Mapping[str, Any]:
        return self._schema


def build_activity_stream(source: Any, stream_config: Mapping[str, Any], config: Mapping[str, Any]) -> DefaultStream:
    name = stream_config["name"]
    cursor_field = stream_config["incremental_sync"]["cursor_field"]
    primary_key = stream_config.get("primary_key") or []
    is_rollup = stream_config["retriever"].get("time_field") == "bucket"
    is_history = stream_config["retriever"]["class_name"] == HISTORY_RETRIEVER
    period = "DAY" if is_history else str(config.get("period") or "DAY")
    concurrency = int(config.get("concurrency") or 4)
    first_ms = start_ms(config)
    if is_history:  # one 24-hour window per history call, no further back than Pendo keeps
        today = now_ms() // DAY_MS * DAY_MS
        first_ms = max(first_ms, today - HISTORY_DAYS * DAY_MS)
    cursor = ActivityCursor(
        stream_name=name,
        cursor_field=cursor_field,
        partitions=(["*"] if is_history else [str(a) for a in config.get("app_ids") or []] or ["*"]),
        period=period,
        start_date=str(config["start_date"]),
        start_ms=first_ms,
        lookback_ms=int(config.get("lookback_window_days", 1)) * DAY_MS,
        settle_ms=(25 * HOUR_MS if period == "DAY" else HOUR_MS) if is_rollup else HOUR_MS,
        initial_window_ms=DAY_MS,
        max_window_ms=DAY_MS if is_history else MAX_WINDOW_MS,
        target_rows=int(config.get("page_size") or 50_000),
        max_windows_ahead=2 * concurrency,
        stream_state=source._connector_state_manager.get_stream_state(name, None),
        message_repository=source._message_repository,
        connector_state_manager=source._connector_state_manager,
        period_sensitive=is_rollup,
    )
    retriever = source._constructor.create_component(
        CustomRetrieverModel, stream_config["retriever"], config, name=name, primary_key=primary_key, cursor=cursor
    )
    schema = _FileSchema(name)
    partitions = DeclarativePartitionFactory(name, schema, retriever, source._message_repository)  # type: ignore[arg-type]
    return DefaultStream(
        partition_generator=StreamSlicerPartitionGenerator(partitions, cursor),
        name=name,
        json_schema=schema.get_json_schema,
        primary_key=list(primary_key),
        cursor_field=cursor.cursor_field,
        logger=logging.getLogger(f"airbyte.{name}"),
        cursor=cursor,
    )
