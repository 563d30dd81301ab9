"""Druid expressions: syntax and precedence, types and nulls, every function, errors, vectorised evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from druidflow.exceptions import SpecError
from druidflow.expressions import FUNCTION_NAMES, compile_expression, java_strings, parse_timestamps
from druidflow.granularity import TimeZone
from druidflow.intervals import parse_instant


def one(expr: str, **columns):
    """Evaluate on a one-row batch; returns (value, arrow type)."""
    batch = pa.record_batch({k: (v if isinstance(v, pa.Array) else pa.array([v])) for k, v in columns.items()} or {"_": [0]})
    out = compile_expression(expr).evaluate(batch)
    assert len(out) == 1
    return out[0].as_py(), out.type


def val(expr: str, **columns):
    return one(expr, **columns)[0]


def col(expr: str, **columns) -> list:
    return compile_expression(expr).evaluate(pa.record_batch(columns)).to_pylist()


# ---------------------------------------------------------------------------------------------------------------
# Syntax and precedence (Druid's grammar)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),  # left-associative
        ("100 / 10 / 5", 2),
        ("2 ^ 3 ^ 2", 512),  # right-associative
        ("-2 ^ 2", 4),  # unary minus binds tighter than ^ in Druid's grammar
        ("2 * 3 ^ 2", 18),
        ("7 % 4 * 2", 6),
        ("1 + 2 < 4", 1),
        ("1 < 2 == 1", 1),  # comparisons share a level, left to right
        ("1 || 0 && 0", 0),  # && and || share a level: (1 || 0) && 0
        ("0 && 0 || 1", 1),
        ("!0 + 1", 2),  # ! binds tighter than +
        ("- -3", 3),
        ("-(2 + 3)", -5),
        ("  1+2  ", 3),
    ],
)
def test_precedence_and_associativity(expr, expected):
    assert val(expr) == expected


@pytest.mark.parametrize(
    "expr, expected, arrow_type",
    [
        ("42", 42, pa.int64()),
        ("1.5", 1.5, pa.float64()),
        ("2.", 2.0, pa.float64()),
        ("1e3", 1000.0, pa.float64()),
        ("2.5E-1", 0.25, pa.float64()),
        ("'it\\'s'", "it's", pa.string()),
        ("'tab\\there'", "tab\there", pa.string()),
        ("'\\u00e9t\\u00e9'", "été", pa.string()),
        ("-9223372036854775808", -(2**63), pa.int64()),
        ("null", None, pa.string()),
    ],
)
def test_literals(expr, expected, arrow_type):
    assert one(expr) == (expected, arrow_type)


def test_nan_and_infinity_literals():
    assert math.isnan(val("NaN")) and val("Infinity") == math.inf and val("-Infinity") == -math.inf


def test_identifiers_bare_and_quoted():
    assert val('"page views" + x_1 + $y', **{"page views": 1, "x_1": 2, "$y": 3}) == 6
    assert val('"we\\"ird"', **{'we"ird': "ok"}) == "ok"
    assert compile_expression('concat("a b", c, upper(d)) + e').required_columns == {"a b", "c", "d", "e"}
    assert compile_expression("1 + 2").required_columns == frozenset()


@pytest.mark.parametrize(
    "expr, message",
    [
        ("1 +", "unexpected end of expression at position 3"),
        ("(1 + 2", "expected ')' but found end of expression at position 6"),
        ("1 + * 2", "unexpected '*' at position 4"),
        ("1 2", "unexpected '2' at position 2"),
        ("'abc", "unterminated string literal at position 0"),
        ('"abc', "unterminated quoted identifier at position 0"),
        ("a & b", "unsupported operator '&' (bitwise operators are not supported) at position 2"),
        ("a # b", "unexpected character '#' at position 2"),
        ("'a\\q'", "invalid escape '\\q' at position 2"),
        ("foo(1)", "unknown function 'foo' at position 0"),
        ("concat(a b)", "expected ',' or ')' but found 'b' at position 9"),
        ("substring(s, 1)", "function 'substring' takes 3 arguments, not 2 at position 0"),
        ("upper()", "function 'upper' takes 1 argument, not 0"),
        ("substring(s, x, 1)", "argument 2 of 'substring' must be a literal at position 13"),
        ("substring(s, -1, 1)", "the index must not be negative"),
        ("left(s, -1)", "needs a non-negative integer"),
        ("cast(a, 'FLOAT')", "the type must be 'LONG', 'DOUBLE', 'STRING', 'ARRAY<LONG>'"),
        ("timestamp_floor(__time, 'hourly')", "ISO-8601 period"),
        ("timestamp_floor(__time, 'PT1H', null, 'Mars/Base')", "unknown time zone"),
        ("timestamp_extract(__time, 'FORTNIGHT')", "unknown unit"),
        ("timestamp_format(__time, 'yyyy-qq')", "pattern letter 'q' is not supported"),
        ("timestamp_parse(s, 'yyyy-MM-dd w')", "pattern letter 'w' is not supported for parsing"),
        ("regexp_like(s, '(a')", "not a valid regular expression"),
        ("like(s, 'a', 'xy')", "the escape must be a single character"),
        ("99999999999999999999", "out of the LONG range"),
    ],
)
def test_syntax_errors_name_the_expression_and_position(expr, message):
    with pytest.raises(SpecError) as exc:
        compile_expression(expr, "transformSpec.transforms[0].expression")
    text = str(exc.value)
    assert message in text
    assert text.startswith("transformSpec.transforms[0].expression: ")
    assert exc.value.value == expr


def test_empty_expression_is_rejected():
    with pytest.raises(SpecError, match="non-empty"):
        compile_expression("   ")


# ---------------------------------------------------------------------------------------------------------------
# Types, arithmetic and nulls
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected, arrow_type",
    [
        ("7 / 2", 3, pa.int64()),  # long division
        ("-7 / 2", -3, pa.int64()),  # towards zero, as Java
        ("7 / 2.0", 3.5, pa.float64()),
        ("7 % -3", 1, pa.int64()),  # Java's remainder takes the dividend's sign
        ("-7 % 3", -1, pa.int64()),
        ("-7.5 % 2", -1.5, pa.float64()),
        ("9223372036854775807 + 1", -(2**63), pa.int64()),  # wraps like Java's long
        ("2 ^ 10", 1024, pa.int64()),
        ("2.0 ^ -1", 0.5, pa.float64()),
        ("7 / 0", None, pa.int64()),  # documented: long division by zero is null
        ("7 % 0", None, pa.int64()),
        ("2 ^ -1", None, pa.int64()),
        ("1.0 / 0", math.inf, pa.float64()),
        ("'3' + 4", 7.0, pa.float64()),  # a numeric string in arithmetic is a DOUBLE
        ("'x' * 2", None, pa.float64()),
        ("'ab' + 'cd'", "abcd", pa.string()),
        ("1 + null", None, pa.int64()),
        ("null * 2.5", None, pa.float64()),
        ("null + null", None, pa.string()),
    ],
)
def test_arithmetic(expr, expected, arrow_type):
    assert one(expr) == (expected, arrow_type)


def test_string_operands_other_than_plus_are_an_error():
    with pytest.raises(SpecError) as exc:
        compile_expression("'3' * '4'", "expr").evaluate(pa.record_batch({"x": [1]}))
    assert "operator '*' is not supported on two strings at position 4" in str(exc.value)


def test_nan_from_zero_over_zero():
    assert math.isnan(val("0.0 / 0"))


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("'b' > 'a'", 1),
        ("'10' < '9'", 1),  # two strings compare as strings
        ("'10' < 9", 0),  # a number on either side compares numerically
        ("2 == 2.0", 1),
        ("3 != 3", 0),
        ("1 <= 1", 1),
        ("'a' == null", None),
        ("null && 0", 0),  # three-valued logic
        ("0 && null", 0),
        ("null && 1", None),
        ("null || 1", 1),
        ("null || 0", None),
        ("-1 || 0", 0),  # a number is true only when > 0
        ("0.5 && 1", 1),
        ("'TRUE' && 'true'", 1),
        ("'yes' || 0", 0),
        ("!0", 1),
        ("!2", 0),
        ("!-3", 1),
        ("!'true'", 0),
        ("!null", None),
    ],
)
def test_comparison_and_logic(expr, expected):
    assert one(expr) == (expected, pa.int64())


def test_unary_minus_on_a_string_negates_the_number():
    assert val("-s", s="2.5") == -2.5
    assert val("-s", s="abc") is None


def test_column_types_map_to_druid_types():
    batch = pa.table(
        {
            "i8": pa.array([3], pa.int8()),
            "u32": pa.array([4], pa.uint32()),
            "f32": pa.array([0.5], pa.float32()),
            "b": pa.array([True]),
            "dict": pa.array(["x"]).dictionary_encode(),
            "big": pa.array(["y"], pa.large_string()),
            "ts": pa.array([1000], pa.timestamp("ms")),
            "ts_us": pa.array([1_500_000], pa.timestamp("us")),
            "d32": pa.array([1], pa.date32()),
        }
    )
    out = lambda e: compile_expression(e).evaluate(batch)  # noqa: E731
    assert out("i8 + u32").to_pylist() == [7] and out("i8 + u32").type == pa.int64()
    assert out("f32 * 2").type == pa.float64() and out("f32 * 2").to_pylist() == [1.0]
    assert out("b + 1").to_pylist() == [2]
    assert out("concat(dict, big)").to_pylist() == ["xy"]
    assert out("ts + 1").to_pylist() == [1001] and out("ts_us").to_pylist() == [1500]
    assert out("d32").to_pylist() == [86_400_000]


def test_multi_value_columns_in_scalar_functions_are_refused_naming_the_function():
    with pytest.raises(SpecError, match="function 'upper' does not accept ARRAY<STRING> arguments at position 0"):
        compile_expression("upper(tags)").evaluate(pa.record_batch({"tags": pa.array([["a", "b"]])}))


def test_missing_columns_read_as_null():
    assert col("concat(nope, 'x')", a=[1, 2]) == [None, None]
    assert col("nvl(nope, a)", a=[1, 2]) == [1, 2]


def test_evaluation_is_vectorised_over_chunked_tables():
    t = pa.concat_tables([pa.table({"a": [1, 2], "s": ["x", None]}), pa.table({"a": [3, None], "s": ["y", "z"]})])
    assert compile_expression("concat(s, a * 10)").evaluate(t).to_pylist() == ["x10", None, "y30", None]
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert compile_expression("a + 1").evaluate(empty).to_pylist() == []
    assert compile_expression("'k'").evaluate(empty).to_pylist() == []


@pytest.mark.parametrize(
    "value, text",
    [
        (1.0, "1.0"),
        (-2.25, "-2.25"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1.234e-5, "1.234E-5"),
        (1234567.0, "1234567.0"),
        (1e7, "1.0E7"),
        (123456789.0, "1.23456789E8"),
        (1e21, "1.0E21"),
        (0.1 + 0.2, "0.30000000000000004"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (1.7976931348623157e308, "1.7976931348623157E308"),
    ],
)
def test_doubles_print_as_java_does(value, text):
    assert val("concat(x)", x=pa.array([value], pa.float64())) == text
    assert java_strings(pa.array([value, None])).to_pylist() == [text, None]


def test_floats_print_as_java_float_tostring():
    assert java_strings(pa.array([0.3, 1e10, None], pa.float32())).to_pylist() == ["0.3", "1.0E10", None]


# ---------------------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("concat('a', 1, '-', 2.5)", "a1-2.5"),
        ("concat('a', null)", None),
        ("concat()", None),
        ("concat(s)", "héllo"),
        ("upper(s)", "HÉLLO"),
        ("lower('ÀB')", "àb"),
        ("upper(null)", None),
        ("strlen(s)", 5),
        ("strlen(null)", None),
        ("substring('hello', 1, 3)", "ell"),
        ("substring('hello', 3, 10)", "lo"),
        ("substring('hello', 2, -1)", "llo"),
        ("substring('hello', 0, 0)", ""),
        ("substring('hello', 5, 1)", None),  # index past the end gives null (Druid's SQL-compatible default)
        ("substring(null, 0, 1)", None),
        ("replace('banana', 'an', 'AN')", "bANANa"),
        ("replace('banana', '', 'x')", "banana"),
        ("replace(null, 'a', 'b')", None),
        ("trim('  a b  ')", "a b"),
        ("trim('\ta ')", "\ta"),  # only spaces by default, as Druid
        ("trim('xxaxx', 'x')", "a"),
        ("ltrim('  a  ')", "a  "),
        ("rtrim('  a  ')", "  a"),
        ("rtrim('a.,;', ';,.')", "a"),
        ("left('hello', 2)", "he"),
        ("left('hi', 5)", "hi"),
        ("right('hello', 2)", "lo"),
        ("right('hello', 0)", ""),
        ("right(null, 0)", None),
        ("left(12345, 2)", "12"),
        ("abs(-5)", 5),
        ("abs(-2.5)", 2.5),
        ("abs('x')", None),
        ("floor(2.7)", 2.0),
        ("floor(-2.5)", -3.0),
        ("floor(3)", 3.0),
        ("ceil(2.1)", 3.0),
        ("ceil(null)", None),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(2.675, 2)", 2.68),  # decimal HALF_UP on Java's digits, not on the binary value
        ("round(1.005, 2)", 1.01),
        ("round(1.2345, 3)", 1.235),
        ("round(1234.5678, -2)", 1200.0),
        ("round(1250, -2)", 1300),
        ("round(-1250, -2)", -1300),
        ("round(7)", 7),
        ("round(NaN)", 0.0),
        ("round('x')", None),
        ("sqrt(16)", 4.0),
        ("log(1)", 0.0),
        ("log(0)", -math.inf),
        ("exp(0)", 1.0),
        ("pow(2, 10)", 1024.0),
        ("pow('2', 3)", 8.0),
        ("pow('a', 'b')", None),
        ("greatest(1, 3, 2)", 3),
        ("greatest(1, 2.5)", 2.5),
        ("greatest('apple', 'banana')", "banana"),
        ("greatest(10, 'b')", "b"),  # any string makes it a string comparison
        ("greatest(null, 1)", 1),
        ("greatest(null, null)", None),
        ("greatest()", None),
        ("least(3, 1, 2)", 1),
        ("least(2.5, null, 1)", 1.0),
        ("if(1, 'a', 'b')", "a"),
        ("if(0, 'a', 'b')", "b"),
        ("if(null, 'a', 'b')", "b"),
        ("if(1, 1, 2.5)", 1.0),
        ("if(1, 1, 'x')", "1"),
        ("if(0, 1, null)", None),
        ("nvl(null, 5)", 5),
        ("nvl(3, 5)", 3),
        ("nvl(n, 'none')", "none"),
        ("isnull(null)", 1),
        ("isnull(1)", 0),
        ("notnull('x')", 1),
        ("case_searched(0, 'a', 1, 'b', 'c')", "b"),
        ("case_searched(0, 'a', 0, 'b', 'c')", "c"),
        ("case_searched(0, 'a', 0, 'b')", None),
        ("case_searched(null, 'a', 1, 2)", "2"),
        ("case_simple('y', 'x', 1, 'y', 2, 3)", 2),
        ("case_simple('z', 'x', 1, 'y', 2, 3)", 3),
        ("case_simple('z', 'x', 1)", None),
        ("case_simple(1, '1', 'num', 'other')", "num"),  # compared as == compares: numerically
        ("cast('12', 'LONG')", 12),
        ("cast('12.7', 'LONG')", 12),
        ("cast('-12.7', 'long')", -12),
        ("cast('abc', 'LONG')", None),
        ("cast(3.9, 'LONG')", 3),
        ("cast(-3.9, 'LONG')", -3),
        ("cast(NaN, 'LONG')", 0),
        ("cast(1e30, 'LONG')", 2**63 - 1),
        ("cast(5, 'DOUBLE')", 5.0),
        ("cast(' 5', 'DOUBLE')", None),
        ("cast(5, 'STRING')", "5"),
        ("cast(2.0, 'STRING')", "2.0"),
        ("cast(null, 'LONG')", None),
        ("like('apple', 'a%')", 1),
        ("like('apple', '_pple')", 1),
        ("like('apple', 'A%')", 0),
        ("like('a.c', 'a.c')", 1),
        ("like('abc', 'a.c')", 0),  # no regex leaks through
        ("like('100%', '100!%', '!')", 1),
        ("like('1000', '100!%', '!')", 0),
        ("like('line1\nline2', 'line1%')", 1),
        ("like(null, '%')", 0),
        ("regexp_like('apple pie', 'p+ie')", 1),  # matches anywhere
        ("regexp_like('apple', '^b')", 0),
        ("regexp_like(null, '.*')", 0),
        ("contains_string('haystack', 'st')", 1),
        ("contains_string('haystack', 'ST')", 0),
        ("contains_string(null, 'a')", 0),
    ],
)
def test_functions(expr, expected):
    got = val(expr, s="héllo", n=pa.array([None], pa.string()))
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected and type(got) is type(expected)


def test_function_result_types():
    assert one("if(x > 0, 1, 2)", x=1)[1] == pa.int64()
    assert one("greatest(1, 2.0)")[1] == pa.float64()
    assert one("strlen('a')")[1] == pa.int64()
    assert one("floor(3)")[1] == pa.float64()
    assert one("abs(-3)")[1] == pa.int64()
    assert one("round(3)")[1] == pa.int64()
    assert one("timestamp_extract(0, 'CENTURY')")[1] == pa.float64()


def test_every_documented_function_is_tested():
    import druidflow.expressions as module

    for name in FUNCTION_NAMES:
        assert f"``{name}(" in module.__doc__, name
    arrays = Path(__file__).with_name("test_expression_arrays.py").read_text()
    tested = " ".join(p[0] for p in test_functions.pytestmark[0].args[1]) + open(__file__).read() + arrays
    for name in FUNCTION_NAMES:
        assert f"{name}(" in tested, name


# -- time functions ---------------------------------------------------------------------------------------------

LEAP = parse_instant("2024-02-29T13:45:30.123Z")  # a Thursday


@pytest.mark.parametrize(
    "unit, expected",
    [
        ("EPOCH", 1709214330),
        ("MILLISECOND", 123),
        ("SECOND", 30),
        ("MINUTE", 45),
        ("HOUR", 13),
        ("DAY", 29),
        ("DOW", 4),
        ("ISODOW", 4),
        ("DOY", 60),
        ("WEEK", 9),
        ("MONTH", 2),
        ("QUARTER", 1),
        ("YEAR", 2024),
        ("ISOYEAR", 2024),
        ("DECADE", 202),
        ("CENTURY", 21.0),
        ("MILLENNIUM", 3.0),
        ("year", 2024),
    ],
)
def test_timestamp_extract(unit, expected):
    got = val(f"timestamp_extract(__time, '{unit}')", __time=pa.array([LEAP], pa.int64()))
    assert got == expected and type(got) is type(expected)


def test_timestamp_extract_edges():
    new_year = parse_instant("2021-01-01T12:00:00Z")  # a Friday: ISO week 53 of 2020
    t = pa.array([new_year, parse_instant("2024-12-30T00:00:00Z"), -1, None], pa.int64())
    assert col("timestamp_extract(__time, 'WEEK')", __time=t) == [53, 1, 1, None]
    assert col("timestamp_extract(__time, 'ISOYEAR')", __time=t) == [2020, 2025, 1970, None]
    assert col("timestamp_extract(__time, 'DOW')", __time=t) == [5, 1, 3, None]
    assert col("timestamp_extract(__time, 'EPOCH')", __time=t)[2] == 0  # Java's division rounds towards zero
    assert col("timestamp_extract(__time, 'HOUR', 'America/Los_Angeles')", __time=pa.array([LEAP])) == [5]
    assert col("timestamp_extract(__time, 'DAY', 'Asia/Tokyo')", __time=pa.array([parse_instant("2024-02-29T16:00:00Z")])) == [1]


def test_timestamp_floor():
    t = pa.array([LEAP, None, parse_instant("2024-03-10T12:00:00Z")], pa.int64())
    assert col("timestamp_floor(__time, 'PT1H')", __time=t) == [parse_instant("2024-02-29T13:00:00Z"), None,
                                                                parse_instant("2024-03-10T12:00:00Z")]
    assert col("timestamp_floor(__time, 'P1D', null, 'America/Los_Angeles')", __time=t)[2] == parse_instant("2024-03-10T08:00:00Z")
    assert col("timestamp_floor(__time, 'PT2H', '2024-01-01T01:00:00Z')", __time=t)[0] == parse_instant("2024-02-29T13:00:00Z")
    assert col("timestamp_floor(__time, 'P1M')", __time=t)[0] == parse_instant("2024-02-01")
    assert col("timestamp_floor(ts, 'P1D')", ts=pa.array(["86400001"])) == [86_400_000]  # read as a number


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-02", "2024-01-02T00:00:00Z"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02 03:04:05.5", "2024-01-02T03:04:05.500Z"),
        ("2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05.123Z"),
        ("2024-01-02T03:04:05+05:30", "2024-01-01T21:34:05Z"),
        ("2024-01-02T03:04-0800", "2024-01-02T11:04:00Z"),
        ("2024-01-02T03", "2024-01-02T03:00:00Z"),
        ("2024-01", "2024-01-01T00:00:00Z"),
        ("2024-02-30", None),
        ("2024-13-01", None),
        ("2024-01-02T24:00:00", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_timestamp_parse_iso(text, expected):
    got = val("timestamp_parse(s)", s=pa.array([text], pa.string()))
    assert got == (None if expected is None else parse_instant(expected))


@pytest.mark.parametrize(
    "expr, text, expected",
    [
        ("timestamp_parse(s, 'yyyy/MM/dd HH:mm')", "2024/03/04 05:06", "2024-03-04T05:06:00Z"),
        ("timestamp_parse(s, 'yyyyMMddHHmmss')", "20240304050607", "2024-03-04T05:06:07Z"),
        ("timestamp_parse(s, 'dd/MMM/yyyy:HH:mm:ss Z')", "02/Jan/2024:10:00:00 +0100", "2024-01-02T09:00:00Z"),
        ("timestamp_parse(s, 'MMMM d, yyyy')", "february 9, 2024", "2024-02-09T00:00:00Z"),
        ("timestamp_parse(s, 'MM/dd/yy h:mm a')", "03/04/24 1:05 PM", "2024-03-04T13:05:00Z"),
        ("timestamp_parse(s, 'MM/dd/yy h:mm a')", "03/04/24 12:05 AM", "2024-03-04T00:05:00Z"),
        ("timestamp_parse(s, 'EEE, dd MMM yyyy HH:mm:ss ZZ')", "Thu, 29 Feb 2024 13:45:30 -08:00", "2024-02-29T21:45:30Z"),
        ("timestamp_parse(s, 'yyyy-MM-dd HH:mm:ss.SSS ZZZ')", "2024-07-01 12:00:00.250 America/New_York", "2024-07-01T16:00:00.250Z"),
        (r"timestamp_parse(s, 'yyyy-MM-dd\'T\'HH')", "2024-07-01T09", "2024-07-01T09:00:00Z"),  # \' in a Druid string
        ("timestamp_parse(s, 'yyyy/MM/dd')", "2024-03-04", None),
        ("timestamp_parse(s, null, 'America/New_York')", "2024-07-01 12:00", "2024-07-01T16:00:00Z"),
        ("timestamp_parse(s, null, 'America/New_York')", "2024-07-01T12:00Z", "2024-07-01T12:00:00Z"),
        # in a DST gap the wall-clock time does not exist: null, as Joda's parser rejects it
        ("timestamp_parse(s, null, 'America/New_York')", "2024-03-10 02:30", None),
        # a repeated wall-clock time resolves to the earlier instant
        ("timestamp_parse(s, null, 'America/New_York')", "2024-11-03 01:30", "2024-11-03T05:30:00Z"),
    ],
)
def test_timestamp_parse_patterns_and_zones(expr, text, expected):
    assert val(expr, s=text) == (None if expected is None else parse_instant(expected))


def test_timestamp_parse_two_digit_years_pivot_like_joda():
    import datetime

    pivot = datetime.date.today().year - 30
    got = col("timestamp_parse(s, 'yy-MM-dd')", s=["00-01-01", "99-01-01"])
    years = [datetime.datetime.fromtimestamp(g / 1000, datetime.timezone.utc).year for g in got]
    assert all(pivot - 50 <= y < pivot + 50 for y in years)
    assert {y % 100 for y in years} == {0, 99}


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("timestamp_format(__time)", "2024-02-29T13:45:30.123Z"),
        ("timestamp_format(__time, 'yyyy-MM-dd')", "2024-02-29"),
        ("timestamp_format(__time, 'yyyy/MM/dd HH:mm:ss.SSS', 'America/Los_Angeles')", "2024/02/29 05:45:30.123"),
        ("timestamp_format(__time, 'EEE, dd MMM yyyy')", "Thu, 29 Feb 2024"),
        ("timestamp_format(__time, 'EEEE d MMMM yy')", "Thursday 29 February 24"),
        ("timestamp_format(__time, 'hh:mm a')", "01:45 PM"),
        ("timestamp_format(__time, 'HH:mm Z', 'Asia/Kolkata')", "19:15 +0530"),
        ("timestamp_format(__time, 'HH:mm ZZ', 'America/Los_Angeles')", "05:45 -08:00"),
        ("timestamp_format(__time, 'HH:mm ZZZ', 'America/Los_Angeles')", "05:45 America/Los_Angeles"),
        ("timestamp_format(__time, 'D e w x')", "60 4 9 2024"),
        (r"timestamp_format(__time, '\'at\' H\'h\'')", "at 13h"),  # Joda quotes literal text; '' is a quote
        (r"timestamp_format(__time, 'H\'\'')", "13'"),
        ("timestamp_format(__time, 'S SS SSSS')", "1 12 1230"),
    ],
)
def test_timestamp_format(expr, expected):
    assert val(expr, __time=pa.array([LEAP], pa.int64())) == expected


def test_timestamp_format_nulls_and_pre_epoch():
    assert col("timestamp_format(__time)", __time=pa.array([None, -1], pa.int64())) == [None, "1969-12-31T23:59:59.999Z"]


def test_parse_timestamps_round_trips_formatted_instants():
    rng = np.random.default_rng(3)
    t = rng.integers(parse_instant("1950-01-01"), parse_instant("2050-01-01"), 2000)
    for zone in ("UTC", "America/Los_Angeles", "+05:45"):
        text = compile_expression(f"timestamp_format(t, 'yyyy-MM-dd HH:mm:ss.SSS ZZ', '{zone}')").evaluate(pa.record_batch({"t": t}))
        back = parse_timestamps(text, "yyyy-MM-dd HH:mm:ss.SSS ZZ", TimeZone.parse(zone))
        assert back.to_pylist() == t.tolist()


# ---------------------------------------------------------------------------------------------------------------
# Scale
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_rows_in_well_under_a_second():
    import time

    n = 1_000_000
    rng = np.random.default_rng(0)
    batch = pa.record_batch({"a": rng.integers(0, 1000, n), "x": rng.random(n), "s": pa.array(rng.integers(0, 50, n).astype(str))})
    expr = compile_expression("if(a % 7 == 0 && x > 0.5, concat(upper(s), '-', a), lower(s)) + '!'")
    start = time.perf_counter()
    out = expr.evaluate(batch)
    assert len(out) == n
    assert time.perf_counter() - start < 2.0
