"""Pendo's expression language as the emulator implements it (BEHAVIOR.md §B-11, §B-12, §B-17)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integration_tests.pendo_emulator.expressions import (
    Bound,
    ExpressionError,
    compile_predicate,
    conjuncts,
    current_time_ms,
    evaluate_constant,
    field_bound,
    lex_lower_bound,
    parse,
    path_getter,
)

NOW = 1_709_305_390_000
DAY_MS = 86_400_000


def value_of(text: str, row: dict[str, Any] | None = None) -> Any:
    return parse(text).evaluate(row or {}, now_ms=NOW)


def matches(text: str, row: dict[str, Any]) -> bool:
    return compile_predicate(text, now_ms=NOW)(row)


# --- Filters connectors send (§B-12) --------------------------------------------------------------------------

CONNECTOR_FILTERS = [
    ('visitorId>""', {"visitorId": "a"}, True),
    ('visitorId>""', {"visitorId": ""}, False),
    ('visitorId>""', {}, False),
    ('visitorId>"abc"', {"visitorId": "abd"}, True),
    ('visitorId>"abc"', {"visitorId": "abc"}, False),
    ('visitorId>"abc"', {"visitorId": "ab"}, False),
    ('visitorId>"41"', {"visitorId": "5"}, True),
    ("metadata.auto.lastupdated>=1", {"metadata": {"auto": {"lastupdated": 1}}}, True),
    ("metadata.auto.lastupdated>=1", {"metadata": {"auto": {}}}, False),
    ("metadata.auto.lastupdated>=1", {"metadata": "not an object"}, False),
    (
        "metadata.auto.lastupdated>=1709269200000",
        {"metadata": {"auto": {"lastupdated": 1709269200000}}},
        True,
    ),
    (
        "metadata.auto.lastupdated>=1709269200000",
        {"metadata": {"auto": {"lastupdated": 1709269199999}}},
        False,
    ),
    (
        "metadata.auto.lastupdated >= 1709269200000",
        {"metadata": {"auto": {"lastupdated": 1709305390000}}},
        True,
    ),
    ("day>=1709269200000", {"day": 1709269200000}, True),
    ("day>=1709269200000", {"day": 1709182800000}, False),
    ("hour>=1709301600000", {"hour": 1709301600000}, True),
    ("hour>=1709301600000", {"hour": 1709298000000}, False),
    ("browserTime>=1709269200000", {"browserTime": 1709305380812}, True),
    ("lastUpdatedAt >= 100 && lastUpdatedAt <= 200", {"lastUpdatedAt": 200}, True),
    ("lastUpdatedAt >= 100 && lastUpdatedAt <= 200", {"lastUpdatedAt": 201}, False),
    ("lastUpdatedAt>=100&&lastUpdatedAt<=200", {"lastUpdatedAt": 99}, False),
    (
        'guideTimestamp == 1709305380812 && guideId >= "abc"',
        {"guideTimestamp": 1709305380812, "guideId": "abc"},
        True,
    ),
    (
        'guideTimestamp == 1709305380812 && guideId >= "abc"',
        {"guideTimestamp": 1709305380812, "guideId": "abb"},
        False,
    ),
    (
        'guideTimestamp == 1709305380812 && guideId >= "abc"',
        {"guideTimestamp": 1709305380813, "guideId": "b"},
        False,
    ),
    (
        "lastTime >= 1709301600000 && hour < 1709305200000",
        {"lastTime": 1709302051000, "hour": 1709301600000},
        True,
    ),
    (
        "lastTime >= 1709301600000 && hour < 1709305200000",
        {"lastTime": 1709302051000, "hour": 1709305200000},
        False,
    ),
    ('id > "abc"', {"id": "abd"}, True),
    ('id>"abc"', {"id": "-AsTA2Rjbf2Z4MeGdfhWLaRVri4"}, False),
    (
        "guideTimestamp >= 1709301600000 && guideTimestamp <= 1709388000000",
        {"guideTimestamp": 1709305380812},
        True,
    ),
]


@pytest.mark.parametrize(("text", "row", "expected"), CONNECTOR_FILTERS)
def test_connector_filter_keeps_exactly_the_matching_rows(
    text: str, row: dict[str, Any], expected: bool
) -> None:
    assert matches(text, row) is expected


# --- Literals and escaping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "visitor_id", ['say "hi"', "back\\slash", 'both\\"', "slash/ok", "é ü 🙂", "tab\there"]
)
def test_filter_with_json_escaped_id_matches_that_id(visitor_id: str) -> None:
    """Estuary escapes ``\\`` and ``"`` inside ids (§B-12); JSON escaping round-trips every id."""
    text = f"visitorId == {json.dumps(visitor_id)}"
    assert matches(text, {"visitorId": visitor_id})
    assert not matches(text, {"visitorId": visitor_id + "x"})


def test_double_quoted_string_supports_json_escapes() -> None:
    assert value_of(r'"a\"b\\c\/d\ne\tf\u00e9\ud83d\ude42"') == 'a"b\\c/d\ne\tfé🙂'


@pytest.mark.parametrize("text", [r'"\q"', r'"\u12"', '"line\nbreak"'])
def test_invalid_double_quoted_string_is_rejected(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


def test_filter_with_backtick_string_matches() -> None:
    assert matches("id==`abc`", {"id": "abc"})
    assert not matches("id==`abc`", {"id": "abd"})


def test_backtick_string_is_raw() -> None:
    assert value_of(r"`a\nb\"`") == 'a\\nb\\"'


def test_integer_literals_stay_exact_ints() -> None:
    value = value_of("1709269200000 + 1")
    assert value == 1709269200001
    assert type(value) is int


def test_integral_float_literals_become_ints() -> None:
    assert type(value_of("2.0")) is int
    assert value_of("1.5e3") == 1500
    assert value_of("2.5") == 2.5


def test_keyword_literals() -> None:
    assert value_of("true") is True
    assert value_of("false") is False
    assert value_of("null") is None


def test_field_path_with_digits_underscores_and_dollar() -> None:
    row = {"metadata": {"auto__323232": {"lastvisit": 5}}, "$x": {"a_1": 2}}
    assert value_of("metadata.auto__323232.lastvisit", row) == 5
    assert value_of("$x.a_1", row) == 2
    assert value_of("metadata.missing.deeper", row) is None


# --- Operators and precedence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("8 / 4 / 2", 1),
        ("-2 * 3", -6),
        ("- -2", 2),
        ("7 % 3 + 1", 2),
        ("true || false && false", True),
        ("(true || false) && false", False),
        ("!false && false", False),
        ("!(false && false)", True),
        ("1 < 2 == true", True),
        ("1 + 1 == 2 && 2 * 2 == 4", True),
        ("1 == 1 || 1 / 1 == 2", True),
    ],
)
def test_operators_follow_c_precedence(text: str, expected: Any) -> None:
    assert value_of(text) == expected


def test_division_gives_a_fraction_and_integral_results_are_ints() -> None:
    assert value_of("7 / 2") == 3.5
    assert type(value_of("6 / 3")) is int


def test_remainder_takes_the_sign_of_the_dividend() -> None:
    assert value_of("-7 % 3") == -1
    assert value_of("7 % -3") == 1
    assert value_of("7.5 % 2") == 1.5


def test_plus_concatenates_strings() -> None:
    assert value_of('"ab" + `cd`') == "abcd"


def test_arithmetic_with_a_missing_field_is_null() -> None:
    assert value_of("missing + 1") is None
    assert value_of("-missing") is None
    assert not matches("missing * 2 > 0", {})


@pytest.mark.parametrize("text", ["name - 1", "name + 1", "-name", "flag * 2"])
def test_arithmetic_on_non_numbers_is_an_error(text: str) -> None:
    with pytest.raises(ExpressionError):
        value_of(text, {"name": "s", "flag": True})


def test_logical_operators_return_booleans_of_truthiness() -> None:
    row = {"name": "x", "zero": 0, "empty": ""}
    assert value_of("name && 1", row) is True
    assert value_of("zero || empty", row) is False
    assert value_of("!empty", row) is True


# --- Comparison and null semantics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("missing == null", True),
        ("missing != null", False),
        ("null == null", True),
        ("null < null", False),
        ("missing < 5", False),
        ("missing >= 5", False),
        ('missing >= ""', False),
        ("nothing == missing", True),
        ('1 == "1"', False),
        ('1 != "1"', True),
        ("true == 1", False),
        ("flag > 0", False),
        ("flag == true", True),
        ('"a" > 1', False),
        ('"a" < 1', False),
        ("1 == 1.0", True),
        ("2 > 1.5", True),
        ('"b" > "abc"', True),
        ('"Z" < "a"', True),
        ('"é" > "z"', True),
        ("list == list", True),
        ("list == obj", False),
    ],
)
def test_comparison_semantics(text: str, expected: bool) -> None:
    row = {"nothing": None, "flag": True, "list": [1, {"a": True}], "obj": {"a": 1}}
    assert value_of(text, row) is expected


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ("day == 5", {"day": 5.0}, True),
        ("day == 1", {"day": True}, False),
        ("5 < day", {"day": 6}, True),
        ("5 < day", {"day": "6"}, False),
        ('"a" <= name', {"name": "a"}, True),
        ("flag == true", {"flag": 1}, False),
        ("flag != false", {"flag": None}, True),
        ("day >= null", {"day": None}, False),
        ("day == null", {"day": None}, True),
    ],
)
def test_comparison_with_a_constant_has_the_same_semantics(
    text: str, row: dict[str, Any], expected: bool
) -> None:
    assert matches(text, row) is expected


# --- Functions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("isNull(missing)", True),
        ("isNull(zero)", False),
        ("isEmpty(missing)", True),
        ('isEmpty("")', True),
        ("isEmpty(emptyList)", True),
        ("isEmpty(emptyObject)", True),
        ("isEmpty(zero)", False),
        ('isEmpty(" ")', False),
        ('contains("hello", "ell")', True),
        ('contains("hello", "xyz")', False),
        ("contains(ids, 2)", True),
        ('contains(ids, "2")', False),
        ("contains(missing, 1)", False),
        ('startsWith("_PENDO_T_abc", "_PENDO_T_")', True),
        ('startsWith(missing, "a")', False),
        ('len("héllo")', 5),
        ("len(ids)", 3),
        ("len(missing)", None),
        ('if(zero, "yes", "no")', "no"),
        ('if(ids, "yes", "no")', "yes"),
        ('identified("42")', True),
        ('identified("_PENDO_T_dPRrqg5DlCC")', False),
        ("identified(missing)", False),
        ("now()", NOW),
        ("date(2024, 3, 1)", 1709251200000),
        ("date(2024, 3, 1, 12, 30, 15)", 1709296215000),
        ('date("2024-03-01")', 1709251200000),
        ('dateAdd(date(2024, 3, 8), -7, "days")', 1709251200000),
        ('dateAdd(0, 2, "weeks")', 14 * DAY_MS),
        ('dateAdd(0, 3, "hours") + dateAdd(0, 4, "minutes") + dateAdd(0, 5, "seconds")', 11_045_000),
        ('dateAdd(missing, 1, "days")', None),
    ],
)
def test_function_results(text: str, expected: Any) -> None:
    row = {"zero": 0, "emptyList": [], "emptyObject": {}, "ids": [1, 2, 3]}
    assert value_of(text, row) == expected


def test_if_evaluates_only_the_chosen_branch() -> None:
    assert value_of("if(true, 1, name - 1)", {"name": "s"}) == 1


def test_now_is_fixed_per_compile() -> None:
    fn = parse("now()").compile(now_ms=123)
    assert fn({}) == fn({"x": 1}) == 123


@pytest.mark.parametrize(
    "text",
    [
        "date(2024, 2, 30)",
        "date(2024, 3)",
        "date(2024, 3, 1, 12)",
        "date(2024.5, 3, 1)",
        'date("2024-3-1")',
        'date("March 1")',
        'dateAdd(now(), 1, "months")',
        'dateAdd(now(), 1, "day")',
        'dateAdd("x", 1, "days")',
        "len(5)",
        "1 / 0",
        "5 % 0",
    ],
)
def test_invalid_constant_arguments_are_parse_errors(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


def test_invalid_function_argument_from_a_row_is_an_evaluation_error() -> None:
    fn = parse("dateAdd(ts, 1, unit)").compile(now_ms=NOW)
    assert fn({"ts": 0, "unit": "days"}) == DAY_MS
    with pytest.raises(ExpressionError):
        fn({"ts": 0, "unit": "months"})


@pytest.mark.parametrize(
    "text",
    ["foo(1)", "dateDist(1, 2)", "startOfPeriod(`monthly`, now())", "expandAppIds(`*`)", "a.b(1)", "true(1)"],
)
def test_unknown_function_is_a_parse_error(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


@pytest.mark.parametrize("text", ["now(1)", "isNull()", "isNull(a, b)", "if(a, b)", "contains(a)"])
def test_wrong_number_of_arguments_is_a_parse_error(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


# --- Rejected syntax ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x in [1,2]",
        'visitorId in ["a", "b"]',
        "x in y",
        "in",
        "a[0]",
        "[1]",
        "a = 1",
        "a := 1",
        '"abc',
        "`abc",
        "'abc'",
        "",
        "   ",
        "a b",
        "a ==",
        "== a",
        "(a",
        "a)",
        "()",
        "a.",
        "a..b",
        ".a",
        "1.",
        ".5",
        "1x",
        "a & b",
        "a | b",
        "a === b",
        "f(",
        "isNull(a,)",
        "true.x",
        "null.x",
        "{}",
        "a ? b : c",
        "a !",
    ],
)
def test_malformed_expression_is_rejected(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse(text)


def test_expression_error_is_a_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)


def test_non_string_expression_is_rejected() -> None:
    with pytest.raises(ExpressionError):
        parse(5)  # type: ignore[arg-type]


# --- Predicates, constants, paths -----------------------------------------------------------------------------


def test_compile_predicate_uses_truthiness() -> None:
    assert compile_predicate("name")({"name": "x"}) is True
    assert compile_predicate("count")({"count": 0}) is False
    assert compile_predicate("missing")({}) is False


def test_compile_predicate_accepts_a_parsed_expression() -> None:
    assert compile_predicate(parse("day >= now() - 1000"), now_ms=NOW)({"day": NOW - 1000})


def test_parsed_expression_is_reusable_across_clocks() -> None:
    expr = parse("now()")
    assert expr.evaluate({}, now_ms=1) == 1
    assert expr.evaluate({}, now_ms=2) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1709269200000, 1709269200000),
        (1709269200000.4, 1709269200000),
        ("1709269200000", 1709269200000),
        (" 1709269200000 ", 1709269200000),
        ("now()", NOW),
        ('dateAdd(now(), -7, "days")', NOW - 7 * DAY_MS),
        ("now() - 30 * 1000*60*60*24", NOW - 30 * DAY_MS),
        ("date(2024, 3, 1)", 1709251200000),
        ("now() / 7", round(NOW / 7)),
        (-5, -5),
    ],
)
def test_evaluate_constant_accepts_timeseries_values(value: Any, expected: int) -> None:
    result = evaluate_constant(value, NOW)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", [None, True, [1], {}, '"abc"', "day", "now() + day", "now(", "", "true"])
def test_evaluate_constant_rejects_non_times(value: Any) -> None:
    with pytest.raises(ExpressionError):
        evaluate_constant(value, NOW)


def test_evaluate_constant_defaults_to_the_real_clock() -> None:
    before = current_time_ms()
    assert before <= evaluate_constant("now()", None) <= current_time_ms()


def test_path_getter_reads_dotted_paths_and_rejects_bad_ones() -> None:
    assert path_getter("a.b")({"a": {"b": 1}}) == 1
    assert path_getter("a.b")({"a": [1]}) is None
    for bad in ["", "a.", "-a", "a b", "null", "in"]:
        with pytest.raises(ExpressionError):
            path_getter(bad)


# --- Range analysis (§B-17 keyset paging) ---------------------------------------------------------------------


def test_conjuncts_flattens_top_level_and_only() -> None:
    assert len(conjuncts(parse("a && (b && c) && d"))) == 4
    assert len(conjuncts(parse("a || b && c"))) == 1
    assert len(conjuncts(parse("(a && b) || c"))) == 1
    assert conjuncts(parse("day >= 5")) == [parse("day >= 5")]


@pytest.mark.parametrize(
    ("text", "field", "bound"),
    [
        ("day >= 5", "day", Bound(5, True, None, False)),
        ("day > 5", "day", Bound(5, False, None, False)),
        ("5 <= day", "day", Bound(5, True, None, False)),
        ("5 < day", "day", Bound(5, False, None, False)),
        ("day <= 5", "day", Bound(None, False, 5, True)),
        ("5 > day", "day", Bound(None, False, 5, False)),
        ("day == 5", "day", Bound(5, True, 5, True)),
        ("5 == day", "day", Bound(5, True, 5, True)),
        ("day >= -5", "day", Bound(-5, True, None, False)),
        ("(day >= 1.5)", "day", Bound(1.5, True, None, False)),
        ('visitorId > ""', "visitorId", Bound("", False, None, False)),
        (
            "metadata.auto.lastupdated>=1709269200000",
            "metadata.auto.lastupdated",
            Bound(1709269200000, True, None, False),
        ),
        ("id == `abc`", "id", Bound("abc", True, "abc", True)),
    ],
)
def test_field_bound_recognises_a_single_comparison_with_a_constant(
    text: str, field: str, bound: Bound
) -> None:
    assert field_bound(parse(text), field) == bound


@pytest.mark.parametrize(
    "text",
    [
        "day != 5",
        "day >= 5 && day < 7",
        "day >= 5 || day < 2",
        "other >= 5",
        "day.sub >= 5",
        "day >= other",
        "day >= null",
        "day == null",
        "day >= true",
        "day + 1 >= 5",
        "day >= 5 + 1",
        "day >= now()",
        "!(day >= 5)",
        "isNull(day)",
        "day",
    ],
)
def test_field_bound_rejects_anything_but_that_exact_shape(text: str) -> None:
    assert field_bound(parse(text), "day") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('day > 5 || (day == 5 && visitorId >= "a")', (5, "a", True)),
        ('day > 5 || (day == 5 && visitorId > "a")', (5, "a", False)),
        ('day > 5 || day == 5 && visitorId >= "a"', (5, "a", True)),
        ('day>5||(5==day&&visitorId>="a")', (5, "a", True)),
        ('(visitorId >= "a" && day == 5) || day > 5', (5, "a", True)),
        ('5 < day || (day == 5 && "a" <= visitorId)', (5, "a", True)),
        ('day > 5.0 || (day == 5 && visitorId >= "a")', (5.0, "a", True)),
    ],
)
def test_lex_lower_bound_recognises_the_keyset_pattern(text: str, expected: tuple[Any, Any, bool]) -> None:
    assert lex_lower_bound(parse(text), ("day", "visitorId")) == expected


@pytest.mark.parametrize(
    "text",
    [
        'day > 5 || visitorId >= "a"',
        'day > 5 || (day == 6 && visitorId >= "a")',
        'day > 5 || (day == "5" && visitorId >= "a")',
        'day >= 5 || (day == 5 && visitorId >= "a")',
        'day > 5 && (day == 5 && visitorId >= "a")',
        'day > 5 || (day == 5 || visitorId >= "a")',
        'day > 5 || (day == 5 && visitorId <= "a")',
        'day > 5 || (day == 5 && visitorId == "a")',
        'day > 5 || (day >= 5 && visitorId >= "a")',
        'day > 5 || (day == 5 && accountId >= "a")',
        'day > 5 || (day == 5 && visitorId >= "a" && x)',
        'visitorId > "a" || (visitorId == "a" && day >= 5)',
        'day > 5 || (day == 5 && visitorId >= "a") || x',
        "day > 5 || (day == 5 && visitorId >= null)",
        "day > 5 || (day == 5 && visitorId >= other)",
        "day >= 5",
    ],
)
def test_lex_lower_bound_rejects_near_misses(text: str) -> None:
    assert lex_lower_bound(parse(text), ("day", "visitorId")) is None
