"""Builds the activity streams (events, feature/page/track events, guide and poll events, visitor history).

They are declared in manifest.yaml like every other stream: retriever (the aggregation requester and
the Pendo source to read), primary key, schema loader, and a DatetimeBasedCursor with the cursor field,
start and lookback. What the declarative framework cannot give them is a cursor with per-app state
checkpointed after every window (cursor.py explains why), so SourcePendo.streams() replaces the
framework's stream object for these with one built here from that same resolved declaration: its
schema loader, its retriever, and its cursor's field, start and lookback drive the ActivityCursor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airbyte_cdk.sources.declarative.interpolation.interpolated_string import InterpolatedString
from airbyte_cdk.sources.declarative.models import declarative_component_schema as models
from airbyte_cdk.sources.declarative.schema import SchemaLoader
from airbyte_cdk.sources.declarative.schema.caching_schema_loader_decorator import (
    CachingSchemaLoaderDecorator,
)
from airbyte_cdk.sources.declarative.stream_slicers.declarative_partition_generator import (
    DeclarativePartitionFactory,
    StreamSlicerPartitionGenerator,
)
from airbyte_cdk.sources.streams.concurrent.default_stream import DefaultStream
from isodate import parse_duration

from ..clock import now_ms
from ..pendo import DAY_MS, HISTORY_DAYS, HOUR_MS, MAX_WINDOW_MS
from ..settings.config import end_ms
from ..settings.filters import stream_filter
from .backfill import TagBackfill, read_catalogue
from .cursor import ActivityCursor
from .state import StateContext
from .windows import WindowPolicy

if TYPE_CHECKING:
    from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource

ACTIVITY_RETRIEVER = "source_pendo.activity.retriever.ActivityRetriever"
HISTORY_RETRIEVER = "source_pendo.activity.visitor_history.VisitorHistoryRetriever"
CUSTOM_RETRIEVER = (
    "source_pendo.custom.retriever.CustomAggregationRetriever"  # incremental when it has a cursor
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def is_activity_stream(stream_config: Mapping[str, Any]) -> bool:
    class_name = stream_config.get("retriever", {}).get("class_name")
    if (
        class_name == CUSTOM_RETRIEVER
    ):  # a custom aggregation of an activity source (manifest dynamic_streams)
        return "incremental_sync" in stream_config
    return class_name in (ACTIVITY_RETRIEVER, HISTORY_RETRIEVER)


def _declared(
    source: ConcurrentDeclarativeSource, definition: Mapping[str, Any], config: Mapping[str, Any]
) -> Any:
    """The component a resolved manifest definition declares (`type` names its model), built by the CDK."""
    return source._constructor.create_component(getattr(models, definition["type"]), definition, config)


def declared_start_ms(
    source: ConcurrentDeclarativeSource, incremental: Mapping[str, Any], config: Mapping[str, Any]
) -> int:
    """The declared cursor's `start_datetime`, in epoch milliseconds."""
    start: datetime = _declared(source, incremental["start_datetime"], config).get_datetime(config)
    return (start - _EPOCH) // _MS


def declared_lookback_ms(incremental: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    """The declared cursor's `lookback_window` (an ISO 8601 duration template), in milliseconds."""
    window = incremental.get("lookback_window")
    if not window:
        return 0
    duration = parse_duration(str(InterpolatedString.create(window, parameters={}).eval(config)))
    return int(duration // _MS)


def build_tag_backfill(
    source: ConcurrentDeclarativeSource,
    stream_config: Mapping[str, Any],
    config: Mapping[str, Any],
    start_ms: int,
) -> TagBackfill | None:
    """A new tag's history (backfill.py) for the streams whose retriever declares a `catalogue_requester`,
    unless `backfill_new_tags` is off."""
    definition = stream_config["retriever"].get("catalogue_requester")
    if not definition or config.get("backfill_new_tags") is False:
        return None
    requester = source._constructor.create_component(
        models.HttpRequester, definition, config, name=stream_config["name"]
    )
    return TagBackfill(
        stream_name=stream_config["name"],
        catalogue=lambda: read_catalogue(requester),
        settle_ms=int(config.get("tag_settle_days", 2)) * DAY_MS,
        start_ms=start_ms,
        clock=now_ms,
    )


def build_activity_stream(
    source: ConcurrentDeclarativeSource, stream_config: Mapping[str, Any], config: Mapping[str, Any]
) -> DefaultStream:
    name = stream_config["name"]
    incremental = stream_config["incremental_sync"]
    primary_key = stream_config.get("primary_key") or []
    is_rollup = stream_config["retriever"].get("time_field") == "bucket"
    is_history = stream_config["retriever"]["class_name"] == HISTORY_RETRIEVER
    # the built-in activity streams size windows by Pendo's count of each; visitor history's windows are one day
    # each (counted when read), a custom stream counts each period it reads (custom/retriever.py) and its windows
    # grow and shrink by the rows read
    counted = stream_config["retriever"]["class_name"] == ACTIVITY_RETRIEVER
    period = "DAY" if is_history else str(config.get("period") or "DAY")
    concurrency = int(config.get("concurrency") or 4)
    first_ms = declared_start_ms(source, incremental, config)
    if is_history:  # one 24-hour window per history call, no further back than Pendo keeps
        today = now_ms() // DAY_MS * DAY_MS
        first_ms = max(first_ms, today - HISTORY_DAYS * DAY_MS)
    windows = WindowPolicy(
        period=period,
        start_ms=first_ms,
        lookback_ms=declared_lookback_ms(incremental, config),
        settle_ms=(25 * HOUR_MS if period == "DAY" else HOUR_MS) if is_rollup else HOUR_MS,
        initial_window_ms=DAY_MS,
        max_window_ms=DAY_MS if is_history else MAX_WINDOW_MS,
        target_rows=int(config.get("page_size") or 50_000),
        max_windows_ahead=2 * concurrency,
        end_ms=end_ms(config),
    )
    filters = stream_filter(config, name)
    state_context = StateContext(
        stream_state=source._connector_state_manager.get_stream_state(name, None),
        start_date=str(config["start_date"]),
        period_sensitive=is_rollup,
        message_repository=source._message_repository,
        connector_state_manager=source._connector_state_manager,
        include_anonymous=bool(config.get("include_anonymous_visitors")),
        filters=filters.fingerprint,
        filters_summary=filters.summary(),
    )
    partitions = ["*"] if is_history else [str(a) for a in config.get("app_ids") or []] or ["*"]
    cursor = ActivityCursor(
        stream_name=name,
        cursor_field=incremental["cursor_field"],
        partitions=partitions,
        windows=windows,
        state_context=state_context,
        backfill=build_tag_backfill(source, stream_config, config, first_ms),
        counted_by_pendo=not is_history,
    )
    retriever = source._constructor.create_component(
        models.CustomRetriever,
        stream_config["retriever"],
        config,
        name=name,
        primary_key=primary_key,
        cursor=cursor,
    )
    if counted:  # each window counted before it is handed out, and sized by the count (BEHAVIOR.md §B-22)
        cursor.count_with(retriever.count_window)
    # Read once: the partition factory asks for the schema on every window.
    schema: SchemaLoader = CachingSchemaLoaderDecorator(
        _declared(source, stream_config["schema_loader"], config)
    )
    factory = DeclarativePartitionFactory(name, schema, retriever, source._message_repository)
    return DefaultStream(
        partition_generator=StreamSlicerPartitionGenerator(factory, cursor),
        name=name,
        json_schema=schema.get_json_schema,
        primary_key=list(primary_key),
        cursor_field=cursor.cursor_field,
        logger=logging.getLogger(f"airbyte.{name}"),
        cursor=cursor,
    )
