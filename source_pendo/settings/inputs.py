"""The `--config`, `--catalog` and `--state` files, read with one actionable config_error per bad file.

The CDK's readers end a bad file in a Python traceback (an empty file, text that is not JSON, a JSON number
where a list is due, a legacy state that is a bare dict). Here every one gets one
`AirbyteTracedException(failure_type=config_error)` naming the file and what to do; run.py prints it as a
FAILED connection status (`check`) or an error trace (`discover`, `read`). The messages quote the parser's
position, never the file's text: a config holds the integration key.

State in an older shape is mapped where it can be: a legacy state (one object, stream name -> stream state)
and a GLOBAL state message (its per-stream states) become per-stream STATE messages, the only shape this
connector writes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    FailureType,
)
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

LOGGER = logging.getLogger("airbyte")

_SHAPES = {
    "config": 'a JSON object of settings, e.g. {"api_key": "…", "start_date": "2024-01-01"}',
    "catalog": 'a configured catalog: a JSON object {"streams": [...]} as `discover` lists them',
    "state": "a JSON list of state messages as a previous sync emitted them ([] for none)",
}
_FIX = {
    "config": "Fix the file (or the connection's settings) and run again.",
    "catalog": "Select the streams again (or write the file from `discover`) and run again.",
    "state": "Remove --state (or clear the connection's state: reset its streams) to sync from start_date.",
}


def file_error(kind: str, path: str, problem: str) -> AirbyteTracedException:
    message = f"The {kind} file {path} {problem}: it must be {_SHAPES[kind]}. {_FIX[kind]}"
    return AirbyteTracedException(
        message=message, internal_message=message, failure_type=FailureType.config_error
    )


def read_json_file(kind: str, path: str) -> Any:
    """The file's JSON value; an unreadable, empty or non-JSON file is a config_error naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise file_error(kind, path, f"cannot be read ({type(error).__name__})") from None
    if not text.strip():
        raise file_error(kind, path, "is empty")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        where = (
            f"{error.msg} at line {error.lineno} column {error.colno}"
            if isinstance(error, json.JSONDecodeError)
            else "nested too deeply"
        )
        raise file_error(kind, path, f"is not JSON ({where})") from None


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def read_config_file(path: str) -> dict[str, Any]:
    config = read_json_file("config", path)
    if not isinstance(config, dict):
        raise file_error("config", path, f"is {_json_type(config)}, not an object")
    return config


def read_catalog_file(path: str) -> ConfiguredAirbyteCatalog:
    catalog = read_json_file("catalog", path)
    if not isinstance(catalog, dict):
        raise file_error("catalog", path, f"is {_json_type(catalog)}, not an object")
    if not isinstance(catalog.get("streams"), list):
        raise file_error("catalog", path, "has no `streams` list")
    try:
        return ConfiguredAirbyteCatalogSerializer.load(catalog)
    except Exception as error:  # serpyco's validation errors have no common base worth naming
        raise file_error("catalog", path, f"is not a configured catalog ({type(error).__name__})") from None


def _stream_message(path: str, name: Any, namespace: Any, stream_state: Any) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise file_error("state", path, "has a stream state without a stream name")
    if not isinstance(stream_state, dict):
        raise file_error(
            "state", path, f"has a state of stream {name} that is {_json_type(stream_state)}, not an object"
        )
    descriptor: dict[str, Any] = {"name": name}
    if isinstance(namespace, str):
        descriptor["namespace"] = namespace
    return {"type": "STREAM", "stream": {"stream_descriptor": descriptor, "stream_state": stream_state}}


def _legacy(path: str, streams: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A legacy state (stream name -> state), mapped to per-stream messages."""
    LOGGER.info(
        f"The state file {path} is a legacy state (one object per stream): reading it as per-stream state."
    )
    return [_stream_message(path, name, None, stream_state) for name, stream_state in streams.items()]


def _global(path: str, message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A GLOBAL state message: its per-stream states (this connector keeps no shared state)."""
    state = message.get("global")
    if not isinstance(state, dict) or not isinstance(state.get("stream_states"), list):
        raise file_error("state", path, "has a GLOBAL state message without `global.stream_states`")
    if state.get("shared_state"):
        LOGGER.warning(
            f"The state file {path} is a GLOBAL state: its per-stream states are read, its shared_state is "
            "ignored (this connector keeps state per stream)."
        )
    messages = []
    for entry in state["stream_states"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("stream_descriptor"), dict):
            raise file_error("state", path, "has a GLOBAL stream state without a `stream_descriptor`")
        descriptor = entry["stream_descriptor"]
        messages.append(
            _stream_message(
                path, descriptor.get("name"), descriptor.get("namespace"), entry.get("stream_state")
            )
        )
    return messages


def _per_stream(path: str, raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, dict):
        if "type" in raw or "stream" in raw or "global" in raw:
            raw = [raw]  # one state message, not in a list
        else:
            return _legacy(path, raw)
    if not isinstance(raw, list):
        raise file_error("state", path, f"is {_json_type(raw)}, not a list")
    messages: list[dict[str, Any]] = []
    for message in raw:
        if not isinstance(message, dict):
            raise file_error(
                "state", path, f"holds {_json_type(message)} where a state message (an object) is due"
            )
        kind = message.get("type")
        if kind == "GLOBAL" or (kind is None and "global" in message):
            messages += _global(path, message)
        elif kind == "LEGACY" or (kind is None and "data" in message and "stream" not in message):
            data = message.get("data")
            if not isinstance(data, dict):
                raise file_error("state", path, "has a LEGACY state message whose `data` is not an object")
            messages += _legacy(path, data)
        elif kind in ("STREAM", None) and isinstance(message.get("stream"), dict):
            stream = message["stream"]
            descriptor = stream.get("stream_descriptor")
            if not isinstance(descriptor, dict):
                raise file_error("state", path, "has a STREAM state message without a `stream_descriptor`")
            state = stream.get("stream_state") or {}
            messages.append(_stream_message(path, descriptor.get("name"), descriptor.get("namespace"), state))
        else:
            raise file_error(
                "state", path, f"has a state message of type {kind!r} this connector cannot read"
            )
    return messages


def read_state_file(path: str) -> list[AirbyteStateMessage]:
    """Per-stream state messages from a per-stream, GLOBAL or legacy state file."""
    messages = _per_stream(path, read_json_file("state", path))
    try:
        return [AirbyteStateMessageSerializer.load(message) for message in messages]
    except Exception as error:  # serpyco's validation errors have no common base worth naming
        raise file_error("state", path, f"is not a list of state messages ({type(error).__name__})") from None
