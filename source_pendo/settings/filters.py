"""The `filters` option: conditions on the rows of the activity streams, checked, sent to Pendo or applied here.

A condition is `{stream, field, operator, value}` (Amazon AppFlow's operators, on the fields AppFlow's Pendo
connector lists for each activity object, named as in this connector's records). Conditions on one stream are
ANDed. `value` is an object naming its kind, as the spec's form writes it (one `oneOf` option per kind, told apart
by `value_type`, which Airbyte's connector form needs to render and check a value that is not always text):
`{"value_type": "text", "text": "app.example.com"}`, `{"value_type": "number", "number": 5}`,
`{"value_type": "time", "time": "2024-01-31"}`, `{"value_type": "time_range", "from": "2024-01-01", "to":
"2024-01-31"}`. A bare value, as configs before 1.0.0 wrote it (`"app.example.com"`, `5`, `["2024-01-01",
"2024-01-31"]`), is still read, and `in_spec_form` rewrites it into the object form for the spec check.
Each condition is either
* server side: one or two `&&` comparisons appended to the window's aggregation filter, in a form BEHAVIOR.md
  §B-12 records as confirmed (`field == "text"`, `field OP <whole number >= 0>`); or
* client side: tested here on every row Pendo sends (`row_predicate`), for every form not confirmed:
  `NOT_EQUAL_TO` (no public body sends `!=`), `CONTAINS` (a function call: §R-11 accepts none), numbers that
  are negative or not whole (a unary minus or a decimal literal: no public body sends either).
The comparison semantics are Pendo's (§F-2, the emulator's expressions.py): a field Pendo leaves out is null;
`==` between different kinds is false and `!=` true; an ordering holds only between two numbers; CONTAINS
is a case-sensitive substring test on text (false on null).

Used by config validation (`validate`), the activity retriever (`StreamFilter`: the server clause and the row
predicate) and the activity cursor (`StreamFilter.fingerprint`, saved in the state: a changed filter is seen).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..pendo import DAY_MS, literal
from .dates import parse_start_date

TEXT, NUMBER, TIME, RESPONSE = "text", "number", "time", "response"
NUMERIC_OPERATORS = {
    "EQUAL_TO": "==",
    "NOT_EQUAL_TO": "!=",
    "LESS_THAN": "<",
    "GREATER_THAN": ">",
    "LESS_THAN_OR_EQUAL_TO": "<=",
    "GREATER_THAN_OR_EQUAL_TO": ">=",
}
OPERATORS: dict[str, tuple[str, ...]] = {
    TEXT: ("EQUAL_TO", "NOT_EQUAL_TO", "CONTAINS"),
    NUMBER: tuple(NUMERIC_OPERATORS),
    TIME: (*NUMERIC_OPERATORS, "BETWEEN"),
    RESPONSE: ("EQUAL_TO", "NOT_EQUAL_TO"),
}
ALL_OPERATORS = (*NUMERIC_OPERATORS, "CONTAINS", "BETWEEN")
# Forms BEHAVIOR.md §B-12 records as confirmed; the others are applied client side.
SERVER_OPERATORS = frozenset(
    {"EQUAL_TO", "LESS_THAN", "GREATER_THAN", "LESS_THAN_OR_EQUAL_TO", "GREATER_THAN_OR_EQUAL_TO", "BETWEEN"}
)

_ROLLUP_FIELDS = {
    "periodStart": TIME,
    "appId": NUMBER,
    "numEvents": NUMBER,
    "numMinutes": NUMBER,
    "visitorId": TEXT,
    "accountId": TEXT,
    "server": TEXT,
    "remoteIp": TEXT,
    "userAgent": TEXT,
}
_RAW_FIELDS = {
    "browserTime": TIME,
    "appId": NUMBER,
    "loadTime": NUMBER,
    "latitude": NUMBER,
    "longitude": NUMBER,
    **{
        name: TEXT
        for name in (
            "visitorId",
            "accountId",
            "oldVisitorId",
            "guideId",
            "guideStepId",
            "type",
            "country",
            "region",
            "language",
            "url",
            "title",
            "elementPath",
            "eventId",
            "remoteIp",
            "serverName",
            "userAgent",
        )
    },
}
FIELDS: dict[str, dict[str, str]] = {
    "events": {**_ROLLUP_FIELDS, "pageId": TEXT},
    "feature_events": {**_ROLLUP_FIELDS, "featureId": TEXT},
    "page_events": {**_ROLLUP_FIELDS, "pageId": TEXT},
    "track_events": {**_ROLLUP_FIELDS, "trackTypeId": TEXT},
    "guide_events": {
        **_RAW_FIELDS,
        **{name: TEXT for name in ("guideSeenReason", "uiElementId", "uiElementText", "uiElementType")},
    },
    "poll_events": {**_RAW_FIELDS, "pollId": TEXT, "pollType": TEXT, "pollResponse": RESPONSE},
}
ROLLUP_STREAMS = ("events", "feature_events", "page_events", "track_events")
MAX_TEXT = 1_000
_MAX_EXACT = 2**53


class FilterError(ValueError):
    """A condition that cannot be applied; the message names it and says how to fix it."""


@dataclass(frozen=True)
class Condition:
    index: int  # its place in `filters`, for messages
    stream: str
    field: str
    operator: str
    value: Any  # text, a number, epoch ms (time) or (low, high) epoch ms (BETWEEN)

    @property
    def kind(self) -> str:
        return FIELDS[self.stream][self.field]

    def server_clause(self, time_field: str) -> list[str] | None:
        """The `&&` comparisons Pendo applies, or None when this condition is applied client side."""
        if self.operator not in SERVER_OPERATORS:
            return None
        field = time_field if self.kind == TIME else self.field
        if self.operator == "BETWEEN":
            low, high = self.value
            return [f"{field} >= {low}", f"{field} <= {high}"]
        value = self.value
        if isinstance(value, str):
            return [f"{field} == {literal(value)}"] if self.operator == "EQUAL_TO" else None
        # a unary minus or a decimal literal is unconfirmed (§B-12); Pendo's numbers are doubles, exact to 2**53
        if type(value) is int and 0 <= value <= _MAX_EXACT:
            return [f"{field} {NUMERIC_OPERATORS[self.operator]} {value}"]
        return None

    def test(self, value: Any) -> bool:
        """Pendo's semantics for one row's value of the field (None when absent)."""
        op, wanted = self.operator, self.value
        if op == "CONTAINS":
            return type(value) is str and wanted in value
        if op == "BETWEEN":
            return _is_number(value) and wanted[0] <= value <= wanted[1]
        if op == "EQUAL_TO":
            return _same(value, wanted)
        if op == "NOT_EQUAL_TO":
            return not _same(value, wanted)
        if not (_is_number(value) and _is_number(wanted)):
            return False
        if op == "LESS_THAN":
            return bool(value < wanted)
        if op == "GREATER_THAN":
            return bool(value > wanted)
        if op == "LESS_THAN_OR_EQUAL_TO":
            return bool(value <= wanted)
        return bool(value >= wanted)

    def described(self) -> str:
        return f"filters[{self.index}] ({self.stream}: {self.field} {self.operator} {json.dumps(self.value)})"


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _same(left: Any, right: Any) -> bool:
    """`==` across kinds is false; numbers compare by value (1 == 1.0), text by code points."""
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


@dataclass(frozen=True)
class StreamFilter:
    """The conditions of one stream: the server clause, the client predicate and the fingerprint."""

    stream: str
    conditions: tuple[Condition, ...]

    def server_conditions(self, time_field: str) -> list[str]:
        out: list[str] = []
        for condition in self.conditions:
            out += condition.server_clause(time_field) or []
        return out

    def row_predicate(self, time_field: str) -> Callable[[Mapping[str, Any]], bool] | None:
        """A test of one decoded Pendo row for the client-side conditions, or None when there are none."""
        tests = [
            (time_field if c.kind == TIME else c.field, c)
            for c in self.conditions
            if c.server_clause(time_field) is None
        ]
        if not tests:
            return None
        return lambda row: all(c.test(row.get(f)) for f, c in tests)

    @property
    def fingerprint(self) -> str | None:
        """A short hash of the conditions (None without any), saved in the stream's state."""
        if not self.conditions:
            return None
        canonical = json.dumps(
            sorted([c.field, c.operator, json.dumps(c.value)] for c in self.conditions), separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def summary(self) -> str:
        return " AND ".join(f"{c.field} {c.operator} {json.dumps(c.value)}" for c in self.conditions)


def stream_filter(config: Mapping[str, Any], stream: str) -> StreamFilter:
    """The stream's conditions from a valid config (validate_config ran first)."""
    return StreamFilter(stream, tuple(c for c in parse(config.get("filters")) if c.stream == stream))


VALUE_KINDS: dict[str, tuple[str, ...]] = {  # value_type -> the keys holding the value
    "text": ("text",),
    "number": ("number",),
    "time": ("time",),
    "time_range": ("from", "to"),
}
_TIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z)?")


def in_spec_form(filters: Any) -> Any:
    """`filters` with every bare value (configs before 1.0.0) written as the spec's value object; anything else
    as it is (`parse` reports what is wrong)."""
    if not isinstance(filters, list):
        return filters
    return [
        {**item, "value": _value_object(item)}
        if isinstance(item, Mapping) and "value" in item and not isinstance(item["value"], Mapping)
        else item
        for item in filters
    ]


def _value_object(item: Mapping[str, Any]) -> Any:
    value = item["value"]
    stream, field = item.get("stream"), item.get("field")
    fields = FIELDS.get(stream, {}) if isinstance(stream, str) else {}
    on_time = isinstance(field, str) and fields.get(field) == TIME
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) or _is_ms(v) for v in value):
        low, high = (v if isinstance(v, str) else _iso_ms(v) for v in value)
        return {"value_type": "time_range", "from": low, "to": high}
    if _is_number(value):
        return {"value_type": "number", "number": value}
    if isinstance(value, str):
        if on_time and _TIME_TEXT.fullmatch(value):
            return {"value_type": "time", "time": value}
        return {"value_type": "text", "text": value}
    return value


def _is_ms(value: Any) -> bool:
    return type(value) is int and 0 <= value < 253_402_300_800_000


def _iso_ms(ms: int) -> str:
    """Epoch ms as the UTC timestamp `_time` reads back to the same ms (the spec's time range takes text)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _raw_value(where: str, value: Any) -> Any:
    """The value of a condition: from the spec's value object, or as written bare (before 1.0.0)."""
    if not isinstance(value, Mapping):
        return value
    kind = value.get("value_type")
    if kind not in VALUE_KINDS:
        raise FilterError(
            f"{where}: value_type {_shown(kind)} is not a kind of value; use one of {', '.join(VALUE_KINDS)}."
        )
    missing = [key for key in VALUE_KINDS[kind] if key not in value]
    if missing:
        raise FilterError(f"{where}: a {kind} value needs {' and '.join(missing)}.")
    if kind == "time_range":
        return [value["from"], value["to"]]
    return value[VALUE_KINDS[kind][0]]


def parse(filters: Any) -> list[Condition]:
    """Every condition of `filters`, checked; raises FilterError naming the first bad one."""
    if filters is None:
        return []
    if not isinstance(filters, list):
        raise FilterError(
            "`filters` must be a list of conditions such as "
            '{"stream": "page_events", "field": "server", "operator": "EQUAL_TO", '
            '"value": {"value_type": "text", "text": "app.example.com"}}.'
        )
    return [_condition(index, item) for index, item in enumerate(filters)]


def _condition(index: int, item: Any) -> Condition:
    where = f"`filters[{index}]`"
    if not isinstance(item, Mapping):
        raise FilterError(
            f"{where} must be an object with stream, field, operator and value, not {_shown(item)}."
        )
    missing = [key for key in ("stream", "field", "operator", "value") if key not in item]
    if missing:
        raise FilterError(
            f"{where} has no {', '.join(missing)}: a condition needs stream, field, operator and value."
        )
    stream, field, operator, value = item["stream"], item["field"], item["operator"], item["value"]
    if stream not in FIELDS:
        raise FilterError(
            f"{where}: stream {_shown(stream)} cannot be filtered; filters apply to {', '.join(FIELDS)}."
        )
    where = f"`filters[{index}]` (stream {stream}, field {_shown(field)}, {_shown(operator)})"
    fields = FIELDS[stream]
    if field not in fields:
        raise FilterError(
            f"{where}: {stream} has no filterable field {_shown(field)}; use one of {', '.join(fields)}."
        )
    kind = fields[field]
    if operator not in ALL_OPERATORS:
        raise FilterError(f"{where}: unknown operator; use one of {', '.join(OPERATORS[kind])}.")
    if operator not in OPERATORS[kind]:
        raise FilterError(
            f"{where}: {operator} does not apply to {field} ({_KIND_NAMES[kind]}); use one of {', '.join(OPERATORS[kind])}."
        )
    return Condition(index, stream, field, operator, _value(where, kind, operator, _raw_value(where, value)))


_KIND_NAMES = {TEXT: "text", NUMBER: "a number", TIME: "a time", RESPONSE: "a poll response"}


def _value(where: str, kind: str, operator: str, value: Any) -> Any:
    if operator == "BETWEEN":
        if not isinstance(value, list) or len(value) != 2:
            raise FilterError(
                f'{where}: BETWEEN takes a time range, e.g. {{"value_type": "time_range", "from": "2024-01-01", "to": '
                f'"2024-01-31"}} (both days included), not {_shown(value)}.'
            )
        low, high = _time(where, value[0], False), _time(where, value[1], True)
        if low > high:
            raise FilterError(
                f"{where}: the first time of BETWEEN is after the second; write [earlier, later]."
            )
        return (low, high)
    if kind == TIME:
        return _time(where, value, False)
    if kind == NUMBER:
        if not _is_number(value):
            raise FilterError(
                f"{where}: the value must be a number (value_type number), not {_shown(value)}."
            )
        return value
    if kind == RESPONSE:
        if not (_is_number(value) or isinstance(value, str)):
            raise FilterError(
                f"{where}: the value must be text or a number (value_type text or number), not {_shown(value)}."
            )
        return value
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise FilterError(
            f"{where}: the value must be text (value_type text, at most {MAX_TEXT} characters), not {_shown(value)}."
        )
    if operator == "CONTAINS" and not value:
        raise FilterError(f'{where}: CONTAINS needs non-empty text (every text contains "").')
    return value


def _time(where: str, value: Any, whole_day: bool) -> int:
    """Epoch ms of a time value: whole epoch ms, YYYY-MM-DD (midnight UTC; the end of that day when
    `whole_day`, BETWEEN's second value) or an RFC 3339 UTC timestamp, as start_date."""
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str):
        try:
            ms = int(parse_start_date(value).timestamp() * 1000)
        except ValueError:
            pass
        else:
            return ms + DAY_MS - 1 if whole_day and len(value) == 10 else ms
    raise FilterError(
        f"{where}: {_shown(value)} is not a time: write YYYY-MM-DD or a UTC timestamp such as 2024-01-31T00:00:00Z "
        "(value_type time), or epoch milliseconds (value_type number)."
    )


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:60] + "…"


__all__: Sequence[str] = ("FIELDS", "Condition", "FilterError", "StreamFilter", "parse", "stream_filter")
