"""Pendo's metadata schema (`GET /metadata/schema/{account|visitor}`): records and discovered column types.

The endpoint answers one object, group -> field -> descriptor (`Type`, `DisplayName`, ...).
- `MetadataFieldsExtractor` makes one record per (group, field). Why the manifest cannot: `DpathExtractor`
  can reach the descriptors (`*/*`) but drops the two keys that identify them.
- `MetadataSchemaLoader` types each tenant's `metadata_<group>_<field>` columns (and the nested
  `metadata.<group>.<field>`) for accounts and visitors. Why not `DynamicSchemaLoader`: it builds flat
  properties only, cannot start from the stream's schema file, and fails discover when the call fails;
  here a failed call falls back to the schema file with a warning.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import InitVar, dataclass
from typing import Any

import orjson
import requests
from airbyte_cdk.sources.declarative.extractors.record_extractor import RecordExtractor
from airbyte_cdk.sources.declarative.schema.schema_loader import SchemaLoader
from airbyte_cdk.sources.types import Config

from ..http.quick import quick_get
from .metadata_columns import PER_APP_GROUP_PREFIX, metadata_column

logger = logging.getLogger("airbyte")

# Pendo's `Type` -> JSON schema type; "" (unknown or mixed) and unlisted types get no constraint.
PENDO_TYPES: dict[str, str] = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "float": "number",
    "time": "integer",  # epoch milliseconds
    "list": "array",
}


def metadata_fields(schema: Any) -> Iterator[dict[str, Any]]:
    """One dict per (group, field): the descriptor's keys unchanged plus `group` and `field`."""
    if not isinstance(schema, Mapping):
        return
    for group, fields in schema.items():
        if not isinstance(fields, Mapping):
            continue
        for field, descriptor in fields.items():
            yield {**(descriptor if isinstance(descriptor, Mapping) else {}), "group": group, "field": field}


def column_schema(pendo_type: Any) -> dict[str, Any]:
    json_type = PENDO_TYPES.get(pendo_type) if isinstance(pendo_type, str) else None
    return {"type": ["null", json_type]} if json_type else {}


def _object_schema() -> dict[str, Any]:
    return {"type": ["null", "object"], "additionalProperties": True, "properties": {}}


@dataclass
class MetadataFieldsExtractor(RecordExtractor):
    """`{"agent": {"email": {...}}}` -> `{"group": "agent", "field": "email", ...descriptor}`."""

    def extract_records(self, response: requests.Response) -> Iterable[Mapping[str, Any]]:
        yield from metadata_fields(orjson.loads(response.content))


@dataclass
class MetadataSchemaLoader(SchemaLoader):
    """`base_schema` (the stream's schema file) plus one typed property per metadata field of `metadata_kind`."""

    config: Config
    parameters: InitVar[Mapping[str, Any]]
    base_schema: SchemaLoader
    metadata_kind: str

    def __post_init__(self, parameters: Mapping[str, Any]) -> None:
        self._stream_name = parameters.get("name", "")

    def get_json_schema(self) -> Mapping[str, Any]:
        schema = copy.deepcopy(dict(self.base_schema.get_json_schema()))
        try:
            response = quick_get(self.config, f"metadata/schema/{self.metadata_kind}")
            response.raise_for_status()
            fields = list(metadata_fields(response.json()))
        except Exception as error:  # discover must not fail because of an optional lookup
            logger.warning(
                f"Could not read Pendo's {self.metadata_kind} metadata schema ({error}); stream "
                f"'{self._stream_name}' is discovered without typed metadata_<group>_<field> columns."
            )
            return schema
        properties = schema.setdefault("properties", {})
        metadata = properties.setdefault("metadata", _object_schema()).setdefault("properties", {})
        for field in fields:
            group, name, typed = field["group"], field["field"], column_schema(field.get("Type"))
            metadata.setdefault(group, _object_schema()).setdefault("properties", {})[name] = typed
            if not group.startswith(PER_APP_GROUP_PREFIX):
                properties[metadata_column(group, name)] = dict(typed)
        return schema
