"""`filters` and `end_date` in the config: one actionable config_error naming the stream and the condition,
and the conditions' server clause (the confirmed forms of BEHAVIOR.md §B-12) against the client-side ones."""

from __future__ import annotations

from typing import Any

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from builders import ConfigBuilder

from source_pendo.settings.config import complete_config, end_ms, validate_config
from source_pendo.settings.filters import in_spec_form, stream_filter

NOW_MS = 1_779_286_800_000  # 2026-05-20T14:20Z


@pytest.fixture(autouse=True)
def _clock_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_PENDO_NOW_MS", str(NOW_MS))


def _when(stream: str, field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"stream": stream, "field": field, "operator": operator, "value": value}


def _message(**fields: Any) -> str:
    config = ConfigBuilder().with_(start_date="2024-01-01", **fields).build()
    with pytest.raises(AirbyteTracedException) as raised:
        validate_config(config)
    assert raised.value.failure_type == FailureType.config_error
    return raised.value.message


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"stream": "events"}, "`filters` must be a list of conditions"),
        (["server"], "`filters[0]` must be an object with stream, field, operator and value"),
        ([{"stream": "events", "field": "server"}], "`filters[0]` has no operator, value"),
        (
            [_when("pages", "id", "EQUAL_TO", "x")],
            'stream "pages" cannot be filtered; filters apply to events,',
        ),
        (
            [_when("events", "server", "EQUAL_TO", "a"), _when("page_events", "guideId", "EQUAL_TO", "x")],
            '`filters[1]` (stream page_events, field "guideId", "EQUAL_TO"): page_events has no filterable field "guideId"',
        ),
        (
            [_when("events", "server", "LIKE", "a")],
            "unknown operator; use one of EQUAL_TO, NOT_EQUAL_TO, CONTAINS",
        ),
        (
            [_when("events", "server", "LESS_THAN", "a")],
            "LESS_THAN does not apply to server (text); use one of EQUAL_TO, NOT_EQUAL_TO, CONTAINS",
        ),
        ([_when("events", "numEvents", "CONTAINS", 1)], "CONTAINS does not apply to numEvents (a number)"),
        ([_when("events", "numEvents", "BETWEEN", [1, 2])], "BETWEEN does not apply to numEvents (a number)"),
        (
            [_when("events", "numEvents", "GREATER_THAN", "5")],
            'the value must be a number (value_type number), not "5"',
        ),
        (
            [_when("events", "numEvents", "GREATER_THAN", True)],
            "the value must be a number (value_type number), not true",
        ),
        (
            [_when("events", "server", "EQUAL_TO", 5)],
            "the value must be text (value_type text, at most 1000 characters), not 5",
        ),
        ([_when("events", "server", "CONTAINS", "")], "CONTAINS needs non-empty text"),
        (
            [_when("events", "periodStart", "BETWEEN", "2024-01-01")],
            'BETWEEN takes a time range, e.g. {"value_type"',
        ),
        (
            [_when("events", "periodStart", "BETWEEN", {"value_type": "time", "time": "2024-01-01"})],
            "BETWEEN takes a time range",
        ),
        (
            [_when("events", "server", "EQUAL_TO", {"value_type": "words", "text": "a"})],
            'value_type "words" is not a kind',
        ),
        ([_when("events", "server", "EQUAL_TO", {"value_type": "text"})], "a text value needs text"),
        (
            [_when("events", "periodStart", "BETWEEN", {"value_type": "time_range", "from": "2024-01-01"})],
            "a time_range value needs to",
        ),
        (
            [_when("events", "numEvents", "GREATER_THAN", {"value_type": "text", "text": "5"})],
            'the value must be a number (value_type number), not "5"',
        ),
        (
            [_when("events", "periodStart", "BETWEEN", ["2024-02-01", "2024-01-01"])],
            "the first time of BETWEEN is after the second",
        ),
        ([_when("guide_events", "browserTime", "GREATER_THAN", "yesterday")], '"yesterday" is not a time'),
    ],
)
def test_config_bad_filter_is_one_config_error_naming_the_condition(filters: Any, expected: str) -> None:
    assert expected in _message(filters=filters)


@pytest.mark.parametrize(
    ("end_date", "expected"),
    [
        ("2024-13-01", "`end_date` '2024-13-01' is not a date"),
        ("2024-01-01", "`end_date` 2024-01-01 is not after `start_date` 2024-01-01"),
        ("2023-12-31T23:00:00Z", "is not after `start_date`"),
    ],
)
def test_config_end_date_not_a_date_or_not_after_start_date_is_a_config_error(
    end_date: str, expected: str
) -> None:
    assert expected in _message(end_date=end_date)


@pytest.mark.parametrize(
    ("end_date", "end"),
    [
        ("2024-01-31", 1_706_745_600_000),  # 2024-02-01T00:00Z: the whole day
        ("2024-01-31T10:00:00Z", 1_706_698_800_000),  # 11:00Z: the whole hour holding it
        ("2024-01-31T10:30:00Z", 1_706_698_800_000),
        ("", None),
    ],
)
def test_config_end_date_is_inclusive(end_date: str, end: int | None) -> None:
    config = ConfigBuilder().with_(start_date="2024-01-01", end_date=end_date).build()
    validate_config(config)
    assert end_ms(config) == end


def test_filters_confirmed_forms_go_to_pendo_and_the_others_stay_client_side() -> None:
    config = (
        ConfigBuilder()
        .with_(
            filters=[
                _when("events", "server", "EQUAL_TO", 'a"b'),
                _when("events", "server", "NOT_EQUAL_TO", "internal"),
                _when("events", "remoteIp", "CONTAINS", "10."),
                _when("events", "numMinutes", "LESS_THAN_OR_EQUAL_TO", 30),
                _when("events", "numEvents", "GREATER_THAN", -1),
                _when("events", "periodStart", "GREATER_THAN_OR_EQUAL_TO", "2024-01-02"),
                _when("poll_events", "pollResponse", "EQUAL_TO", 5),
                _when("events", "appId", "EQUAL_TO", 2**53 + 1),  # not exact as a double: client side
            ]
        )
        .build()
    )
    validate_config(config)
    events = stream_filter(config, "events")
    assert events.server_conditions("hour") == [
        'server == "a\\"b"',
        "numMinutes <= 30",
        "hour >= 1704153600000",
    ]
    keep = events.row_predicate("hour")
    assert keep is not None
    row = {"server": 'a"b', "remoteIp": "10.0.0.1", "numMinutes": 3, "numEvents": 0, "hour": 1704153600000}
    row["appId"] = 2**53 + 1
    assert keep(row)
    assert not keep({**row, "appId": 2**53})
    assert not keep({**row, "server": "internal"})
    assert not keep({**row, "remoteIp": None})  # a missing field contains nothing
    assert not keep({**row, "numEvents": -1})
    assert keep({**row, "numEvents": 0.5})
    assert stream_filter(config, "poll_events").server_conditions("browserTime") == ["pollResponse == 5"]
    assert stream_filter(config, "poll_events").row_predicate("browserTime") is None
    assert stream_filter(config, "page_events").fingerprint is None


SPEC_FORM = [
    _when("events", "server", "EQUAL_TO", {"value_type": "text", "text": "app.example.com"}),
    _when("events", "numEvents", "GREATER_THAN", {"value_type": "number", "number": 5}),
    _when("events", "periodStart", "GREATER_THAN_OR_EQUAL_TO", {"value_type": "time", "time": "2024-01-02"}),
    _when(
        "events",
        "periodStart",
        "BETWEEN",
        {"value_type": "time_range", "from": "2024-01-01", "to": "2024-01-31"},
    ),
    _when("guide_events", "browserTime", "LESS_THAN", {"value_type": "number", "number": 1706745600000}),
    _when(
        "poll_events",
        "browserTime",
        "BETWEEN",
        {"value_type": "time_range", "from": "2024-01-01T00:00:00.000Z", "to": "2024-01-02T00:00:00.001Z"},
    ),
]
BARE = [  # the same conditions as configs before 1.0.0 wrote them
    _when("events", "server", "EQUAL_TO", "app.example.com"),
    _when("events", "numEvents", "GREATER_THAN", 5),
    _when("events", "periodStart", "GREATER_THAN_OR_EQUAL_TO", "2024-01-02"),
    _when("events", "periodStart", "BETWEEN", ["2024-01-01", "2024-01-31"]),
    _when("guide_events", "browserTime", "LESS_THAN", 1706745600000),
    _when("poll_events", "browserTime", "BETWEEN", [1704067200000, 1704153600001]),
]


def test_filters_in_the_spec_form_and_written_bare_are_the_same_conditions_and_fingerprint() -> None:
    """A config saved before 1.0.0 (bare values) keeps working, and its state's filters fingerprint is unchanged,
    so upgrading re-reads nothing."""
    spec_form = ConfigBuilder().with_(start_date="2024-01-01", filters=SPEC_FORM).build()
    bare = ConfigBuilder().with_(start_date="2024-01-01", filters=BARE).build()
    validate_config(spec_form)
    validate_config(bare)
    for stream in ("events", "guide_events", "poll_events"):
        new, old = stream_filter(spec_form, stream), stream_filter(bare, stream)
        assert [c.value for c in new.conditions] == [c.value for c in old.conditions]
        assert new.fingerprint == old.fingerprint and new.server_conditions("day") == old.server_conditions(
            "day"
        )


def test_bare_filter_values_are_written_in_the_spec_form_for_the_spec_check() -> None:
    assert in_spec_form(BARE) == SPEC_FORM
    assert complete_config({"filters": BARE})["filters"] == SPEC_FORM
