"""SourcePendo: the declarative manifest, built with the config, catalog and state it will run with."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
)
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource
from airbyte_cdk.sources.types import ConnectionDefinition

from .activity.record_batch import RecordBatch
from .activity.streams import build_activity_stream, is_activity_stream
from .check import check_connection
from .deletions.records import LISTINGS, CatalogueDeletions
from .entities.anonymous import backfill_anonymous_visitors, with_anonymous_setting
from .entities.cursor_state import epoch_ms_cursors, with_integer_cursor
from .entities.estimates import COUNTS, entity_estimates
from .http.transport import install
from .settings.config import complete_config
from .settings.inputs import read_catalog_file, read_config_file, read_state_file
from .settings.spec import MANIFEST_PATH

install()  # every session of the process: no redirect to another origin with the key (http/transport.py)

CONNECT_TIMEOUT_SECONDS = 30


class SourcePendo(YamlDeclarativeSource):
    # Set by source_pendo.entrypoint for `read`: record batches are printed as they are. Any other caller
    # (the CDK's entrypoint, its test helpers, PyAirbyte in-process) gets ordinary record messages.
    emit_record_batches = False

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        catalog: ConfiguredAirbyteCatalog | None = None,
        state: list[AirbyteStateMessage] | None = None,
    ) -> None:
        completed = complete_config(config or {})  # `spec` has no config; the manifest still reads defaults
        self._request_timeout = completed["request_timeout_seconds"]
        self._anonymous = bool(completed["include_anonymous_visitors"])
        state = backfill_anonymous_visitors(state, self._anonymous)
        super().__init__(path_to_yaml=str(MANIFEST_PATH), config=completed, catalog=catalog, state=state)

    # The files, read as run.py read them before building the source: a bad file is one config_error.
    @staticmethod
    def read_config(config_path: str) -> dict[str, Any]:
        return read_config_file(config_path)

    @classmethod
    def read_catalog(cls, catalog_path: str) -> ConfiguredAirbyteCatalog:
        return read_catalog_file(catalog_path)

    @classmethod
    def read_state(cls, state_path: str | None) -> list[AirbyteStateMessage]:
        return read_state_file(state_path) if state_path else []  # no --state: no state, as the CDK's

    def _read_and_parse_yaml_file(self, path_to_yaml_file: str) -> ConnectionDefinition:
        """The manifest with the base requester's timeouts taken from `request_timeout_seconds`: the manifest
        schema types `read_timeout_in_seconds` as a number, so it cannot be interpolated from the config."""
        manifest = super()._read_and_parse_yaml_file(path_to_yaml_file)
        requester = manifest["definitions"]["base_requester"]
        requester["read_timeout_in_seconds"] = self._request_timeout
        requester["connect_timeout_in_seconds"] = min(self._request_timeout, CONNECT_TIMEOUT_SECONDS)
        return manifest

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        return check_connection(complete_config(config), logger)

    def streams(self, config: Mapping[str, Any]) -> list[Any]:
        """The manifest's streams, with the activity streams built around the per-app window cursor.

        The activity streams are declared in manifest.yaml like the others; activity/streams.py explains why
        their stream object is assembled here from that same declaration. So are the custom aggregations of
        activity sources (the manifest's dynamic_streams, one per config entry).
        """
        declared = {s["name"]: s for s in [*self.resolved_manifest.get("streams", []), *self.dynamic_streams]}
        return [
            build_activity_stream(self, declared[stream.name], self._config)
            if stream.name in declared and is_activity_stream(declared[stream.name])
            else stream
            for stream in super().streams(config)
        ]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        COUNTS.reset()
        yield from entity_estimates(self._config, catalog, state, logger)
        LISTINGS.reset()
        deletions = CatalogueDeletions(catalog, state)  # the listings of the last sync (deletions/records.py)
        cursors = epoch_ms_cursors(self.resolved_manifest.get("streams", []))  # saved as integers
        for message in super().read(logger, config, catalog, state):
            if isinstance(message, RecordBatch) and not self.emit_record_batches:
                message.release()
                yield from message.to_messages()
            elif isinstance(message, RecordBatch):
                yield message
            else:
                message = with_integer_cursor(with_anonymous_setting(message, self._anonymous), cursors)
                yield from deletions.process(message)
