"""The --config/--catalog/--state files: one config_error naming the file per bad one; older state shapes mapped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.models import AirbyteStateType, FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_pendo.settings.inputs import read_catalog_file, read_config_file, read_state_file

STATE = {"version": 1, "period": "DAY", "start_date": "2024-01-01", "apps": {"*": {"periodStart": 1}}}


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "file.json"
    path.write_text(text)
    return str(path)


def _error(read: Any, path: str) -> str:
    with pytest.raises(AirbyteTracedException) as raised:
        read(path)
    assert raised.value.failure_type == FailureType.config_error
    assert raised.value.message is not None and path in raised.value.message
    return raised.value.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("  \n", "is empty"),
        ('{"api_key": "secret-key", "base_url": ', "is not JSON (Expecting value at line 1 column"),
        ('["secret-key"]', "is a list, not an object"),
        ("42", "is a number, not an object"),
    ],
)
def test_inputs_a_bad_config_file_names_the_file_and_never_its_text(
    tmp_path: Path, text: str, problem: str
) -> None:
    message = _error(read_config_file, _file(tmp_path, text))
    assert f"The config file {tmp_path / 'file.json'} {problem}" in message
    assert "secret-key" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ('{"streams": [{"stream": ', "is not JSON"),
        ('"events"', "is a string, not an object"),
        ("{}", "has no `streams` list"),
        ('{"streams": [{"stream": 1}]}', "is not a configured catalog"),
    ],
)
def test_inputs_a_bad_catalog_file_is_one_config_error(tmp_path: Path, text: str, problem: str) -> None:
    assert problem in _error(read_catalog_file, _file(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ('[{"type": "STREAM", ', "is not JSON"),
        ("42", "is a number, not a list"),
        ("[42]", "holds a number where a state message (an object) is due"),
        ('{"events": 3}', "has a state of stream events that is a number, not an object"),
        ('[{"type": "GLOBAL", "global": {}}]', "without `global.stream_states`"),
        ('[{"type": "STREAM", "stream": {}}]', "without a `stream_descriptor`"),
        ('[{"type": "OTHER"}]', "of type 'OTHER' this connector cannot read"),
    ],
)
def test_inputs_a_bad_state_file_is_one_config_error_saying_how_to_start_over(
    tmp_path: Path, text: str, problem: str
) -> None:
    message = _error(read_state_file, _file(tmp_path, text))
    assert problem in message
    assert "Remove --state" in message


def _streams(messages: list[Any]) -> dict[str, Any]:
    assert all(m.type == AirbyteStateType.STREAM for m in messages)
    return {m.stream.stream_descriptor.name: m.stream.stream_state.__dict__ for m in messages}


@pytest.mark.parametrize(
    "state",
    [
        {"events": STATE},  # legacy: one object, stream name -> state
        [{"type": "LEGACY", "data": {"events": STATE}}],
        [
            {
                "type": "GLOBAL",
                "global": {
                    "shared_state": {"x": 1},
                    "stream_states": [{"stream_descriptor": {"name": "events"}, "stream_state": STATE}],
                },
            }
        ],
        [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"}, "stream_state": STATE}}],
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "events"}, "stream_state": STATE}},
    ],
    ids=["legacy", "legacy_message", "global", "per_stream", "one_message"],
)
def test_inputs_legacy_and_global_states_are_read_as_per_stream_state(tmp_path: Path, state: Any) -> None:
    assert _streams(read_state_file(_file(tmp_path, json.dumps(state)))) == {"events": STATE}


def test_inputs_an_empty_state_list_is_no_state(tmp_path: Path) -> None:
    assert read_state_file(_file(tmp_path, "[]")) == []
