"""The activity streams run what manifest.yaml declares for them: schema loader, cursor start and lookback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalog
from airbyte_cdk.sources.declarative.schema import JsonFileSchemaLoader
from airbyte_cdk.sources.types import ConnectionDefinition
from airbyte_cdk.test.state_builder import StateBuilder

from source_pendo.activity.streams import is_activity_stream
from source_pendo.source import SourcePendo

SCHEMAS = Path(__file__).parent.parent / "source_pendo" / "schemas"
CONFIG = {"api_key": "00000000-unit-test-key.us", "start_date": "2024-01-01", "lookback_window_days": 1}
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
ACTIVITY = [
    "events",
    "feature_events",
    "page_events",
    "track_events",
    "guide_events",
    "poll_events",
    "visitor_history",
]


class _Redeclared(SourcePendo):
    """The connector with the `events` stream's declaration changed in the manifest it loads."""

    changes: ClassVar[dict[str, Any]] = {}

    def _read_and_parse_yaml_file(self, path_to_yaml_file: str) -> ConnectionDefinition:
        manifest = super()._read_and_parse_yaml_file(path_to_yaml_file)
        manifest["definitions"]["streams"]["events"].update(self.changes)
        return manifest


def _streams(source: SourcePendo) -> dict[str, Any]:
    return {stream.name: stream for stream in source.streams(source._config)}


def test_every_activity_stream_is_built_by_the_activity_package():
    declared = {s["name"]: s for s in SourcePendo(CONFIG).resolved_manifest["streams"]}
    assert sorted(name for name, s in declared.items() if is_activity_stream(s)) == sorted(ACTIVITY)


@pytest.mark.parametrize("name", ACTIVITY)
def test_activity_stream_schema_is_what_the_manifest_schema_loader_gives(name):
    source = SourcePendo(CONFIG)
    declared = next(s for s in source.resolved_manifest["streams"] if s["name"] == name)
    loader = JsonFileSchemaLoader(
        config=source._config, parameters={"name": name}, file_path=declared["schema_loader"]["file_path"]
    )
    assert _streams(source)[name].get_json_schema() == loader.get_json_schema()
    assert loader.get_json_schema() == json.loads((SCHEMAS / f"{name}.json").read_text())


def test_given_another_schema_loader_in_the_manifest_when_discovering_then_the_activity_stream_has_its_schema():
    schema = {"type": "object", "additionalProperties": True, "properties": {"declared": {"type": "string"}}}
    _Redeclared.changes = {"schema_loader": {"type": "InlineSchemaLoader", "schema": schema}}
    assert _streams(_Redeclared(CONFIG))["events"].get_json_schema() == schema


def _first_window_start(source: SourcePendo, name: str = "events") -> int:
    stream = _streams(source)[name]
    stream.cursor.count_with(lambda app, object_id, lo, hi: 0)  # the windows' counts are not this test's
    return int(next(iter(stream.cursor.stream_slices()))["start"])


def test_given_the_manifest_start_and_lookback_when_reading_then_the_activity_cursor_uses_them(monkeypatch):
    monkeypatch.setenv("SOURCE_PENDO_NOW_MS", str(1_720_000_000_000))
    start = 1_710_000_000_000  # 2024-03-09T16:00Z: an hour boundary
    _Redeclared.changes = {
        "incremental_sync": {
            "type": "DatetimeBasedCursor",
            "cursor_field": "periodStart",
            "datetime_format": "%ms",
            "start_datetime": {"type": "MinMaxDatetime", "datetime": str(start), "datetime_format": "%ms"},
            "lookback_window": "P3D",
        }
    }
    assert _first_window_start(_Redeclared(CONFIG)) == start

    frontier = start + 20 * DAY_MS
    state = (
        StateBuilder()
        .with_stream_state(
            "events",
            {
                "version": 1,
                "period": "DAY",
                "start_date": "2024-01-01",
                "apps": {"*": {"periodStart": frontier}},
            },
        )
        .build()
    )
    catalog = ConfiguredAirbyteCatalog(streams=[])
    assert _first_window_start(_Redeclared(CONFIG, catalog, state)) == frontier - 3 * DAY_MS


def test_given_the_default_manifest_then_activity_streams_start_at_start_date_and_look_back_lookback_window_days(
    monkeypatch,
):
    monkeypatch.setenv("SOURCE_PENDO_NOW_MS", str(1_720_000_000_000))
    assert _first_window_start(SourcePendo(CONFIG)) == 1_704_067_200_000  # 2024-01-01T00:00Z
    frontier = 1_710_000_000_000
    state = (
        StateBuilder()
        .with_stream_state(
            "events",
            {
                "version": 1,
                "period": "DAY",
                "start_date": "2024-01-01",
                "apps": {"*": {"periodStart": frontier}},
            },
        )
        .build()
    )
    source = SourcePendo({**CONFIG, "lookback_window_days": 2}, ConfiguredAirbyteCatalog(streams=[]), state)
    assert _first_window_start(source) == frontier - 2 * DAY_MS


@pytest.mark.parametrize(
    ("settings", "track_days", "events_days"),
    [({}, 7, 1), ({"track_events_lookback_window_days": 2}, 2, 1), ({"lookback_window_days": 3}, 7, 3)],
    ids=["default", "track-events-set", "others-set"],
)
def test_track_events_look_back_their_own_lookback_seven_days_by_default(
    monkeypatch, settings, track_days, events_days
):
    """Pendo processes server-side track events up to 7 days late: track_events re-reads
    `track_events_lookback_window_days` (default 7) before its saved cursor, the other streams
    `lookback_window_days`."""
    monkeypatch.setenv("SOURCE_PENDO_NOW_MS", str(1_720_000_000_000))
    frontier = 1_710_000_000_000
    saved = {
        "version": 1,
        "period": "DAY",
        "start_date": "2024-01-01",
        "apps": {"*": {"periodStart": frontier}},
    }
    state = StateBuilder().with_stream_state("track_events", saved).with_stream_state("events", saved).build()
    source = SourcePendo({**CONFIG, **settings}, ConfiguredAirbyteCatalog(streams=[]), state)
    assert _first_window_start(source, "track_events") == frontier - track_days * DAY_MS
    assert _first_window_start(source, "events") == frontier - events_days * DAY_MS
