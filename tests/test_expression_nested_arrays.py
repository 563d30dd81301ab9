"""Arrays of arrays inside expressions, as Druid's math-expr evaluates them, and refused where Druid has no place
for them (a column value).

Retyped from apache/druid processing/src/test/java/org/apache/druid/math/expr/FunctionTest.java with its bindings
(``a`` = ['foo', 'bar', 'baz', 'foobar'], ``b`` = [1, 2, 3, 4, 5]): ``testArrayConstructor`` asserts
``array(a, b)`` is ``[["foo", "bar", "baz", "foobar"], ["1", "2", "3", "4", "5"]]`` (the LONG array cast to the
least restrictive element type, STRING); ``testArrayLength``/``testArrayOffset``/``testArrayOrdinal`` take the
length of, and the element at a position of, a nested array (2 elements; the element itself is returned).
Druid's ApplyFunction ``map`` gives ``ARRAY<type of the lambda>``, so an array-valued lambda gives an array of arrays.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from druidflow.exceptions import SpecError
from druidflow.expressions import compile_expression
from druidflow.expressions.tree import Ctx
from tests.test_expression_arrays import BINDINGS


def inner(expression: str, batch: pa.Table = BINDINGS) -> tuple[str, list]:
    """The expression's type and rows as evaluated inside an expression (before it becomes a column)."""
    compiled = compile_expression(expression)
    v = compiled.tree.evaluate(Ctx(batch, compiled))
    return v.kind, Ctx(batch, compiled).array(v).to_pylist()


def value(expression: str, batch: pa.Table = BINDINGS) -> list:
    return compile_expression(expression).evaluate(batch).to_pylist()


def test_function_test_array_constructor_of_two_arrays():
    assert inner("array(a, b)") == (
        "ARRAY<ARRAY<STRING>>",
        [[["foo", "bar", "baz", "foobar"], ["1", "2", "3", "4", "5"]]],
    )


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("array(array(1, 2), array(3))", ("ARRAY<ARRAY<LONG>>", [[[1, 2], [3]]])),
        ("array([1, 2], [3.5])", ("ARRAY<ARRAY<DOUBLE>>", [[[1.0, 2.0], [3.5]]])),
        ("array(b, null)", ("ARRAY<ARRAY<LONG>>", [[[1, 2, 3, 4, 5], None]])),
        ("map((x) -> array(x, x * 10), [1, 2])", ("ARRAY<ARRAY<LONG>>", [[[1, 10], [2, 20]]])),
        ("cartesian_map((x, y) -> array(x, y), ['p', 'q'], ['r'])", ("ARRAY<ARRAY<STRING>>", [[["p", "r"], ["q", "r"]]])),
        ("array_slice(array([1], [2], [3]), 1)", ("ARRAY<ARRAY<LONG>>", [[[2], [3]]])),
        ("array_concat(array([1]), array([2, 3]))", ("ARRAY<ARRAY<LONG>>", [[[1], [2, 3]]])),
    ],
)
def test_nested_arrays_inside_an_expression(expression, expected):
    assert inner(expression) == expected


@pytest.mark.parametrize(
    "expression, expected",
    [
        # testArrayLength / testArrayOffset / testArrayOrdinal on a nested array: its length, and its elements
        ("array_length(array(a, b))", [2]),
        ("array_offset(array(a, b), 1)", [["1", "2", "3", "4", "5"]]),
        ("array_ordinal(array(a, b), 1)", [["foo", "bar", "baz", "foobar"]]),
        ("array_offset(array(a, b), 2)", [None]),
        ("array_length(array_offset(array(array(1, 2), array(3)), 0))", [2]),
        ("array_to_string(array_ordinal(map((x) -> array(x, x * 2), b), 3), '-')", ["3-6"]),
    ],
)
def test_a_nested_array_reduced_to_a_column_value(expression, expected):
    assert value(expression) == expected


def test_rows_of_different_lengths_and_nulls():
    batch = pa.table({"p": pa.array([[1, 2], None, []], pa.list_(pa.int64())), "q": pa.array([[3], [4, 5], None], pa.list_(pa.int64()))})
    assert inner("array(p, q)", batch) == ("ARRAY<ARRAY<LONG>>", [[[1, 2], [3]], [None, [4, 5]], [[], None]])
    assert value("array_ordinal(array(p, q), 2)", batch) == [[3], [4, 5], None]


@pytest.mark.parametrize(
    "expression, message",
    [
        # a column (dimension, metric input) holds a scalar or one level of values: Druid has no ARRAY<ARRAY> dimension
        ("array(a, b)", "gives ARRAY<ARRAY<STRING>>: an array of arrays cannot be a column value"),
        ("array(1, [2])", "function 'array' does not accept LONG arguments"),  # scalars and arrays do not mix
        ("array(array([1]))", "function 'array' does not accept ARRAY<ARRAY<LONG>> arguments"),
        ("array_contains(array([1], [2]), 1)", "function 'array_contains' does not accept ARRAY<LONG> arguments"),
        ("array_set_add(array([1]), [2])", "function 'array_set_add' does not accept ARRAY<LONG> arguments"),
    ],
)
def test_refused_with_a_clear_error(expression, message):
    with pytest.raises(SpecError) as info:
        compile_expression(expression, "transformSpec.transforms[0].expression").evaluate(BINDINGS)
    assert message in str(info.value) and info.value.path == "transformSpec.transforms[0].expression"
