"""The `custom_aggregations` option: the user's own Pendo pipelines, one stream each, checked and normalised.

An entry names the stream, a Pendo `source` (as in the aggregation API, e.g. `{"featureEvents": null}`), the
`pipeline` stages after it, an optional `primary_key` and an optional JSON `schema`. `source` and `pipeline`
may be JSON text (the Airbyte UI's text box) or JSON values. This module validates the entries (one
config_error naming the entry) and normalizes them for the manifest's dynamic stream templates (settings/config.py
`complete_config` stores them under CUSTOM_ACTIVITY_KEY / CUSTOM_OTHER_KEY). Reading them is custom/'s job
(its bodies, retriever, schema and sample); activity sources are incremental on `periodStart`, the others
full refresh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .spec import built_in_streams

SPEC_KEY = "custom_aggregations"
CUSTOM_ACTIVITY_KEY = "_custom_activity_aggregations"  # normalized entries, read by the manifest's templates
CUSTOM_OTHER_KEY = "_custom_other_aggregations"
ACTIVITY_SOURCES = frozenset(
    {"events", "pageEvents", "featureEvents", "trackEvents", "guideEvents", "pollEvents"}
)
OTHER_SOURCES = frozenset(
    {
        "visitors",
        "accounts",
        "pages",
        "features",
        "guides",
        "trackTypes",
        "guidesSeen",
        "guidesSeenEver",
        "pollsSeen",
        "pollsSeenEver",
    }
)
PERIOD_START = "periodStart"  # the cursor of an activity custom stream: the start of the period read
SAMPLE_LIMIT = 50  # rows `discover` samples to infer a schema
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BARE_SOURCE = re.compile(r"[A-Za-z]+")


def _error(message: str) -> AirbyteTracedException:
    return AirbyteTracedException(
        message=message, internal_message=message, failure_type=FailureType.config_error
    )


@dataclass(frozen=True)
class CustomAggregation:
    """One validated entry of `custom_aggregations`."""

    name: str
    source_name: str
    params: dict[str, Any] | None
    pipeline: list[dict[str, Any]]
    primary_key: list[str]  # as declared (activity streams add periodStart in front)
    json_schema: dict[str, Any] | None

    @property
    def is_activity(self) -> bool:
        return self.source_name in ACTIVITY_SOURCES

    @property
    def stream_primary_key(self) -> list[str]:
        if not self.is_activity:
            return list(self.primary_key)
        return [PERIOD_START, *(k for k in self.primary_key if k != PERIOD_START)] if self.primary_key else []

    @property
    def keyset_field(self) -> str | None:
        """The one field pages are keyed on, when the declared key (periodStart aside) has exactly one."""
        fields = [k for k in self.primary_key if k != PERIOD_START]
        return fields[0] if len(fields) == 1 else None

    def as_config(self) -> dict[str, Any]:
        """The normalized entry the manifest's dynamic stream template is filled from (JSON values only)."""
        return {
            "name": self.name,
            "source": {self.source_name: self.params},
            "pipeline": self.pipeline,
            "primary_key": self.stream_primary_key,
            "schema": self.json_schema,
        }

    def as_spec(self) -> dict[str, Any]:
        """The entry in the spec's form: source, pipeline and schema as JSON text."""
        spec: dict[str, Any] = {
            "name": self.name,
            "source": orjson.dumps({self.source_name: self.params}).decode(),
            "pipeline": orjson.dumps(self.pipeline).decode(),
            "primary_key": list(self.primary_key),
        }
        if self.json_schema is not None:
            spec["schema"] = orjson.dumps(self.json_schema).decode()
        return spec


# ---------------------------------------------------------------------------------------------- validation
def _json_value(value: Any, what: str, entry: str) -> Any:
    """A JSON value given as is or as JSON text (the UI's text box)."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise _error(
            f"{entry}: `{what}` is not valid JSON ({error}). Write it as JSON, e.g. {_EXAMPLES[what]}."
        ) from None


_EXAMPLES = {
    "source": '{"featureEvents": null}',
    "pipeline": '[{"group": {"group": ["accountId", "day"], "fields": {"clicks": {"sum": "numEvents"}}}}]',
    "schema": '{"type": "object", "properties": {"accountId": {"type": ["null", "string"]}}}',
}


def _entry_label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"custom_aggregations[{index}]" + (f" ({name!r})" if isinstance(name, str) and name else "")


def parse_entry(index: int, raw: Any) -> CustomAggregation:
    """One entry, validated; raises one config_error naming the entry."""
    entry = _entry_label(index, raw)
    if not isinstance(raw, Mapping):
        raise _error(f"{entry} must be an object with name, source and pipeline.")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _error(
            f"{entry}: `name` {name!r} is not a snake_case stream name: use lower-case letters, digits and "
            "underscores, starting with a letter (at most 64 characters), e.g. daily_feature_clicks."
        )
    if name in built_in_streams():  # a custom stream may not shadow a manifest stream
        raise _error(f"{entry}: `name` {name!r} is a built-in stream of this connector; choose another name.")
    source = raw.get("source")
    if isinstance(source, str) and _BARE_SOURCE.fullmatch(source.strip()):
        source = {source.strip(): None}  # a bare source name: no parameters
    source = _json_value(source, "source", entry)
    if not isinstance(source, dict):
        raise _error(
            f"{entry}: `source` must be a Pendo aggregation source object, e.g. {_EXAMPLES['source']}."
        )
    if "timeSeries" in source:
        raise _error(
            f"{entry}: `source` must not carry a timeSeries: the connector adds one per period for activity "
            "sources (the stream is incremental on periodStart), and other sources are read whole."
        )
    if len(source) != 1:
        raise _error(f"{entry}: `source` must name exactly one Pendo source, e.g. {_EXAMPLES['source']}.")
    ((source_name, params),) = source.items()
    if source_name not in ACTIVITY_SOURCES and source_name not in OTHER_SOURCES:
        known = ", ".join(sorted(ACTIVITY_SOURCES | OTHER_SOURCES))
        raise _error(
            f"{entry}: `source` {source_name!r} is not a Pendo source this connector reads; use one of {known}."
        )
    if params is not None and not isinstance(params, dict):
        raise _error(
            f'{entry}: the parameters of source {source_name} must be an object or null, e.g. {{"{source_name}": null}}.'
        )
    pipeline = _json_value(raw.get("pipeline", []), "pipeline", entry)
    if pipeline is None:
        pipeline = []
    if not isinstance(pipeline, list) or not all(isinstance(s, dict) and len(s) == 1 for s in pipeline):
        raise _error(
            f"{entry}: `pipeline` must be a JSON list of stages, each an object with one operator, e.g. "
            f"{_EXAMPLES['pipeline']}."
        )
    if any("source" in stage for stage in pipeline):
        raise _error(f"{entry}: `pipeline` holds the stages after the source; put the source in `source`.")
    primary_key = raw.get("primary_key") or []
    if isinstance(primary_key, str):
        primary_key = [k.strip() for k in primary_key.split(",") if k.strip()]
    if not isinstance(primary_key, list) or not all(isinstance(k, str) and k for k in primary_key):
        raise _error(f"{entry}: `primary_key` must be a list of field names of the pipeline's output rows.")
    schema = _json_value(raw.get("schema"), "schema", entry) if raw.get("schema") not in (None, "") else None
    if schema is not None and not (
        isinstance(schema, dict) and isinstance(schema.get("properties", {}), dict)
    ):
        raise _error(f"{entry}: `schema` must be a JSON schema object, e.g. {_EXAMPLES['schema']}.")
    return CustomAggregation(
        name=name,
        source_name=source_name,
        params=params,
        pipeline=pipeline,
        primary_key=list(dict.fromkeys(primary_key)),
        json_schema=schema,
    )


def parse_custom_aggregations(config: Mapping[str, Any]) -> list[CustomAggregation]:
    """Every entry, validated: bad JSON, a bad or duplicate name, a built-in name, an unknown source raise one
    config_error naming the entry."""
    entries = config.get(SPEC_KEY) or []
    if not isinstance(entries, list):
        raise _error("`custom_aggregations` must be a list of {name, source, pipeline} objects.")
    parsed: list[CustomAggregation] = []
    for index, raw in enumerate(entries):
        entry = parse_entry(index, raw)
        if any(other.name == entry.name for other in parsed):
            raise _error(
                f"{_entry_label(index, raw)}: `name` {entry.name!r} is used by an earlier entry; stream names must be unique."
            )
        parsed.append(entry)
    return parsed


def validate_custom_aggregations(config: Mapping[str, Any]) -> None:
    parse_custom_aggregations(config)


def custom_aggregation(config: Mapping[str, Any], name: str) -> CustomAggregation:
    """The entry of stream `name` (the config was validated before any stream was built)."""
    for entry in parse_custom_aggregations(config):
        if entry.name == name:
            return entry
    raise KeyError(name)


def complete_custom_aggregations(config: dict[str, Any]) -> None:
    """Store the normalized entries for the manifest's templates; lenient (validation reports bad entries)."""
    try:
        entries = parse_custom_aggregations(config)
    except AirbyteTracedException:
        entries = []
    config[CUSTOM_ACTIVITY_KEY] = [e.as_config() for e in entries if e.is_activity]
    config[CUSTOM_OTHER_KEY] = [e.as_config() for e in entries if not e.is_activity]
    if entries:  # the spec's form (JSON text), whichever form was given: the CDK checks the config against it
        config[SPEC_KEY] = [e.as_spec() for e in entries]
