"""Druid filters: parsing and errors, every filter type, nulls (three-valued), multi-value, dictionary and numeric
columns, missing columns, and the masks' shape."""

from __future__ import annotations

import pyarrow as pa
import pydantic
import pytest

from druidflow.exceptions import SpecError
from druidflow.filters import FILTER_TYPES, BoundFilter, NotFilter, SelectorFilter, parse_filter
from druidflow.intervals import parse_instant

# One batch with the column shapes ingestion produces.
BATCH = pa.record_batch(
    {
        "s": pa.array(["apple", "banana", None, "", "Cherry", "10", "9"]),
        "d": pa.array(["x", "y", None, "x", "z", "y", None]).dictionary_encode(),
        "n": pa.array([1, 5, None, 10, -3, 100, 9], pa.int64()),
        "f": pa.array([1.5, 5.0, None, 10.0, -3.25, float("nan"), 9.0]),
        "mv": pa.array([["a", "b"], [], None, ["c", None], ["b"], ["a"], ["ab"]], pa.list_(pa.string())),
        "__time": pa.array(
            [parse_instant(t) for t in ("2024-01-01", "2024-01-01T12:00:00Z", "2024-01-02", "2024-01-03", "2023-12-31T23:59:59.999Z", "2024-01-02T23:00:00Z", "2024-01-05")],
            pa.int64(),
        ),
    }
)


def rows(spec: dict, batch: pa.RecordBatch = BATCH) -> list[int]:
    """Indices of the rows the filter keeps."""
    m = parse_filter(spec).mask(batch)
    assert isinstance(m, pa.BooleanArray) and m.null_count == 0 and len(m) == batch.num_rows
    return [i for i, keep in enumerate(m.to_pylist()) if keep]


def three_valued(spec: dict) -> list:
    return parse_filter(spec).evaluate(BATCH).to_pylist()


# ---------------------------------------------------------------------------------------------------------------
# selector and in
# ---------------------------------------------------------------------------------------------------------------


def test_selector_on_strings():
    assert rows({"type": "selector", "dimension": "s", "value": "banana"}) == [1]
    assert rows({"type": "selector", "dimension": "s", "value": "Banana"}) == []  # case-sensitive
    assert three_valued({"type": "selector", "dimension": "s", "value": "apple"})[:4] == [True, False, None, False]


def test_selector_null_matches_null_and_empty():
    assert rows({"type": "selector", "dimension": "s", "value": None}) == [2, 3]
    assert rows({"type": "selector", "dimension": "s"}) == [2, 3]
    assert rows({"type": "selector", "dimension": "s", "value": ""}) == [2, 3]
    assert rows({"type": "selector", "dimension": "n", "value": None}) == [2]


def test_selector_on_numbers_compares_numerically():
    assert rows({"type": "selector", "dimension": "n", "value": "5"}) == [1]
    assert rows({"type": "selector", "dimension": "n", "value": 10}) == [3]  # a JSON number is read as its text
    assert rows({"type": "selector", "dimension": "n", "value": "10.0"}) == [3]
    assert rows({"type": "selector", "dimension": "n", "value": "ten"}) == []
    assert rows({"type": "selector", "dimension": "f", "value": "5"}) == [1]
    assert rows({"type": "selector", "dimension": "f", "value": "-3.25"}) == [4]
    assert rows({"type": "selector", "dimension": "__time", "value": str(parse_instant("2024-01-03"))}) == [3]


def test_selector_on_a_dictionary_column():
    assert rows({"type": "selector", "dimension": "d", "value": "x"}) == [0, 3]
    assert rows({"type": "selector", "dimension": "d", "value": None}) == [2, 6]


def test_in():
    assert rows({"type": "in", "dimension": "s", "values": ["apple", "Cherry", "nope"]}) == [0, 4]
    assert rows({"type": "in", "dimension": "s", "values": ["apple", None]}) == [0, 2, 3]
    assert rows({"type": "in", "dimension": "n", "values": ["1", "9", 100]}) == [0, 5, 6]
    assert rows({"type": "in", "dimension": "d", "values": ["y", "z"]}) == [1, 4, 5]
    assert rows({"type": "in", "dimension": "s", "values": []}) == []


def test_multi_value_matches_when_any_value_matches():
    assert rows({"type": "selector", "dimension": "mv", "value": "b"}) == [0, 4]
    assert rows({"type": "in", "dimension": "mv", "values": ["c", "a"]}) == [0, 3, 5]
    # An empty or null list is a single null value; so is a null element.
    assert rows({"type": "selector", "dimension": "mv", "value": None}) == [1, 2, 3]
    assert three_valued({"type": "selector", "dimension": "mv", "value": "a"}) == [True, None, None, None, False, True, False]
    assert rows({"type": "not", "field": {"type": "selector", "dimension": "mv", "value": "a"}}) == [4, 6]


def test_missing_column_is_all_null():
    assert rows({"type": "selector", "dimension": "nope", "value": None}) == list(range(7))
    assert rows({"type": "selector", "dimension": "nope", "value": "a"}) == []
    assert rows({"type": "not", "field": {"type": "selector", "dimension": "nope", "value": "a"}}) == []
    assert rows({"type": "bound", "dimension": "nope", "lower": "a"}) == []


# ---------------------------------------------------------------------------------------------------------------
# bound
# ---------------------------------------------------------------------------------------------------------------


def test_bound_lexicographic():
    assert rows({"type": "bound", "dimension": "s", "lower": "b", "upper": "c"}) == [1]
    assert rows({"type": "bound", "dimension": "s", "lower": "apple", "lowerStrict": True, "upper": "banana"}) == [1]
    assert rows({"type": "bound", "dimension": "s", "upper": "apple", "upperStrict": True}) == [3, 4, 5, 6]  # "", "Cherry", "10", "9"
    # Numbers under lexicographic ordering compare as their strings: "10" < "9".
    assert rows({"type": "bound", "dimension": "n", "lower": "9"}) == [6]
    assert rows({"type": "bound", "dimension": "f", "lower": "5", "upper": "6"}) == [1]  # "5.0"


def test_bound_numeric():
    assert rows({"type": "bound", "dimension": "n", "lower": "5", "upper": "10", "ordering": "numeric"}) == [1, 3, 6]
    assert rows({"type": "bound", "dimension": "n", "lower": "5", "lowerStrict": True, "upper": "10", "upperStrict": True, "ordering": "numeric"}) == [6]
    assert rows({"type": "bound", "dimension": "f", "lower": "-3.3", "upper": "1.5", "ordering": {"type": "numeric"}}) == [0, 4]
    # Strings are parsed; those that are not numbers never match a numeric bound.
    assert rows({"type": "bound", "dimension": "s", "lower": "9", "ordering": "numeric"}) == [5, 6]
    assert rows({"type": "bound", "dimension": "__time", "lower": str(parse_instant("2024-01-02")), "ordering": "numeric"}) == [2, 3, 5, 6]


def test_bound_alphanumeric_is_numeric_where_both_sides_are_numbers():
    # "10" >= "9" numerically; the words compare as text, and letters sort after digits
    assert rows({"type": "bound", "dimension": "s", "lower": "9", "ordering": "alphanumeric"}) == [0, 1, 4, 5, 6]
    assert rows({"type": "bound", "dimension": "s", "upper": "9", "ordering": "alphanumeric"}) == [3, 6]
    assert rows({"type": "bound", "dimension": "s", "lower": "b", "ordering": "alphanumeric"}) == [1]
    assert rows({"type": "bound", "dimension": "s", "lower": "b", "alphaNumeric": True}) == [1]
    assert parse_filter({"type": "bound", "dimension": "s", "lower": "b", "alphaNumeric": True}).ordering == "alphanumeric"


def test_bound_strlen_orders_by_length_then_text():
    assert rows({"type": "bound", "dimension": "s", "lower": "aaaaa", "upper": "zzzzz", "ordering": "strlen"}) == [0]
    assert rows({"type": "bound", "dimension": "s", "upper": "9", "ordering": "strlen"}) == [3, 6]
    assert rows({"type": "bound", "dimension": "s", "lower": "zzzzz", "ordering": "strlen"}) == [1, 4]


def test_bound_null_rows_never_match():
    assert three_valued({"type": "bound", "dimension": "n", "lower": "0", "ordering": "numeric"})[2] is None
    assert 2 not in rows({"type": "not", "field": {"type": "bound", "dimension": "n", "lower": "0", "ordering": "numeric"}})


# ---------------------------------------------------------------------------------------------------------------
# like, regex, interval, expression, true, false
# ---------------------------------------------------------------------------------------------------------------


def test_like():
    assert rows({"type": "like", "dimension": "s", "pattern": "%an%"}) == [1]
    assert rows({"type": "like", "dimension": "s", "pattern": "_pple"}) == [0]
    assert rows({"type": "like", "dimension": "s", "pattern": "%"}) == [0, 1, 3, 4, 5, 6]
    assert rows({"type": "like", "dimension": "n", "pattern": "1%"}) == [0, 3, 5]
    assert rows({"type": "like", "dimension": "mv", "pattern": "a%"}) == [0, 5, 6]
    batch = pa.record_batch({"p": ["50%", "50 percent", "5_0", "a.c", "abc"]})
    assert rows({"type": "like", "dimension": "p", "pattern": "50\\%", "escape": "\\"}, batch) == [0]
    assert rows({"type": "like", "dimension": "p", "pattern": "5!_0", "escape": "!"}, batch) == [2]
    assert rows({"type": "like", "dimension": "p", "pattern": "a.c"}, batch) == [3]  # no regex leaks through


def test_regex_matches_anywhere():
    assert rows({"type": "regex", "dimension": "s", "pattern": "an+a"}) == [1]
    assert rows({"type": "regex", "dimension": "s", "pattern": "^[A-Z]"}) == [4]
    assert rows({"type": "regex", "dimension": "f", "pattern": "\\.25$"}) == [4]
    assert rows({"type": "regex", "dimension": "d", "pattern": "[xz]"}) == [0, 3, 4]


def test_interval_on_time_and_other_columns():
    assert rows({"type": "interval", "dimension": "__time", "intervals": ["2024-01-01/2024-01-02"]}) == [0, 1]
    assert rows({"type": "interval", "dimension": "__time", "intervals": ["2024-01-01/P1D", "2024-01-03/2024-01-06"]}) == [0, 1, 3, 6]
    ts = pa.record_batch({"__time": pa.array([0, 86_400_000, None], pa.timestamp("ms"))})
    assert rows({"type": "interval", "dimension": "__time", "intervals": ["1970-01-01/1970-01-02"]}, ts) == [0]
    assert rows({"type": "interval", "dimension": "n", "intervals": ["1970-01-01T00:00:00.005Z/1970-01-01T00:00:00.010Z"]}) == [1, 6]


def test_expression_filter():
    assert rows({"type": "expression", "expression": "n > 4 && strlen(s) < 6"}) == [3, 5, 6]
    assert rows({"type": "expression", "expression": "if(n > 4, 'true', 'no')"}) == [1, 3, 5, 6]
    assert three_valued({"type": "expression", "expression": "n > 4"})[2] is None


def test_true_and_false():
    assert rows({"type": "true"}) == list(range(7))
    assert rows({"type": "false"}) == []


# ---------------------------------------------------------------------------------------------------------------
# and, or, not: three-valued logic
# ---------------------------------------------------------------------------------------------------------------


def test_and_or_not():
    is_x = {"type": "selector", "dimension": "d", "value": "x"}
    big = {"type": "bound", "dimension": "n", "lower": "5", "ordering": "numeric"}
    assert rows({"type": "and", "fields": [is_x, big]}) == [3]
    assert rows({"type": "or", "fields": [is_x, big]}) == [0, 1, 3, 5, 6]
    assert rows({"type": "not", "field": is_x}) == [1, 4, 5]  # the null rows 2 and 6 are unknown, not "not x"
    assert rows({"type": "not", "field": {"type": "not", "field": is_x}}) == [0, 3]
    # unknown OR true is true; unknown AND false is false
    assert three_valued({"type": "or", "fields": [is_x, {"type": "true"}]}) == [True] * 7
    assert three_valued({"type": "and", "fields": [is_x, {"type": "false"}]}) == [False] * 7
    assert three_valued({"type": "and", "fields": [is_x, {"type": "true"}]})[2] is None


# ---------------------------------------------------------------------------------------------------------------
# Batches, parsing, errors, metadata
# ---------------------------------------------------------------------------------------------------------------


def test_masks_over_chunked_tables():
    table = pa.concat_tables([pa.Table.from_batches([BATCH.slice(0, 3)]), pa.Table.from_batches([BATCH.slice(3)])])
    assert table.column("s").num_chunks == 2
    m = parse_filter({"type": "in", "dimension": "s", "values": ["apple", "Cherry"]}).mask(table)
    assert isinstance(m, pa.BooleanArray) and m.to_pylist() == [True, False, False, False, True, False, False]
    empty = pa.table({"s": pa.array([], pa.string())})
    assert parse_filter({"type": "selector", "dimension": "s", "value": "a"}).mask(empty).to_pylist() == []


def test_round_trip_as_druid_json():
    spec = {
        "type": "and",
        "fields": [
            {"type": "selector", "dimension": "s", "value": "a"},
            {"type": "not", "field": {"type": "in", "dimension": "d", "values": ["x", None]}},
            {"type": "or", "fields": [{"type": "like", "dimension": "s", "pattern": "a%", "escape": "!"}, {"type": "regex", "dimension": "s", "pattern": "^b"}]},
            {"type": "bound", "dimension": "n", "lower": "1", "upper": "5", "upperStrict": True, "ordering": "numeric"},
            {"type": "interval", "dimension": "__time", "intervals": ["2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]},
            {"type": "expression", "expression": "n > 1"},
            {"type": "true"},
        ],
    }
    f = parse_filter(spec)
    dumped = f.model_dump()
    assert dumped["fields"][0] == {"type": "selector", "dimension": "s", "value": "a"}
    assert dumped["fields"][4]["intervals"] == ["2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"]
    assert parse_filter(dumped) == f
    assert f.required_columns == {"s", "d", "n", "__time"}


def test_filter_models_are_the_documented_types():
    assert set(FILTER_TYPES) == {"selector", "in", "bound", "like", "regex", "interval", "expression", "true", "false", "and", "or", "not"}
    assert isinstance(parse_filter({"type": "not", "field": {"type": "selector", "dimension": "a"}}), NotFilter)
    assert isinstance(parse_filter({"type": "selector", "dimension": "a", "value": 1.5}), SelectorFilter)
    assert parse_filter({"type": "selector", "dimension": "a", "value": 1.5}).value == "1.5"
    assert isinstance(parse_filter({"type": "bound", "dimension": "a", "upper": 3}), BoundFilter)


@pytest.mark.parametrize(
    "spec, path, message",
    [
        ({"type": "selector"}, "filter.dimension", "field required"),
        ({"type": "selector", "dimension": ""}, "filter.dimension", "at least 1 character"),
        ({"type": "spatial", "dimension": "a"}, "filter.type", "unsupported type 'spatial'"),
        ({"dimension": "a"}, "filter.type", "missing 'type'"),
        ({"type": "selector", "dimension": "a", "extractionFn": {"type": "upper"}}, "filter.extractionFn", "not supported"),
        ({"type": "selector", "dimension": "a", "vaule": "x"}, "filter.vaule", "unknown field"),
        ({"type": "bound", "dimension": "a"}, "filter.lower", "needs 'lower' or 'upper'"),
        ({"type": "bound", "dimension": "a", "lower": "x", "ordering": "numeric"}, "filter.lower", "must be a number"),
        ({"type": "bound", "dimension": "a", "lower": "1", "ordering": "version"}, "filter.ordering", "unsupported ordering"),
        ({"type": "like", "dimension": "a", "pattern": "x", "escape": "!!"}, "filter.escape", "single character"),
        ({"type": "regex", "dimension": "a", "pattern": "(x"}, "filter.pattern", "not a valid regular expression"),
        ({"type": "interval", "dimension": "__time", "intervals": ["2024-01-02/2024-01-01"]}, "filter.intervals[0]", "before its start"),
        ({"type": "interval", "dimension": "__time", "intervals": []}, "filter.intervals", "at least 1"),
        ({"type": "expression", "expression": "a >"}, "filter.expression", "unexpected end of expression at position 3"),
        ({"type": "and", "fields": []}, "filter.fields", "at least 1"),
        ({"type": "or", "fields": [{"type": "selector", "dimension": "a"}, {"type": "in", "dimension": "b"}]}, "filter.fields[1].values", "field required"),
        ({"type": "not", "field": {"type": "regex", "dimension": "a", "pattern": "["}}, "filter.field.pattern", "not a valid regular expression"),
        ({"type": "in", "dimension": "a", "values": [{"x": 1}]}, "filter.values", "expected a string or a number"),
    ],
)
def test_errors_name_the_field_path_and_value(spec, path, message):
    with pytest.raises(SpecError) as exc:
        parse_filter(spec)
    assert exc.value.path == path, str(exc.value)
    assert message in str(exc.value)


def test_filters_are_immutable_values():
    f = parse_filter({"type": "selector", "dimension": "a", "value": "x"})
    with pytest.raises(pydantic.ValidationError):
        f.value = "y"  # type: ignore[misc]
    assert f == parse_filter({"type": "selector", "dimension": "a", "value": "x"})


def test_large_and_dictionary_encoded_shapes():
    batch = pa.record_batch(
        {
            "ls": pa.array(["a", "b", None], pa.large_string()),
            "mvd": pa.array([["a", "b"], ["c"], None], pa.list_(pa.dictionary(pa.int32(), pa.string()))),
            "lmv": pa.array([["a"], ["b"], []], pa.large_list(pa.string())),
            "flag": pa.array([True, False, None]),
        }
    )
    assert rows({"type": "in", "dimension": "ls", "values": ["a"]}, batch) == [0]
    assert rows({"type": "bound", "dimension": "ls", "lower": "b"}, batch) == [1]
    assert rows({"type": "selector", "dimension": "mvd", "value": "c"}, batch) == [1]
    assert rows({"type": "selector", "dimension": "mvd", "value": None}, batch) == [2]
    assert rows({"type": "in", "dimension": "lmv", "values": ["b", None]}, batch) == [1, 2]
    assert rows({"type": "selector", "dimension": "flag", "value": True}, batch) == [0]  # booleans read as "true"/"false"
