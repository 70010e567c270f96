"""The schema of a custom aggregation stream: the entry's declared `schema`, or one inferred from a sample.

Why not `InlineSchemaLoader`/`DynamicSchemaLoader`: the schema is the user's, given in the config (an inline
schema would pass through the template's interpolation), and without one the schema is inferred from what
the pipeline answers: one small request (the most recent complete period of an activity source, the first
`SAMPLE_LIMIT` rows of another), every field nullable, and the stream's description (`description` of its
JSON schema) says so. A failed sample falls back to an open schema with a warning: `check` reports a
pipeline Pendo rejects, and discover must not fail for the other streams.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import orjson
from airbyte_cdk.sources.declarative.schema.schema_loader import SchemaLoader
from airbyte_cdk.sources.types import Config

from ..settings.custom_aggregations import (
    PERIOD_START,
    SAMPLE_LIMIT,
    CustomAggregation,
    custom_aggregation,
)
from .sample import sample_rows

logger = logging.getLogger("airbyte")


@dataclass
class CustomAggregationSchemaLoader(SchemaLoader):
    config: Config
    parameters: InitVar[Mapping[str, Any]]

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._stream_name = str(parameters.get("name", ""))

    def get_json_schema(self) -> Mapping[str, Any]:
        entry = custom_aggregation(self.config, self._stream_name)
        if entry.json_schema is not None:
            schema = declared_schema(entry)
            schema.setdefault(
                "description", f"Custom aggregation stream {entry.name}: the schema declared in its config."
            )
            return schema
        rows: list[Any] = []
        try:
            response = sample_rows(self.config, entry)
            response.raise_for_status()
            rows = [r for r in orjson.loads(response.content).get("results") or [] if isinstance(r, dict)]
            note = f"inferred from a sample of {len(rows)} row(s) ({_sample_scope(entry)}); every field is nullable"
        except Exception as error:  # discover must not fail because of one stream's sample
            logger.warning(
                f"{entry.name}: could not sample the custom aggregation to infer its schema ({type(error).__name__}: "
                f"{str(error)[:200]}); discovered with an open schema. Run check to see Pendo's answer."
            )
            note = "open (the sample request failed); declare `schema` in the config to type it"
        schema = inferred_schema(rows, entry)
        schema["description"] = (
            f"Custom aggregation stream {entry.name} (source {entry.source_name}). Schema {note}. "
            "Declare `schema` in its config entry to fix the types."
        )
        return schema


def _sample_scope(entry: CustomAggregation) -> str:
    if entry.is_activity:
        return "the most recent complete period"
    return f"the first {SAMPLE_LIMIT} rows"


def inferred_schema(rows: list[Mapping[str, Any]], entry: CustomAggregation) -> dict[str, Any]:
    """A schema from sampled rows: every field seen, each nullable, typed by the JSON values seen."""
    properties: dict[str, Any] = {}
    for row in rows:
        for field_name, value in row.items():
            types = properties.setdefault(field_name, {"type": ["null"]})["type"]
            kind = _json_type(value)
            if kind is not None and kind not in types:
                types.append(kind)
    for prop in properties.values():
        types = prop["type"]
        if "integer" in types and "number" in types:
            types.remove("integer")
        if types == ["null"]:  # only nulls seen: any JSON value
            prop["type"] = ["null", "string", "number", "boolean", "object", "array"]
    if entry.is_activity:
        properties[PERIOD_START] = {"type": "integer"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": properties,
        "additionalProperties": True,
    }


def declared_schema(entry: CustomAggregation) -> dict[str, Any]:
    assert entry.json_schema is not None
    schema = dict(entry.json_schema)
    schema.setdefault("type", "object")
    properties = dict(schema.get("properties") or {})
    if entry.is_activity:
        properties[PERIOD_START] = {"type": "integer"}
    schema["properties"] = properties
    return schema


def _json_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
