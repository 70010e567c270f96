"""Pendo's aggregation expression language (BEHAVIOR.md §B-12, §F-2), as the emulator understands it.

Expressions appear in the ``filter``, ``select`` and ``eval`` stages and in ``timeSeries`` ``first``/``last``
(§B-11). Text is tokenised, parsed by a Pratt parser into a small immutable AST and compiled into nested closures,
so evaluating a row costs a few Python calls instead of a tree walk. Sub-expressions that do not read the row
(literals, ``now()``, ``date(...)``, arithmetic on those) are folded once at compile time.

The range helpers at the bottom (``conjuncts``, ``field_bound``, ``lex_lower_bound``) recognise the filter shapes
of connector keyset paging (§B-17) so the server can seek into sorted data instead of scanning every row.

Anything Pendo's public bodies do not attest is rejected rather than guessed: ``in [...]`` and brackets,
assignment, functions the emulator does not implement, malformed literals. ``ExpressionError`` is what the
server turns into ``400 Cannot parse filter expression`` (§B-3).
"""

from __future__ import annotations

import json
import math
import operator
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

Row = Mapping[str, Any]
Fn = Callable[[Row], Any]

ANONYMOUS_PREFIX = "_PENDO_T_"
"""Anonymous visitor ids are ``_PENDO_T_`` + 11 characters (§B-0)."""

_NUMBER_TYPES = (int, float)
_MAX_EXACT_FLOAT = 2**53
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
_NO_ROW: Row = {}


class ExpressionError(ValueError):
    """An expression Pendo would refuse to parse (§B-12 → HTTP 400, §B-3) or a value it cannot evaluate."""


def current_time_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every Pendo timestamp (§B-18)."""
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------------------------
# Values: kinds, equality, ordering, arithmetic (C-like, §R-11; numbers are floats, missing fields are null)


_KINDS: dict[type, str] = {
    type(None): "null",
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "list",
    dict: "object",
}


def _kind(value: Any) -> str:
    """JSON kind of a value; ``bool`` is its own kind, never a number."""
    return _KINDS.get(type(value), "other")


def _normalize(number: int | float) -> int | float:
    """Pendo numbers are floats (§B-12); integral results are returned as ``int`` so epoch ms stay exact."""
    if type(number) is float:
        if not math.isfinite(number):
            raise ExpressionError("number out of range")
        if number.is_integer() and abs(number) <= _MAX_EXACT_FLOAT:
            return int(number)
    return number


def _equal(left: Any, right: Any) -> bool:
    """``==`` works across kinds: different kinds are unequal, ``null == null`` (§B-12 null semantics)."""
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "list":
        return len(left) == len(right) and all(map(_equal, left, right))
    if kind == "object":
        return left.keys() == right.keys() and all(_equal(left[key], right[key]) for key in left)
    return bool(left == right)


def _ordering(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """Ordering holds only between two numbers or two strings (code-point order); otherwise it is false."""

    def test(left: Any, right: Any) -> bool:
        kind = _kind(left)
        return kind in ("number", "string") and kind == _kind(right) and compare(left, right)

    return test


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "!=": lambda left, right: not _equal(left, right),
    **{op: _ordering(compare) for op, compare in _ORDER.items()},
}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _numeric_operands(symbol: str, left: Any, right: Any) -> bool:
    """True for two numbers, False when either is null (a missing field); any other operand is an error."""
    if left is None or right is None:
        return False
    if type(left) in _NUMBER_TYPES and type(right) in _NUMBER_TYPES:
        return True
    raise ExpressionError(f"'{symbol}' needs numbers, got {_kind(left)} and {_kind(right)}")


def _arithmetic(symbol: str, compute: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Numeric operator: a null operand gives null."""

    def apply(left: Any, right: Any) -> Any:
        return _normalize(compute(left, right)) if _numeric_operands(symbol, left, right) else None

    return apply


def _divide(left: int | float, right: int | float) -> float:
    if right == 0:
        raise ExpressionError("division by zero")
    return left / right


def _remainder(left: int | float, right: int | float) -> int | float:
    """C's ``%`` (C-like, §R-11): the result takes the sign of the dividend."""
    if right == 0:
        raise ExpressionError("division by zero")
    if type(left) is int and type(right) is int:
        magnitude = abs(left) % abs(right)
        return -magnitude if left < 0 else magnitude
    return math.fmod(left, right)


_numeric_add = _arithmetic("+", operator.add)


def _add(left: Any, right: Any) -> Any:
    """``+`` concatenates two strings, otherwise adds numbers."""
    if type(left) is str and type(right) is str:
        return left + right
    return _numeric_add(left, right)


_BINARY_VALUE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _arithmetic("-", operator.sub),
    "*": _arithmetic("*", operator.mul),
    "/": _arithmetic("/", _divide),
    "%": _arithmetic("%", _remainder),
}


def _negate(value: Any) -> Any:
    if value is None:
        return None
    if type(value) in _NUMBER_TYPES:
        return -value
    raise ExpressionError(f"unary '-' needs a number, got {_kind(value)}")


# ---------------------------------------------------------------------------------------------------------------
# Functions (§F-2; the ones the emulator does not implement are unknown, hence parse errors)


def _is_empty(value: Any) -> bool:
    return value is None or (type(value) in (str, list, dict) and not value)


def _contains(haystack: Any, needle: Any) -> bool:
    """Substring test for strings, membership for lists, false for anything else (e.g. a missing field)."""
    if type(haystack) is str:
        return type(needle) is str and needle in haystack
    if type(haystack) is list:
        return any(_equal(item, needle) for item in haystack)
    return False


def _starts_with(text: Any, prefix: Any) -> bool:
    return type(text) is str and type(prefix) is str and text.startswith(prefix)


def _length(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) in (str, list, dict):
        return len(value)
    raise ExpressionError(f"len() needs a string, list or object, got {_kind(value)}")


def _is_identified(value: Any) -> bool:
    """``identified(x)``: a visitor id that is not anonymous (§B-0 ``_PENDO_T_`` prefix)."""
    return type(value) is str and not value.startswith(ANONYMOUS_PREFIX)


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MILLISECOND


def _is_whole(value: Any) -> bool:
    return type(value) is int or (type(value) is float and value.is_integer())


def _date(*parts: Any) -> int:
    """``date(y, m, d[, h, mi, s])`` or ``date("YYYY-MM-DD")`` as UTC epoch ms.

    §F-2 marks the time zone of ``date()`` as unconfirmed; the emulator uses UTC.
    """
    if len(parts) == 1:
        text = parts[0]
        if type(text) is not str or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ExpressionError('date() with one argument needs a "YYYY-MM-DD" string')
        parts = tuple(int(piece) for piece in text.split("-"))
    elif not all(_is_whole(part) for part in parts):
        raise ExpressionError("date() needs whole numbers")
    year, month, day, hour, minute, second = [int(part) for part in parts] + [0] * (6 - len(parts))
    try:
        return _epoch_ms(datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc))
    except (ValueError, OverflowError) as err:
        raise ExpressionError(f"invalid date: {err}") from err


_UNIT_MS = {
    "seconds": 1_000,
    "minutes": 60_000,
    "hours": 3_600_000,
    "days": 86_400_000,
    "weeks": 604_800_000,
}


def _date_add(moment: Any, amount: Any, unit: Any) -> int | float | None:
    """``dateAdd(ms, n, unit)`` (§B-11 example ``dateAdd(now(), -7, "days")``); a null time gives null."""
    step = _UNIT_MS.get(unit) if type(unit) is str else None
    if step is None:
        raise ExpressionError(f"dateAdd() unit must be one of {', '.join(_UNIT_MS)}")
    return _normalize(moment + amount * step) if _numeric_operands("dateAdd", moment, amount) else None


def _eager(impl: Callable[..., Any]) -> Callable[[tuple[Fn, ...], int], Fn]:
    """Builder for a function that evaluates all of its arguments."""

    def build(args: tuple[Fn, ...], now: int) -> Fn:
        if len(args) == 1:
            (only,) = args
            return lambda row: impl(only(row))
        return lambda row: impl(*[arg(row) for arg in args])

    return build


def _build_now(args: tuple[Fn, ...], now: int) -> Fn:
    """``now()`` is fixed per request, so every row sees the same instant."""
    return _Const(now)


def _build_if(args: tuple[Fn, ...], now: int) -> Fn:
    """``if(c, a, b)`` evaluates only the branch it returns."""
    condition, then, otherwise = args
    return lambda row: then(row) if condition(row) else otherwise(row)


@dataclass(frozen=True)
class _Function:
    arities: frozenset[int]
    build: Callable[[tuple[Fn, ...], int], Fn]


_FUNCTIONS: dict[str, _Function] = {
    "isNull": _Function(frozenset({1}), _eager(lambda value: value is None)),
    "isEmpty": _Function(frozenset({1}), _eager(_is_empty)),
    "contains": _Function(frozenset({2}), _eager(_contains)),
    "startsWith": _Function(frozenset({2}), _eager(_starts_with)),
    "len": _Function(frozenset({1}), _eager(_length)),
    "now": _Function(frozenset({0}), _build_now),
    "if": _Function(frozenset({3}), _build_if),
    "date": _Function(frozenset({1, 3, 6}), _eager(_date)),
    "dateAdd": _Function(frozenset({3}), _eager(_date_add)),
    "identified": _Function(frozenset({1}), _eager(_is_identified)),
}


# ---------------------------------------------------------------------------------------------------------------
# AST and compilation


class _Const:
    """A compiled expression whose value does not depend on the row."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, row: Row) -> Any:
        return self.value


class Expr(ABC):
    """A parsed expression; immutable and reusable across requests."""

    @property
    def children(self) -> tuple[Expr, ...]:
        return ()

    @cached_property
    def row_independent(self) -> bool:
        """True when the value never reads the row (it may still depend on ``now()``)."""
        return all(child.row_independent for child in self.children)

    def compile(self, now_ms: int | None = None) -> Fn:
        """A function row → value, with ``now()`` fixed to ``now_ms`` (default: the current time)."""
        return _compile(self, current_time_ms() if now_ms is None else now_ms)

    def evaluate(self, row: Row, now_ms: int | None = None) -> Any:
        """The value of this expression for one row (compiles each call; use ``compile`` for many rows)."""
        return self.compile(now_ms)(row)

    @abstractmethod
    def _build(self, now: int) -> Fn:
        """The closure computing this node, given compiled children and the request clock."""


def _compile(expr: Expr, now: int) -> Fn:
    """Build the closure for ``expr`` and fold it to a constant when it does not read the row."""
    fn = expr._build(now)
    if expr.row_independent and not isinstance(fn, _Const):
        return _Const(fn(_NO_ROW))
    return fn


@dataclass(frozen=True)
class Literal(Expr):
    """A number, string, ``true``, ``false`` or ``null``."""

    value: Any

    def _build(self, now: int) -> Fn:
        return _Const(self.value)


@dataclass(frozen=True)
class Field(Expr):
    """A dotted field path such as ``metadata.auto.lastupdated``; a missing path is null (§B-12)."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @cached_property
    def row_independent(self) -> bool:
        return False

    def _build(self, now: int) -> Fn:
        return _getter(self.path)


@dataclass(frozen=True)
class Unary(Expr):
    """``!x`` (logical not of the truthiness) or ``-x``."""

    op: str
    operand: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)

    def _build(self, now: int) -> Fn:
        operand = _compile(self.operand, now)
        if self.op == "!":
            return lambda row: not operand(row)
        return lambda row: _negate(operand(row))


@dataclass(frozen=True)
class Binary(Expr):
    """A binary operator: ``|| && == != < <= > >= + - * / %``."""

    op: str
    left: Expr
    right: Expr

    @property
    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def _build(self, now: int) -> Fn:
        left, right = _compile(self.left, now), _compile(self.right, now)
        if self.op == "&&":
            return lambda row: bool(left(row)) and bool(right(row))
        if self.op == "||":
            return lambda row: bool(left(row)) or bool(right(row))
        if self.op in _COMPARE:
            return _build_comparison(self.op, left, right)
        compute = _BINARY_VALUE_OPS[self.op]
        return lambda row: compute(left(row), right(row))


@dataclass(frozen=True)
class Call(Expr):
    """A call of one of the supported functions."""

    name: str
    args: tuple[Expr, ...]

    @property
    def children(self) -> tuple[Expr, ...]:
        return self.args

    def _build(self, now: int) -> Fn:
        return _FUNCTIONS[self.name].build(tuple(_compile(arg, now) for arg in self.args), now)


def _build_comparison(op: str, left: Fn, right: Fn) -> Fn:
    """Comparison closure; the common ``field OP constant`` shape gets a specialised fast path."""
    if isinstance(right, _Const) and not isinstance(left, _Const):
        return _compare_to_constant(op, left, right.value)
    if isinstance(left, _Const) and not isinstance(right, _Const):
        return _compare_to_constant(_MIRROR[op], right, left.value)
    test = _COMPARE[op]
    return lambda row: test(left(row), right(row))


def _compare_to_constant(op: str, subject: Fn, constant: Any) -> Fn:
    """``subject OP constant`` with the same semantics as ``_COMPARE`` but no per-row kind lookup of the constant."""
    if op in ("==", "!="):
        same = _equals_constant(subject, constant)
        return same if op == "==" else lambda row: not same(row)
    kind = _kind(constant)
    if kind not in ("number", "string"):
        test = _COMPARE[op]
        return lambda row: test(subject(row), constant)
    types = _NUMBER_TYPES if kind == "number" else (str,)
    compare = _ORDER[op]

    def ordered(row: Row) -> bool:
        value = subject(row)
        return type(value) in types and compare(value, constant)

    return ordered


def _equals_constant(subject: Fn, constant: Any) -> Fn:
    kind = _kind(constant)
    if kind in ("null", "bool"):
        return lambda row: subject(row) is constant
    if kind == "string":
        return lambda row: subject(row) == constant
    if kind == "number":

        def equals_number(row: Row) -> bool:
            value = subject(row)
            return type(value) in _NUMBER_TYPES and value == constant

        return equals_number
    return lambda row: _equal(subject(row), constant)


# ---------------------------------------------------------------------------------------------------------------
# Field paths


_PATH_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z0-9_$]+)*")
_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_RESERVED = frozenset({"in"})


def is_field_path(text: str) -> bool:
    """Whether ``text`` is a dotted field path (§F-2) usable outside expressions."""
    head = text.split(".", 1)[0]
    return bool(_PATH_RE.fullmatch(text)) and head not in _RESERVED and head not in _KEYWORDS


def path_getter(path: str) -> Fn:
    """A function reading the dotted ``path`` from a row (null when missing), as field references do."""
    if not is_field_path(path):
        raise ExpressionError(f"invalid field path {path!r}")
    return _getter(tuple(path.split(".")))


def _getter(path: tuple[str, ...]) -> Fn:
    """Read a path from a row; any missing or non-object step gives null (§B-12)."""
    head, *rest = path
    if not rest:
        return lambda row: row.get(head)

    def get(row: Row) -> Any:
        value = row.get(head)
        for key in rest:
            if type(value) is not dict:
                return None
            value = value.get(key)
        return value

    return get


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer and parser


_TOKEN_RE = re.compile(
    rf"""
      (?P<space>[\ \t\r\n]+)
    | (?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<name>{_PATH_RE.pattern})
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<op>\|\||&&|==|!=|<=|>=|[<>+\-*/%!(),])
    """,
    re.VERBOSE | re.DOTALL,
)
_PRECEDENCE = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/", "%"))
"""Binary operators from loosest to tightest binding, as in C (§R-11)."""
_BINARY_POWER = {op: power for power, ops in enumerate(_PRECEDENCE, start=1) for op in ops}
_UNARY_POWER = len(_PRECEDENCE) + 1


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, op, end
    text: str
    value: Any
    pos: int


def _number_literal(text: str) -> int | float:
    if text.isdigit():
        return int(text)
    return _normalize(float(text))


def _string_literal(text: str, pos: int) -> str:
    """Double-quoted strings use JSON escapes (§B-12: Estuary escapes ``\\`` and ``"`` inside ids)."""
    try:
        return str(json.loads(text))
    except ValueError as err:
        raise ExpressionError(f"invalid string literal at {pos}: {err}") from err


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            what = "unterminated string" if text[pos] in '"`' else f"unexpected character {text[pos]!r}"
            raise ExpressionError(f"{what} at {pos}")
        kind, lexeme = match.lastgroup or "", match.group()
        if kind == "number":
            tokens.append(_Token(kind, lexeme, _number_literal(lexeme), pos))
        elif kind == "string":
            tokens.append(_Token(kind, lexeme, _string_literal(lexeme, pos), pos))
        elif kind == "raw":
            tokens.append(_Token("string", lexeme, lexeme[1:-1], pos))
        elif kind != "space":
            tokens.append(_Token(kind, lexeme, lexeme, pos))
        pos = match.end()
    tokens.append(_Token("end", "end of input", None, pos))
    return tokens


class _Parser:
    """Pratt parser with C precedence: ``||`` < ``&&`` < equality < relational < additive < multiplicative."""

    def __init__(self, text: str) -> None:
        self._tokens = _tokenize(text)
        self._index = 0

    def parse(self) -> Expr:
        if self._peek().kind == "end":
            raise ExpressionError("empty expression")
        expr = self._expression(0)
        if self._peek().kind != "end":
            raise self._unexpected(self._peek())
        return expr

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _peek_op(self, text: str) -> bool:
        token = self._peek()
        return token.kind == "op" and token.text == text

    def _expect(self, text: str) -> None:
        token = self._next()
        if token.kind != "op" or token.text != text:
            raise self._unexpected(token, f"expected '{text}'")

    @staticmethod
    def _unexpected(token: _Token, hint: str = "") -> ExpressionError:
        suffix = f" ({hint})" if hint else ""
        return ExpressionError(f"unexpected {token.text!r} at {token.pos}{suffix}")

    def _expression(self, min_power: int) -> Expr:
        left = self._prefix()
        while True:
            token = self._peek()
            power = _BINARY_POWER.get(token.text) if token.kind == "op" else None
            if power is None or power <= min_power:
                return left
            self._next()
            left = Binary(token.text, left, self._expression(power))

    def _prefix(self) -> Expr:
        token = self._next()
        if token.kind in ("number", "string"):
            return Literal(token.value)
        if token.kind == "name":
            return self._call(token) if self._peek_op("(") else self._name(token)
        if token.kind == "op" and token.text == "(":
            inner = self._expression(0)
            self._expect(")")
            return inner
        if token.kind == "op" and token.text in ("!", "-"):
            return self._unary(token.text, self._expression(_UNARY_POWER))
        raise self._unexpected(token)

    @staticmethod
    def _unary(op: str, operand: Expr) -> Expr:
        """A minus sign on a number literal is folded so ``-7`` is a literal (range analysis relies on it)."""
        if op == "-" and isinstance(operand, Literal) and _kind(operand.value) == "number":
            return Literal(-operand.value)
        return Unary(op, operand)

    @staticmethod
    def _name(token: _Token) -> Expr:
        if token.text in _KEYWORDS:
            return Literal(_KEYWORDS[token.text])
        if not is_field_path(token.text):
            raise ExpressionError(f"{token.text!r} at {token.pos} is not a field path")
        return Field(tuple(token.text.split(".")))

    def _call(self, token: _Token) -> Expr:
        function = _FUNCTIONS.get(token.text)
        if function is None:
            raise ExpressionError(f"unknown function {token.text!r} at {token.pos}")
        self._expect("(")
        args: list[Expr] = []
        if not self._peek_op(")"):
            args.append(self._expression(0))
            while self._peek_op(","):
                self._next()
                args.append(self._expression(0))
        self._expect(")")
        if len(args) not in function.arities:
            raise ExpressionError(
                f"{token.text}() takes {sorted(function.arities)} arguments, got {len(args)}"
            )
        return Call(token.text, tuple(args))


def parse(text: str) -> Expr:
    """Parse an expression; raise ``ExpressionError`` for anything Pendo would not parse (§B-12).

    Constant sub-expressions are evaluated once here, so ``date(2024, 2, 30)`` or ``1 / 0`` fail at parse time.
    """
    if not isinstance(text, str):
        raise ExpressionError("an expression must be a string")
    expr = _Parser(text).parse()
    expr.compile(0)
    return expr


def compile_predicate(text: str | Expr, now_ms: int | None = None) -> Callable[[Row], bool]:
    """A row predicate for a ``filter`` stage: the truthiness of the expression (§B-12)."""
    fn = (parse(text) if isinstance(text, str) else text).compile(now_ms)
    return lambda row: bool(fn(row))


def evaluate_constant(value: Any, now_ms: int | None) -> int:
    """Epoch ms of a ``timeSeries`` ``first``/``last`` value (§B-11).

    Accepts an integer, a float (rounded), a numeric string (``"1709269200000"``) or an expression string such as
    ``now()``, ``dateAdd(now(), -7, "days")`` or ``date(2024, 3, 1)``. The expression may not read row fields.
    """
    if type(value) is int:
        return value
    if type(value) is float:
        return _round_ms(value)
    if type(value) is not str:
        raise ExpressionError(f"a time must be a number or an expression, got {_kind(value)}")
    expr = parse(value)
    if not expr.row_independent:
        raise ExpressionError("a time expression cannot refer to row fields")
    result = expr.evaluate(_NO_ROW, now_ms)
    if _kind(result) != "number":
        raise ExpressionError(f"a time expression must give a number, got {_kind(result)}")
    return _round_ms(result)


def _round_ms(value: int | float) -> int:
    if not math.isfinite(value):
        raise ExpressionError("time out of range")
    return round(value)


# ---------------------------------------------------------------------------------------------------------------
# Range analysis for keyset paging (§B-17)


@dataclass(frozen=True)
class Bound:
    """The rows a comparison ``field OP constant`` keeps, as a range of the constant's kind.

    Comparisons never hold across kinds (semantics above), so a bound on a number only admits numbers and a
    bound on a string only strings. ``None`` marks an open side (still restricted to that kind).
    """

    lower: Any
    lower_inclusive: bool
    upper: Any
    upper_inclusive: bool


_RANGE_OPS = frozenset({"==", "<", "<=", ">", ">="})


def conjuncts(expr: Expr) -> list[Expr]:
    """The operands of a top-level chain of ``&&`` (the whole expression when there is none)."""
    if isinstance(expr, Binary) and expr.op == "&&":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


def _field_comparison(expr: Expr, field: str) -> tuple[str, int | float | str] | None:
    """``(op, constant)`` when ``expr`` compares ``field`` with a number or string literal, field side first."""
    if not isinstance(expr, Binary) or expr.op not in _RANGE_OPS:
        return None
    for subject, constant, op in (
        (expr.left, expr.right, expr.op),
        (expr.right, expr.left, _MIRROR[expr.op]),
    ):
        if (
            isinstance(subject, Field)
            and subject.name == field
            and isinstance(constant, Literal)
            and _kind(constant.value) in ("number", "string")
        ):
            return op, constant.value
    return None


def field_bound(expr: Expr, field: str) -> Bound | None:
    """The range of ``field`` that ``expr`` keeps when it is exactly one comparison with a constant, else None."""
    comparison = _field_comparison(expr, field)
    if comparison is None:
        return None
    op, constant = comparison
    if op == "==":
        return Bound(constant, True, constant, True)
    if op in (">", ">="):
        return Bound(constant, op == ">=", None, False)
    return Bound(None, False, constant, op == "<=")


def _tie_break(expr: Expr, first: str, second: str) -> tuple[Any, str, Any] | None:
    """``(a, op, b)`` for ``first == a && second OP b`` (either operand order) with OP ``>`` or ``>=``."""
    if not isinstance(expr, Binary) or expr.op != "&&":
        return None
    for equality, tail in ((expr.left, expr.right), (expr.right, expr.left)):
        tie, after = _field_comparison(equality, first), _field_comparison(tail, second)
        if tie and after and tie[0] == "==" and after[0] in (">", ">="):
            return tie[1], after[0], after[1]
    return None


def lex_lower_bound(expr: Expr, fields: tuple[str, str]) -> tuple[Any, Any, bool] | None:
    """``(a, b, inclusive)`` when ``expr`` is exactly ``f1 > a || (f1 == a && f2 >= b)`` (or ``f2 > b``).

    This is the keyset continuation filter of §B-17, i.e. ``(f1, f2) >= (a, b)`` lexicographically
    (``>`` when not inclusive), restricted to the kinds of ``a`` and ``b``. Operands may appear in either order.
    """
    first, second = fields
    if not isinstance(expr, Binary) or expr.op != "||":
        return None
    for strict, tied in ((expr.left, expr.right), (expr.right, expr.left)):
        head, tail = _field_comparison(strict, first), _tie_break(tied, first, second)
        if head and tail and head[0] == ">" and _equal(head[1], tail[0]):
            return head[1], tail[2], tail[1] == ">="
    return None
