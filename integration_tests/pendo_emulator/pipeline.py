"""The aggregation request envelope and its row-processing stages (BEHAVIOR.md §B-9-§B-13, §F-2).

``parse_request`` validates a ``POST /api/v1/aggregation`` body into an ``AggregationRequest``: the source stage
(name, app selection, params, ``timeSeries``) and the operator stages after it, each parsed into a small object
the server can inspect to plan a fast path (e.g. seek with a filter's range before sorting). ``apply_stages`` runs
the operator stages over a row stream, lazily where the stage allows it.

Errors are ``PipelineError`` carrying the HTTP status, body and content type Pendo answers with (§B-3, §B-9). Where
the evidence is silent about a shape, the request is rejected (400) rather than interpreted.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar, Literal

import orjson

from integration_tests.pendo_emulator.expressions import (
    ANONYMOUS_PREFIX,
    Binary,
    Expr,
    ExpressionError,
    Field,
    _tokenize,
    conjuncts,
    current_time_ms,
    evaluate_constant,
    is_field_path,
    parse,
    path_getter,
)
from integration_tests.pendo_emulator.expressions import (
    Literal as LiteralExpr,
)

Row = dict[str, Any]
AppIds = Literal["default", "all"] | frozenset[int]

PIPELINE_REQUIRED_BODY = '{"overall":{},"fields":{"pipeline":"Required"}}'
"""Body of the 422 for a request without ``request.pipeline`` (§B-9)."""
PIPELINE_REQUIRED_400_BODY = "Bad Request: request.pipeline is required"
"""Body of the same refusal as a 400 (``text/plain``), under the ``bad_request_400`` reading (R-6)."""
FILTER_PARSE_ERROR = "Cannot parse filter expression"
"""Body of the 400 for an unparseable filter (§B-3)."""

SOURCE_NAMES = frozenset(
    {
        "visitors",
        "accounts",
        "events",
        "featureEvents",
        "pageEvents",
        "trackEvents",
        "guideEvents",
        "pollEvents",
        "features",
        "pages",
        "guides",
        "trackTypes",
    }
)
"""The connector-relevant sources the emulator serves (§B-5, §B-14-§B-16; `pages`, `features`, `guides` as §B-4)."""
PERIODS = frozenset({"dayRange", "hourRange"})
"""``timeSeries.period`` values (§B-11)."""
_ALL_APPS = frozenset({'expandAppIds("*")', "expandAppIds(`*`)"})
_APP_ID_RE = re.compile(r"-?[0-9]+")
_ABSENT = object()


class PipelineError(Exception):
    """A request Pendo refuses, with the status, body and content type of its answer (§B-3)."""

    def __init__(self, status: int, body: str, content_type: str) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.content_type = content_type


def _bad_request(message: str) -> PipelineError:
    return PipelineError(400, message, "text/plain")


# ---------------------------------------------------------------------------------------------------------------
# Ordering


_SORT_RANKS: dict[type, int] = {type(None): 0, bool: 1, int: 2, float: 2, str: 3}


def sort_key(value: Any) -> tuple[int, Any]:
    """Total order for ``sort``: null < booleans < numbers < strings < lists/objects (by JSON text).

    Keyset paging (§B-17) needs deterministic ordering, numeric timestamps and code-point string order; the
    cross-kind order is the emulator's choice (Pendo does not document it).
    """
    rank = _SORT_RANKS.get(type(value))
    if rank is None:
        return 4, orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rank, value


# ---------------------------------------------------------------------------------------------------------------
# Operator stages (§F-2)


class Stage(ABC):
    """One operator stage after the source; ``kind`` is its JSON operator name."""

    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_json(cls, argument: Any) -> Stage:
        """Parse the stage's JSON argument, raising ``PipelineError`` (400) when it is malformed."""

    @abstractmethod
    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        """Transform the row stream; ``now()`` in expressions is ``now_ms``."""


def _parse_expression(text: Any, error: str) -> Expr:
    if not isinstance(text, str):
        raise _bad_request(error)
    try:
        return parse(text)
    except ExpressionError as err:
        raise _bad_request(error) from err


def _parse_path(text: Any, stage: str) -> str:
    """A dotted field path argument (§F-2: nested fields by dotted names)."""
    if not isinstance(text, str) or not is_field_path(text):
        raise _bad_request(f"Invalid field {text!r} in {stage}")
    return text


@dataclass(frozen=True)
class FilterStage(Stage):
    """``{"filter": "<expr>"}``: keep the rows where the expression is truthy."""

    kind: ClassVar[str] = "filter"
    text: str
    expr: Expr

    @classmethod
    def from_json(cls, argument: Any) -> FilterStage:
        return cls(argument, _parse_expression(argument, FILTER_PARSE_ERROR))

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        return filter(self.expr.compile(now_ms), rows)


@dataclass(frozen=True)
class SortStage(Stage):
    """``{"sort": ["f", "-g"]}``: stable multi-key sort in ``sort_key`` order, ``-`` = descending (§B-13, §B-17).

    ``keys`` are the validated entries as sent, e.g. ``("metadata.auto.lastupdated", "-accountId")``.
    """

    kind: ClassVar[str] = "sort"
    keys: tuple[str, ...]

    @classmethod
    def from_json(cls, argument: Any) -> SortStage:
        if not isinstance(argument, list) or not argument:
            raise _bad_request("sort needs a non-empty list of fields")
        for key in argument:
            _parse_path(key[1:] if isinstance(key, str) and key.startswith("-") else key, "sort")
        return cls(tuple(argument))

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        """One stable pass per key, least significant first, gives the multi-key order with ties kept."""
        ordered = list(rows)
        for key in reversed(self.keys):
            descending = key.startswith("-")
            ordered.sort(key=_sort_key_of(key[1:] if descending else key, ordered), reverse=descending)
        return iter(ordered)


def _sort_key_of(field: str, rows: list[Row]) -> Callable[[Row], Any]:
    """Key function for one field: the raw value when ``rows`` hold only numbers or only strings there (the
    same order as ``sort_key``, and CPython sorts such keys much faster), else ``sort_key`` of the value."""
    get = path_getter(field)
    types = {type(value) for value in map(get, rows)}
    if types <= {int, float} or types == {str}:
        return get
    return lambda row: sort_key(get(row))


@dataclass(frozen=True)
class LimitStage(Stage):
    """``{"limit": N}``: the first N rows, exactly (§B-17)."""

    kind: ClassVar[str] = "limit"
    n: int

    @classmethod
    def from_json(cls, argument: Any) -> LimitStage:
        if type(argument) is not int or argument < 0:
            raise _bad_request("limit needs a non-negative integer")
        return cls(argument)

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        return islice(rows, self.n)


@dataclass(frozen=True)
class Assignment:
    """An output field and the expression computing it (``select`` and ``eval``)."""

    target: str
    expr: Expr

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.target.split("."))


def _parse_assignments(argument: Any, stage: str, nested: bool) -> tuple[Assignment, ...]:
    """``{"out": "expr", ...}``; dotted targets only where the stage creates nested objects (``eval``)."""
    if not isinstance(argument, dict) or not argument:
        raise _bad_request(f"{stage} needs an object of field expressions")
    assignments = []
    for target, text in argument.items():
        if "." in _parse_path(target, stage) and not nested:
            raise _bad_request(f"{stage} field names cannot contain '.'")
        assignments.append(Assignment(target, _parse_expression(text, f"Cannot parse {stage} expression")))
    return tuple(assignments)


@dataclass(frozen=True)
class SelectStage(Stage):
    """``{"select": {"out": "expr"}}``: rows with exactly these keys (§F-2)."""

    kind: ClassVar[str] = "select"
    fields: tuple[Assignment, ...]

    @classmethod
    def from_json(cls, argument: Any) -> SelectStage:
        return cls(_parse_assignments(argument, "select", nested=False))

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        compiled = [(field.target, field.expr.compile(now_ms)) for field in self.fields]
        return ({name: fn(row) for name, fn in compiled} for row in rows)


@dataclass(frozen=True)
class EvalStage(Stage):
    """``{"eval": {"a.b": "expr"}}``: add or overwrite fields, keep the rest; dotted targets nest (§F-2).

    Every expression sees the input row (Pendo's JSON object has no key order to evaluate them in). Input rows
    are never mutated: the row and every object on a target path are copied.
    """

    kind: ClassVar[str] = "eval"
    assignments: tuple[Assignment, ...]

    @classmethod
    def from_json(cls, argument: Any) -> EvalStage:
        return cls(_parse_assignments(argument, "eval", nested=True))

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        compiled = [(field.path, field.expr.compile(now_ms)) for field in self.assignments]

        def evaluate(row: Row) -> Row:
            values = [(path, fn(row)) for path, fn in compiled]
            result = dict(row)
            for path, value in values:
                _assign(result, path, value)
            return result

        return map(evaluate, rows)


def _assign(row: Row, path: tuple[str, ...], value: Any) -> None:
    """Set ``path`` in ``row``, copying (or creating, where absent or null) the objects along it."""
    target = row
    for key in path[:-1]:
        child = target.get(key)
        if child is not None and type(child) is not dict:
            raise _bad_request(f"eval cannot set {'.'.join(path)}: {key} is not an object")
        target[key] = child = dict(child or {})
        target = child
    target[path[-1]] = value


@dataclass(frozen=True)
class IdentifiedStage(Stage):
    """``{"identified": "visitorId"}`` drops anonymous ``_PENDO_T_`` ids; ``"!visitorId"`` keeps only them
    (§B-13, §F-2).

    ``field`` is the validated argument as sent, ``!`` included.
    """

    kind: ClassVar[str] = "identified"
    field: str

    @property
    def anonymous(self) -> bool:
        """True for ``"!field"``: keep only anonymous ids."""
        return self.field.startswith("!")

    @property
    def path(self) -> str:
        return self.field[1:] if self.anonymous else self.field

    @classmethod
    def from_json(cls, argument: Any) -> IdentifiedStage:
        anonymous = isinstance(argument, str) and argument.startswith("!")
        _parse_path(argument[1:] if anonymous else argument, "identified")
        return cls(argument)

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        get = path_getter(self.path)
        keep = self.anonymous
        return (row for row in rows if _is_anonymous(get(row)) is keep)


def _is_anonymous(value: Any) -> bool:
    return type(value) is str and value.startswith(ANONYMOUS_PREFIX)


@dataclass(frozen=True)
class CountStage(Stage):
    """``{"count": null}``: the stream becomes one row ``{"count": N}`` (§B-13)."""

    kind: ClassVar[str] = "count"

    @classmethod
    def from_json(cls, argument: Any) -> CountStage:
        if argument is not None:
            raise _bad_request("count takes null")
        return cls()

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        return iter([{"count": sum(1 for _ in rows)}])


_AGGREGATORS = frozenset({"count", "sum", "min", "max", "first", "list"})
"""``group`` aggregators the emulator serves (§F-2; third-party compilations list ``sum, count, countIf, avg,
min, max, first, list``; the example bodies show ``sum``, ``list``, ``first``). Any other is refused with 400."""


@dataclass(frozen=True)
class Aggregate:
    """One output field of ``group``: ``{"out": {"<aggregator>": "<field path>" | null}}``."""

    target: str
    aggregator: str
    path: str | None


def _parse_aggregates(fields: Any) -> tuple[Aggregate, ...]:
    """``fields`` as an object map or a list of one-key objects (§F-2: both forms)."""
    if isinstance(fields, dict):
        items = list(fields.items())
    elif isinstance(fields, list) and all(isinstance(f, dict) and len(f) == 1 for f in fields):
        items = [next(iter(f.items())) for f in fields]
    else:
        raise _bad_request("group.fields must be an object or a list of one-field objects")
    aggregates = []
    for target, spec in items:
        if not isinstance(target, str) or "." in target or not is_field_path(target):
            raise _bad_request(f"Invalid group output field {target!r}")
        if not isinstance(spec, dict) or len(spec) != 1:
            raise _bad_request(f"group field {target} needs exactly one aggregator")
        ((aggregator, path),) = spec.items()
        if aggregator not in _AGGREGATORS:
            raise _bad_request(f"Unsupported group aggregator {aggregator!r}")
        if path is None and aggregator != "count":
            raise _bad_request(f"group aggregator {aggregator} needs a field")
        aggregates.append(Aggregate(target, aggregator, None if path is None else _parse_path(path, "group")))
    return tuple(aggregates)


@dataclass(frozen=True)
class GroupStage(Stage):
    """``{"group": {"group": ["f", ...], "fields": {"out": {"sum": "g"}}}}``: one row per distinct value of the
    group fields (their values under the names given), plus each aggregate over the group's rows (§F-2):
    ``count`` null counts rows, ``count`` of a field counts its distinct non-null values; ``sum`` adds the
    numbers (null and missing count as nothing); ``min``/``max`` of the non-null values; ``first`` the first
    row's value; ``list`` the values in row order. Groups come out in the order their first row arrived (the
    order of Pendo's output is not documented; the connector never relies on it)."""

    kind: ClassVar[str] = "group"
    keys: tuple[str, ...]
    aggregates: tuple[Aggregate, ...]

    @classmethod
    def from_json(cls, argument: Any) -> GroupStage:
        if not isinstance(argument, dict) or set(argument) - {"group", "fields"}:
            raise _bad_request('group needs {"group": [fields], "fields": {...}}')
        keys = argument.get("group") or []
        if not isinstance(keys, list):
            raise _bad_request("group.group must be a list of fields")
        return cls(
            tuple(_parse_path(k, "group") for k in keys), _parse_aggregates(argument.get("fields") or {})
        )

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        getters = [path_getter(k) for k in self.keys]
        values = [(a, None if a.path is None else path_getter(a.path)) for a in self.aggregates]
        groups: dict[bytes, tuple[Row, list[Row]]] = {}
        for row in rows:
            key_values = [get(row) for get in getters]
            ident = orjson.dumps(key_values, option=orjson.OPT_SORT_KEYS)
            if ident not in groups:
                groups[ident] = (dict(zip(self.keys, key_values, strict=True)), [])
            groups[ident][1].append(row)
        for head, members in groups.values():
            out = dict(head)
            for aggregate, get in values:
                out[aggregate.target] = _aggregate(aggregate.aggregator, get, members)
            yield out


def _aggregate(aggregator: str, get: Callable[[Row], Any] | None, rows: list[Row]) -> Any:
    if get is None:  # count: null
        return len(rows)
    found = [get(row) for row in rows]
    present = [v for v in found if v is not None]
    if aggregator == "count":
        return len({orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in present})
    if aggregator == "sum":
        if any(type(v) not in (int, float) for v in present):
            raise _bad_request("sum of a field that is not a number")
        return sum(present)
    if aggregator in ("min", "max"):
        if not present:
            return None
        pick = min if aggregator == "min" else max
        return pick(present, key=sort_key)
    if aggregator == "first":
        return found[0] if found else None
    return found  # list


@dataclass(frozen=True)
class UnwindStage(Stage):
    """``{"unwind": {"field": "f", "index": "i", "keepEmpty": true}}``: one row per element of the list ``f``,
    the element in place of the list, its position in ``index`` when named (§F-2: Pendo's NPS body).
    A row whose field is missing, null or an empty list is dropped, or kept once with the field null when
    ``keepEmpty``; a value that is not a list is kept as one element."""

    kind: ClassVar[str] = "unwind"
    field: str
    index: str | None
    keep_empty: bool

    @classmethod
    def from_json(cls, argument: Any) -> UnwindStage:
        if (
            not isinstance(argument, dict)
            or "field" not in argument
            or set(argument) - {"field", "index", "keepEmpty"}
        ):
            raise _bad_request('unwind needs {"field": "<list field>"}')
        index = argument.get("index")
        keep = argument.get("keepEmpty", False)
        if not isinstance(keep, bool):
            raise _bad_request("unwind.keepEmpty must be true or false")
        return cls(
            _parse_path(argument["field"], "unwind"),
            None if index is None else _parse_path(index, "unwind"),
            keep,
        )

    def apply(self, rows: Iterator[Row], now_ms: int) -> Iterator[Row]:
        path = tuple(self.field.split("."))
        get = path_getter(self.field)
        for row in rows:
            value = get(row)
            items = value if isinstance(value, list) else [] if value is None else [value]
            if not items:
                if self.keep_empty:
                    out = dict(row)
                    _assign(out, path, None)
                    yield out
                continue
            for position, item in enumerate(items):
                out = dict(row)
                _assign(out, path, item)
                if self.index is not None:
                    _assign(out, tuple(self.index.split(".")), position)
                yield out


_STAGE_TYPES: dict[str, type[Stage]] = {
    stage.kind: stage
    for stage in (
        FilterStage,
        SortStage,
        LimitStage,
        SelectStage,
        EvalStage,
        IdentifiedStage,
        CountStage,
        GroupStage,
        UnwindStage,
    )
}


def apply_stages(rows: Iterable[Row], stages: Iterable[Stage], now_ms: int | None = None) -> Iterator[Row]:
    """Run ``stages`` over ``rows``; lazy except for ``sort``, ``count`` and ``group``, which must see every row.

    Nothing runs until the first row is requested. An expression that fails on a row (e.g. ``"a" - 1``) ends the
    stream with ``PipelineError`` 400, like any other rejected request.
    """
    try:
        now = current_time_ms() if now_ms is None else now_ms
        stream = iter(rows)
        for stage in stages:
            stream = stage.apply(stream, now)
        yield from stream
    except ExpressionError as err:
        raise _bad_request(str(err)) from err


# ---------------------------------------------------------------------------------------------------------------
# Envelope and source stage (§B-9, §B-10, §B-11)


@dataclass(frozen=True)
class TimeSeries:
    """``timeSeries`` with ``first``/``last`` resolved to epoch ms; exactly one of ``count``/``last_ms`` is set."""

    period: str
    first_ms: int
    count: int | None
    last_ms: int | None


@dataclass(frozen=True)
class AggregationRequest:
    """A validated aggregation request; ``app_ids`` is ``"default"``, ``"all"`` or explicit app ids (§B-10)."""

    source_name: str
    app_ids: AppIds
    params: dict[str, Any]
    time_series: TimeSeries | None
    stages: list[Stage]


def parse_request(
    body: Any, now_ms: int | None = None, readings: frozenset[str] = frozenset()
) -> AggregationRequest:
    """Validate an aggregation body; ``now_ms`` is the clock for ``now()`` in ``timeSeries`` (default: real time).

    Unknown keys anywhere in the envelope and unknown source params are ignored (§B-9). ``readings``
    (readings.py) may make validation stricter (``strict_value_forms``, ``strict_filters``) or turn the
    422 answers into 400 (``bad_request_400``).
    """
    pipeline = _pipeline(body, readings)
    if not pipeline or not isinstance(pipeline[0], dict) or list(pipeline[0]) != ["source"]:
        raise _bad_request('The first pipeline stage must be {"source": {...}}')
    spec = pipeline[0]["source"]
    source_name, params = _source(spec)
    time_series = spec.get("timeSeries", _ABSENT)
    app_id = params.pop("appId", _ABSENT)
    if "strict_value_forms" in readings:
        _check_value_forms(app_id, time_series, readings)
    stages = [_stage(stage) for stage in pipeline[1:]]
    if "strict_filters" in readings:
        for stage in stages:
            if isinstance(stage, FilterStage) and not is_simple_filter(stage.text):
                raise rejected(readings, "filter", FILTER_PARSE_ERROR)
    return AggregationRequest(
        source_name=source_name,
        app_ids=_app_ids(app_id),
        params=params,
        time_series=None if time_series is _ABSENT else _time_series(time_series, now_ms),
        stages=stages,
    )


def rejected(readings: frozenset[str], field: str, message: str) -> PipelineError:
    """A request the stricter readings refuse: 422 with the validator body (§B-3's form) by default, 400
    ``text/plain`` under ``bad_request_400`` (R-6)."""
    if "bad_request_400" in readings:
        return _bad_request(message)
    return PipelineError(
        422, orjson.dumps({"overall": {}, "fields": {field: message}}).decode(), "application/json"
    )


_NUMERIC_STRING_RE = re.compile(r"-?[0-9]+")
# `!=` is not among them: no production client or Pendo-owned body sends it (BEHAVIOR.md §B-12), so under
# this reading Pendo may refuse it.
_SIMPLE_COMPARISONS = frozenset({"==", "<", "<=", ">", ">="})


def _check_value_forms(app_id: Any, time_series: Any, readings: frozenset[str]) -> None:
    """R-10 (``strict_value_forms``): only the forms production clients send (TAP, EST, Pendo's ETL examples)."""
    if app_id is not _ABSENT and not (
        app_id == 'expandAppIds("*")'
        or (isinstance(app_id, str) and _NUMERIC_STRING_RE.fullmatch(app_id))
        or (
            isinstance(app_id, list)
            and app_id
            and all(isinstance(a, str) and _NUMERIC_STRING_RE.fullmatch(a) for a in app_id)
        )
    ):
        raise rejected(readings, "appId", "Invalid appId")
    if not isinstance(time_series, dict):
        return
    numeric_string = lambda v: isinstance(v, str) and _NUMERIC_STRING_RE.fullmatch(v) is not None  # noqa: E731
    first, last, count = (time_series.get(k, _ABSENT) for k in ("first", "last", "count"))
    if first is not _ABSENT and not (type(first) is int or numeric_string(first) or first == "now()"):
        raise rejected(readings, "timeSeries.first", "Invalid timeSeries.first")
    if last is not _ABSENT and not (numeric_string(last) or last == "now()"):
        raise rejected(readings, "timeSeries.last", "Invalid timeSeries.last")
    if count is not _ABSENT and type(count) is not int:
        raise rejected(readings, "timeSeries.count", "Invalid timeSeries.count")


def is_simple_filter(text: str) -> bool:
    """R-11 (``strict_filters``): ``&&`` of ``field <op> literal`` comparisons (``== < <= > >=``; no ``!=``), no
    ``||``, ``!``, parentheses, function calls or unary minus (a negative literal is ``-`` and a number)."""
    try:
        tokens = _tokenize(text)
        expr = parse(text)
    except ExpressionError:
        return False
    if any(t.kind == "op" and t.text in ("||", "!", "(", ")", ",", "-") for t in tokens):
        return False
    for part in conjuncts(expr):
        if not (isinstance(part, Binary) and part.op in _SIMPLE_COMPARISONS):
            return False
        sides = {type(part.left), type(part.right)}
        if sides != {Field, LiteralExpr}:
            return False
    return True


def _pipeline(body: Any, readings: frozenset[str] = frozenset()) -> list[Any]:
    """``request.pipeline``, or the 422 Pendo gives when it is missing (§B-9); 400 under ``bad_request_400``."""
    request = body.get("request") if isinstance(body, dict) else None
    pipeline = request.get("pipeline") if isinstance(request, dict) else None
    if not isinstance(pipeline, list):
        if "bad_request_400" in readings:
            raise _bad_request(PIPELINE_REQUIRED_400_BODY)
        raise PipelineError(422, PIPELINE_REQUIRED_BODY, "application/json")
    return pipeline


def _source(spec: Any) -> tuple[str, dict[str, Any]]:
    """The one source name beside ``timeSeries`` and a copy of its params (``null`` and ``{}`` alike, §F-2)."""
    names = [key for key in spec if key != "timeSeries"] if isinstance(spec, dict) else []
    if len(names) != 1:
        raise _bad_request("source needs exactly one source name besides timeSeries")
    name = names[0]
    if name not in SOURCE_NAMES:
        raise _bad_request(f"Unknown source {name!r}")
    params = spec[name]
    if params is not None and not isinstance(params, dict):
        raise _bad_request(f"{name} params must be an object or null")
    return name, dict(params or {})


def _app_ids(value: Any) -> AppIds:
    """``appId``: absent → default app, ``expandAppIds("*")`` → all apps, else an id or a list of ids (§B-10)."""
    if value is _ABSENT:
        return "default"
    if isinstance(value, str) and value in _ALL_APPS:
        return "all"
    return frozenset(_app_id(item) for item in (value if isinstance(value, list) else [value]))


def _app_id(value: Any) -> int:
    """App ids are integers; TAP sends them as numeric strings (§B-0, §B-10)."""
    if type(value) is int:
        return value
    if isinstance(value, str) and _APP_ID_RE.fullmatch(value):
        return int(value)
    raise _bad_request(f"Invalid appId {value!r}")


def _time_series(spec: Any, now_ms: int | None) -> TimeSeries:
    """``{"period", "first", "count" | "last"}`` (§B-11); times may be numbers, numeric strings or expressions."""
    if not isinstance(spec, dict) or spec.get("period") not in PERIODS:
        raise _bad_request("timeSeries.period must be dayRange or hourRange")
    if "first" not in spec or ("count" in spec) == ("last" in spec):
        raise _bad_request("timeSeries needs first and exactly one of count or last")
    count = spec.get("count")
    if "count" in spec and type(count) is not int:
        raise _bad_request("timeSeries.count must be an integer")
    now = current_time_ms() if now_ms is None else now_ms
    return TimeSeries(
        period=spec["period"],
        first_ms=_time(spec["first"], "first", now),
        count=count,
        last_ms=_time(spec["last"], "last", now) if "last" in spec else None,
    )


def _time(value: Any, name: str, now_ms: int) -> int:
    try:
        return evaluate_constant(value, now_ms)
    except ExpressionError as err:
        raise _bad_request(f"Cannot parse timeSeries.{name}") from err


def _stage(stage: Any) -> Stage:
    """An operator stage: a one-key object naming a supported operator (§F-2)."""
    if not isinstance(stage, dict) or len(stage) != 1:
        raise _bad_request("Each pipeline stage must be an object with exactly one operator")
    ((name, argument),) = stage.items()
    stage_type = _STAGE_TYPES.get(name)
    if stage_type is None:
        raise _bad_request(f"Unsupported pipeline operator {name!r}")
    return stage_type.from_json(argument)
