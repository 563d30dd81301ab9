"""Druid's array functions and apply (lambda) functions: Druid's own examples, rows of different lengths and
nulls, parse-time errors naming the field, and an index task whose transforms build multi-value dimensions.

The examples are retyped from apache/druid:
* processing/src/test/java/org/apache/druid/math/expr/FunctionTest.java (testArrayConstructor ... testArrayPrepend)
* processing/src/test/java/org/apache/druid/math/expr/ApplyFunctionTest.java (testMap ... testInvalidArgCount*)
with the bindings those tests set up (``x`` = 'foo', ``y`` = 2, ``z`` = 3.1, ``a``/``b``/``c`` the arrays below,
``d`` = [null], ``e`` = [null, 'foo', 'bar'], ``f`` = []). Druid's descriptions are in docs/querying/math-expr.md
("Array functions", "Apply functions"), e.g. "filter(lambda,arr) ... returning a new array with all matching
elements, or null if no elements match".
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import SpecError
from druidflow.expressions import compile_expression
from druidflow.intervals import Interval
from druidflow.query import visible_rows
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime

BINDINGS = pa.table({
    "x": ["foo"], "y": [2], "z": [3.1],
    "a": pa.array([["foo", "bar", "baz", "foobar"]]),
    "b": pa.array([[1, 2, 3, 4, 5]]),
    "c": pa.array([[3.1, 4.2, 5.3]]),
    "d": pa.array([[None]], pa.list_(pa.string())),
    "e": pa.array([[None, "foo", "bar"]]),
    "f": pa.array([[]], pa.list_(pa.string())),
})


def value(expression: str):
    return compile_expression(expression).evaluate(BINDINGS).to_pylist()[0]


FUNCTION_TEST = [
    # testArrayConstructor
    ("array(1, 2, 3, 4)", [1, 2, 3, 4]),
    ("array(1, 2, 3, 'bar')", [1, 2, 3, None]),
    ("array(1.0)", [1.0]),
    ("array('foo', 'bar')", ["foo", "bar"]),
    # testArrayLength
    ("array_length([1,2,3])", 3),
    ("array_length(a)", 4),
    # testArrayOffset / testArrayOrdinal
    ("array_offset([1, 2, 3], 2)", 3),
    ("array_offset([1, 2, 3], 3)", None),
    ("array_offset(a, 2)", "baz"),
    ("array_ordinal([1, 2, 3], 3)", 3),
    ("array_ordinal([1, 2, 3], 4)", None),
    ("array_ordinal(a, 3)", "baz"),
    # testArrayOffsetOf / testArrayOrdinalOf (SQL-compatible null handling)
    ("array_offset_of([1, 2, 3], 3)", 2),
    ("array_offset_of([1, 2, 3], 4)", None),
    ("array_offset_of(a, 'baz')", 2),
    ("array_ordinal_of([1, 2, 3], 3)", 3),
    ("array_ordinal_of([1, 2, 3], 4)", None),
    ("array_ordinal_of(a, 'baz')", 3),
    # testArrayContains
    ("array_contains([1, 2, 3], 2)", 1),
    ("array_contains([1, 2, 3], 4)", 0),
    ("array_contains([1, 2, 3], [2, 3])", 1),
    ("array_contains([1, 2, 3], [3, 4])", 0),
    ("array_contains(b, [3, 4])", 1),
    ("array_contains(null, [3, 4])", None),
    ("array_contains(null, null)", None),
    ("array_contains([1, null, 2], null)", 1),
    ("array_contains([1, null, 2], [null])", 1),
    ("array_contains([1, 2], null)", 0),
    # testArrayOverlap
    ("array_overlap([1, 2, 3], [2, 4, 6])", 1),
    ("array_overlap([1, 2, 3], [4, 5, 6])", 0),
    ("array_overlap(null, [4, 5, 6])", None),
    ("array_overlap([4, null], [4, 5, 6])", 1),
    ("array_overlap([4, 5, 6], null)", 0),
    ("array_overlap([4, 5, 6], [null])", 0),
    ("array_overlap([4, 5, null, 6], null)", 0),
    ("array_overlap([4, 5, null, 6], [null])", 1),
    # testArrayAppend
    ("array_append([1, 2, 3], 4)", [1, 2, 3, 4]),
    ("array_append([1, 2, 3], 'bar')", [1, 2, 3, None]),
    ("array_append([], 1)", ["1"]),
    ("array_append(<LONG>[], 1)", [1]),
    # testArrayConcat
    ("array_concat([1, 2, 3], [2, 4, 6])", [1, 2, 3, 2, 4, 6]),
    ("array_concat([1, 2, 3], 4)", [1, 2, 3, 4]),
    ("array_concat(0, [1, 2, 3])", [0, 1, 2, 3]),
    ("array_concat(map(y -> y * 3, b), [1, 2, 3])", [3, 6, 9, 12, 15, 1, 2, 3]),
    ("array_concat(0, 1)", [0, 1]),
    # testArraySetAdd
    ("array_set_add([1, 2, 3], 4)", [1, 2, 3, 4]),
    ("array_set_add([1, 2, 3], 'bar')", [None, 1, 2, 3]),
    ("array_set_add([1, 2, 2], 1)", [1, 2]),
    ("array_set_add([], 1)", ["1"]),
    ("array_set_add(<LONG>[], 1)", [1]),
    ("array_set_add(<LONG>[], null)", [None]),
    # testArraySetAddAll
    ("array_set_add_all([1, 2, 3], [2, 4, 6])", [1, 2, 3, 4, 6]),
    ("array_set_add_all([1, 2, 3], 4)", [1, 2, 3, 4]),
    ("array_set_add_all(0, [1, 2, 3])", [0, 1, 2, 3]),
    ("array_set_add_all(map(y -> y * 3, b), [1, 2, 3])", [1, 2, 3, 6, 9, 12, 15]),
    ("array_set_add_all(0, 1)", [0, 1]),
    # testArrayToString
    ("array_to_string([1, 2, 3], ',')", "1,2,3"),
    ("array_to_string([1], '|')", "1"),
    ("array_to_string(a, '|')", "foo|bar|baz|foobar"),
    # testStringToArray
    ("string_to_array('1,2,3', ',')", ["1", "2", "3"]),
    ("string_to_array(null, ',')", None),
    ("string_to_array('1', ',')", ["1"]),
    ("string_to_array(array_to_string(a, ','), ',')", ["foo", "bar", "baz", "foobar"]),
    # testArrayCastLegacy / testArrayCast
    ("cast([1, 2, 3], 'STRING_ARRAY')", ["1", "2", "3"]),
    ("cast([1, 2, 3], 'DOUBLE_ARRAY')", [1.0, 2.0, 3.0]),
    ("cast(c, 'LONG_ARRAY')", [3, 4, 5]),
    ("cast(string_to_array(array_to_string(b, ','), ','), 'LONG_ARRAY')", [1, 2, 3, 4, 5]),
    ("cast(['1.0', '2.0', '3.0'], 'LONG_ARRAY')", [1, 2, 3]),
    ("cast([1, 2, 3], 'ARRAY<STRING>')", ["1", "2", "3"]),
    ("cast([1, 2, 3], 'ARRAY<DOUBLE>')", [1.0, 2.0, 3.0]),
    ("cast(c, 'ARRAY<LONG>')", [3, 4, 5]),
    ("cast(['1.0', '2.0', '3.0'], 'ARRAY<LONG>')", [1, 2, 3]),
    # testArraySlice
    ("array_slice([1, 2, 3, 4], 1, 3)", [2, 3]),
    ("array_slice([1.0, 2.1, 3.2, 4.3], 2)", [3.2, 4.3]),
    ("array_slice(['a', 'b', 'c', 'd'], 4, 6)", [None, None]),
    ("array_slice([1, 2, 3, 4], 2, 2)", []),
    ("array_slice([1, 2, 3, 4], 5, 7)", None),
    ("array_slice([1, 2, 3, 4], 2, 1)", None),
    # testArrayPrepend
    ("array_prepend(4, [1, 2, 3])", [4, 1, 2, 3]),
    ("array_prepend('bar', [1, 2, 3])", [None, 1, 2, 3]),
    ("array_prepend(1, [])", ["1"]),
    ("array_prepend(1, <LONG>[])", [1]),
    ("array_prepend(1, <DOUBLE>[])", [1.0]),
    # docs: "scalar_in_array(expr, arr) returns 1 if the scalar is present in the array, else 0 if the expr is
    # non-null, or null if the expr is null"
    ("scalar_in_array(2, [1, 2])", 1),
    ("scalar_in_array(3, [1, 2])", 0),
    ("scalar_in_array(null, [1, 2])", None),
]

APPLY_FUNCTION_TEST = [
    # testMap
    ("map((x) -> concat(x, 'foo'), ['foo', 'bar', 'baz', 'foobar'])", ["foofoo", "barfoo", "bazfoo", "foobarfoo"]),
    ("map((x) -> concat(x, 'foo'), a)", ["foofoo", "barfoo", "bazfoo", "foobarfoo"]),
    ("map((x) -> x + 1, [1, 2, 3, 4, 5])", [2, 3, 4, 5, 6]),
    ("map((x) -> x + 1, b)", [2, 3, 4, 5, 6]),
    ("map((c) -> c + z, [3.1, 4.2, 5.3])", pytest.approx([6.2, 7.3, 8.4])),
    ("map((c) -> c + z, c)", pytest.approx([6.2, 7.3, 8.4])),
    ("map((x) -> x + 1, map((x) -> x + 1, [1, 2, 3, 4, 5]))", [3, 4, 5, 6, 7]),
    ("map((x) -> x + 1, map((x) -> x + 1, b))", [3, 4, 5, 6, 7]),
    ("map((x) -> 1, [1, 2, 3, 4, 5])", [1, 1, 1, 1, 1]),
    # testCartesianMap
    ("cartesian_map((x, y) -> concat(x, y), ['foo', 'bar', 'baz', 'foobar'], ['bar', 'baz'])",
     ["foobar", "foobaz", "barbar", "barbaz", "bazbar", "bazbaz", "foobarbar", "foobarbaz"]),
    ("cartesian_map((x, y, z) -> concat(concat(x, y), z), ['foo', 'bar', 'baz', 'foobar'], ['bar', 'baz'], ['omg'])",
     ["foobaromg", "foobazomg", "barbaromg", "barbazomg", "bazbaromg", "bazbazomg", "foobarbaromg", "foobarbazomg"]),
    ("cartesian_map((x, y) -> 1, [1, 2], [1, 2, 3])", [1, 1, 1, 1, 1, 1]),
    ("cartesian_map((x, y) -> concat(x, y), d, d)", [None]),
    ("cartesian_map((x, y) -> concat(x, y), d, f)", []),
    ("cartesian_map((x, y) -> concat(x, y), d, e)", [None, None, None]),
    ("cartesian_map((x, y) -> concat(x, y), e, e)", [None, None, None, None, "foofoo", "foobar", None, "barfoo", "barbar"]),
    # testFilter
    ("filter((x) -> strlen(x) > 3, ['foo', 'bar', 'baz', 'foobar'])", ["foobar"]),
    ("filter((x) -> strlen(x) > 3, a)", ["foobar"]),
    ("filter((x) -> x > 2, [1, 2, 3, 4, 5])", [3, 4, 5]),
    ("filter((x) -> x > 2, b)", [3, 4, 5]),
    ("filter((x) -> array_contains([], x), ['a', 'b'])", None),
    ("filter((x) -> array_contains([], x), null)", None),
    # testFold
    ("fold((x, y) -> x + y, [1, 1, 1, 1, 1], 0)", 5),
    ("fold((b, acc) -> b * acc, map((b) -> b * 2, filter(b -> b > 3, b)), 1)", 80),
    ("fold((a, acc) -> concat(a, acc), a, '')", "foobarbazbarfoo"),
    ("fold((a, acc) -> array_append(acc, a), a, [])", ["foo", "bar", "baz", "foobar"]),
    ("fold((a, acc) -> array_append(acc, a), b, <LONG>[])", [1, 2, 3, 4, 5]),
    # testCartesianFold
    ("cartesian_fold((x, y, acc) -> x + y + acc, [1, 1, 1, 1, 1], [1, 1], 0)", 20),
    # testAnyMatch / testAllMatch
    ("any(x -> x > 3, [1, 2, 3, 4])", 1),
    ("any(x -> x > 3, [1, 2, 3])", 0),
    ("any(x -> x, map(x -> x > 3, [1, 2, 3, 4]))", 1),
    ("any(x -> x, map(x -> x > 3, [1, 2, 3]))", 0),
    ("all(x -> x > 0, [1, 2, 3, 4])", 1),
    ("all(x -> x > 1, [1, 2, 3, 4])", 0),
    ("all(x -> x, map(x -> x > 0, [1, 2, 3, 4]))", 1),
    ("all(x -> x, map(x -> x > 1, [1, 2, 3, 4]))", 0),
    # testScoping: a lambda's parameter hides the column of the same name
    ("map(b -> b + 1, b)", [2, 3, 4, 5, 6]),
    ("fold((b, acc) -> acc + b, map(b -> b + 1, b), 0)", 20),
    ("fold((b, acc) -> acc + b, map(b -> b + 1, b), fold((b, acc) -> acc + b, map(b -> b + 1, b), 0))", 40),
    ("fold((b, acc) -> acc + b, map(b -> b + 1, b), 0) + fold((b, acc) -> acc + b, map(b -> b + 1, b), 0)", 40),
    (("fold((b, acc) -> acc + b, map(b -> b + 1, b), fold((b, acc) -> acc + b, map(b -> b + 1, b), 0) + "
      "fold((b, acc) -> acc + b, map(b -> b + 1, b), 0))"), 60),
]


@pytest.mark.parametrize("expression, expected", FUNCTION_TEST + APPLY_FUNCTION_TEST)
def test_druids_examples(expression, expected):
    assert value(expression) == expected


def test_array_results_are_typed_lists():
    assert compile_expression("array(1, 2)").evaluate(BINDINGS).type == pa.list_(pa.int64())
    assert compile_expression("map((x) -> x * 1.5, b)").evaluate(BINDINGS).type == pa.list_(pa.float64())
    assert compile_expression("a").evaluate(BINDINGS).type == pa.list_(pa.string())


ROWS = pa.table({
    "tags": pa.array([["a", "bb"], None, [], ["ccc", None, "a"]], pa.list_(pa.string())),
    "n": [1, 2, 3, 4],
    "nums": pa.array([[1, 2], [3], None, [4, 5, 6]]),
})


@pytest.mark.parametrize(
    "expression, expected",
    [
        # an outer column inside the lambda reads the element's own row
        ("map((x) -> concat(x, n), tags)", [["a1", "bb1"], None, [], ["ccc4", None, "a4"]]),
        ("filter((x) -> strlen(x) > 1, tags)", [["bb"], None, None, ["ccc"]]),
        ("fold((x, acc) -> acc + x * n, nums, 0)", [3, 6, None, 60]),
        ("any(x -> x > 4, nums)", [0, 0, None, 1]),
        ("all(x -> x > 1, nums)", [0, 1, None, 1]),
        ("array_length(tags)", [2, None, 0, 3]),
        ("array_contains(tags, 'a')", [1, None, 0, 1]),
        ("cartesian_map((x, y) -> concat(x, y), tags, nums)",
         [["a1", "a2", "bb1", "bb2"], None, None, ["ccc4", "ccc5", "ccc6", None, None, None, "a4", "a5", "a6"]]),
        ("array_slice(nums, 1)", [[2], [], None, [5, 6]]),
        ("array_to_string(tags, '-')", ["a-bb", None, "", "ccc-null-a"]),
        ("array_set_add(nums, n)", [[1, 2], [2, 3], None, [4, 5, 6]]),
        ("array_offset_of(tags, 'a')", [0, None, None, 2]),
        ("array_ordinal(nums, n)", [1, None, None, None]),
        ("array(n, n * 2)", [[1, 2], [2, 4], [3, 6], [4, 8]]),
        ("string_to_array('a,b,,', ',')", [["a", "b"]] * 4),  # Java's split drops trailing empty strings
    ],
)
def test_rows_of_different_lengths_and_nulls(expression, expected):
    assert compile_expression(expression).evaluate(ROWS).to_pylist() == expected


def test_a_lambda_body_is_evaluated_once_over_all_elements(monkeypatch):
    from druidflow.expressions import apply

    calls = []
    original = apply.LambdaCtx.__init__

    def spy(self, outer, rows, bindings):
        calls.append(len(rows))
        original(self, outer, rows, bindings)

    monkeypatch.setattr(apply.LambdaCtx, "__init__", spy)
    big = pa.table({"v": pa.array([[i, i + 1, i + 2] for i in range(10_000)])})
    out = compile_expression("map((x) -> x * 2, filter((x) -> x % 2 == 0, v))").evaluate(big)
    assert calls == [30_000, 15_000]  # one pass per lambda, over every element of every row
    assert out[1].as_py() == [4]


@pytest.mark.parametrize(
    "expression, message",
    [
        # ApplyFunctionTest.testInvalidArgCount*: Druid's "Function[fold] requires 3 arguments" and "lambda expression
        # argument count of 0 does not match the 2 arguments passed to it"
        ("fold((x, y) -> x + 1, [1, 1, 1, 1, 1])", "function 'fold' takes 3 arguments, not 2"),
        ("fold(() -> 1, [1, 1, 1, 1, 1], 0)", "the lambda of 'fold' takes 0 arguments but 2 are passed to it"),
        ("cartesian_fold(() -> 1, [1, 1, 1, 1, 1], [1, 1], 0)", "the lambda of 'cartesian_fold' takes 0 arguments but 3"),
        ("any((x) -> 1, [1, 2, 3, 4], y)", "function 'any' takes 2 arguments, not 3"),
        ("any(() -> 1, [1, 2, 3, 4])", "the lambda of 'any' takes 0 arguments but 1 is passed to it"),
        ("all((x) -> 0, [1, 2, 3, 4], y)", "function 'all' takes 2 arguments, not 3"),
        ("all(() -> 0, [1, 2, 3, 4])", "the lambda of 'all' takes 0 arguments but 1 is passed to it"),
        ("map(x, a)", "the first argument of 'map' must be a lambda"),
        ("concat((x) -> x, 'a')", "'concat' does not take a lambda"),
        ("(x) -> x", "a lambda can only be the first argument of an apply function"),
        ("map((x, x) -> x, a)", "parameters must have different names"),
        ("array_length()", "function 'array_length' takes 1 argument, not 0"),
        ("[1, 'a']", "cannot mix strings and numbers"),
        ("[x]", "an array literal holds only literal values"),
        ("string_to_array(x, y)", "argument 2 of 'string_to_array' must be a literal"),
        ("string_to_array(x, '(')", "not a valid regular expression"),
        ("cast(a, 'ARRAY<FLOAT>')", "the type must be"),
    ],
)
def test_bad_expressions_are_refused_at_parse_time_naming_the_field(expression, message):
    with pytest.raises(SpecError) as err:
        compile_expression(expression, "transformSpec.transforms[0].expression")
    assert err.value.path == "transformSpec.transforms[0].expression"
    assert message in str(err.value)


@pytest.mark.parametrize(
    "expression, message",
    [
        ("upper(a)", "function 'upper' does not accept ARRAY<STRING> arguments"),
        ("b + 1", "operator '+' does not accept ARRAY<LONG> values"),
        ("-b", "operator '-' does not accept ARRAY<LONG> values"),
        ("map((x) -> x, [1]) == 1", "operator '==' does not accept ARRAY<LONG> values"),
        ("map((x) -> array(x), b)", "gives ARRAY<ARRAY<LONG>>: an array of arrays cannot be a column value"),
        ("filter((x) -> array(x), b)", "the lambda of 'filter' must give a scalar, not ARRAY<LONG>"),
        ("array(a)", "gives ARRAY<ARRAY<STRING>>: an array of arrays cannot be a column value"),
        ("array_append(b, b)", "function 'array_append' does not accept ARRAY<LONG> arguments"),
        ("cast(a, 'LONG')", "function 'cast' does not accept ARRAY<STRING> arguments"),
        ("greatest(a)", "function 'greatest' does not accept ARRAY<STRING> arguments"),
    ],
)
def test_arrays_where_scalars_are_needed_name_the_function(expression, message):
    with pytest.raises(SpecError) as err:
        compile_expression(expression, "expression").evaluate(BINDINGS)
    assert err.value.path == "expression" and message in str(err.value)
    assert "cannot be evaluated" not in str(err.value) and str(err.value).count("(got ") == 1


def test_an_expression_filter_giving_an_array_is_refused():
    with pytest.raises(SpecError, match="gives ARRAY<STRING>, and a filter needs a scalar"):
        compile_expression("a", "filter.expression").evaluate_truth(BINDINGS)
    assert compile_expression("array_contains(a, 'baz')").evaluate_truth(BINDINGS).to_pylist() == [True]


def test_lambdas_count_towards_the_nesting_limit():
    from druidflow.expressions import MAX_EXPRESSION_DEPTH

    deep = "map((x) -> " * MAX_EXPRESSION_DEPTH + "x" + ", b)" * MAX_EXPRESSION_DEPTH
    with pytest.raises(SpecError, match="nests deeper than"):
        compile_expression(deep)


def test_required_columns_exclude_lambda_parameters():
    expr = compile_expression("map((x) -> concat(x, suffix), tags) ")
    assert expr.required_columns == {"tags", "suffix"}
    assert compile_expression("map(b -> b + 1, b)").required_columns == {"b"}


# -- ingestion: transforms with arrays make multi-value string dimensions ----------------------------------------


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def test_an_index_task_with_array_transforms_writes_multi_value_dimensions(rt, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({
        "ts": ["2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z", "2024-01-01T03:00:00Z"],
        "tags": pa.array([["a", "b"], ["c"], None], pa.list_(pa.string())),
        "n": [1, 2, 3],
    }), folder / "part-0.parquet")
    spec = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "arr",
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["tags", "upper_tags", "pair", "tag_count", "halves"]},
                "metricsSpec": [{"type": "count", "name": "count"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "NONE", "rollup": False,
                                    "intervals": ["2024-01-01/2024-01-02"]},
                "transformSpec": {
                    "transforms": [
                        {"type": "expression", "name": "upper_tags", "expression": "map((t) -> upper(t), tags)"},
                        {"type": "expression", "name": "pair", "expression": "array(n, n * 10)"},
                        {"type": "expression", "name": "halves", "expression": "map((t) -> n / 2.0, tags)"},
                        {"type": "expression", "name": "tag_count", "expression": "array_length(filter((t) -> t != 'b', tags))"},
                    ],
                    "filter": {"type": "expression", "expression": "n < 3 && array_length(tags) > 0"},
                },
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "local", "baseDir": str(folder), "filter": "*.parquet"},
                         "inputFormat": {"type": "parquet"}},
        },
    }
    report = index.run(spec, rt)
    assert report is not None
    rows = pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, "arr", Interval.parse("2024-01-01/2024-01-02"))))
    got = sorted(rows.select(["tags", "upper_tags", "pair", "tag_count", "halves"]).to_pylist(), key=lambda r: json.dumps(r))
    assert got == [
        {"tags": ["a", "b"], "upper_tags": ["A", "B"], "pair": ["1", "10"], "tag_count": "1", "halves": ["0.5", "0.5"]},
        {"tags": ["c"], "upper_tags": ["C"], "pair": ["2", "20"], "tag_count": "1", "halves": ["1.0"]},
    ]
    # the array transforms are multi-value string dimensions in the segment, as the list input column is
    assert rows.schema.field("upper_tags").type == rows.schema.field("tags").type
    assert pa.types.is_list(rows.schema.field("pair").type)


def test_a_spec_with_a_bad_lambda_is_refused_naming_the_transform():
    from druidflow.specs.tasks import parse_task

    spec = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "arr",
                "timestampSpec": {"column": "ts"},
                "dimensionsSpec": {"dimensions": ["d"]},
                "granularitySpec": {"segmentGranularity": "DAY", "intervals": ["2024-01-01/2024-01-02"]},
                "transformSpec": {"transforms": [{"type": "expression", "name": "d", "expression": "fold((x) -> x, tags, 0)"}]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": "{}"}, "inputFormat": {"type": "json"}},
        },
    }
    with pytest.raises(SpecError) as err:
        parse_task(spec)
    assert "transformSpec.transforms[0].expression" in err.value.path
    assert "the lambda of 'fold' takes 1 argument but 2 are passed to it" in str(err.value)
