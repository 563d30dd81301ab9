"""Aggregator models: every supported type, their combining forms, and the errors for everything else."""

from __future__ import annotations

import pytest

from druidflow.aggregators import (
    SUPPORTED_TYPES,
    CountAggregator,
    FirstAggregator,
    LastAggregator,
    MaxAggregator,
    MinAggregator,
    SumAggregator,
    combining_metrics_spec,
    merge_aggregators,
    parse_aggregator,
    parse_metrics_spec,
)
from tests.specs.helpers import assert_spec_error

SKETCH_TYPES = ("thetaSketch", "HLLSketchBuild", "HLLSketchMerge", "quantilesDoublesSketch", "hyperUnique", "cardinality")
FIELD_TYPES = [t for t in SUPPORTED_TYPES if t not in ("count", "filtered", *SKETCH_TYPES) and not t.startswith("string")
               and not t.endswith("Any")]


def test_supported_types_are_druids_numeric_string_and_filtered_aggregators():
    assert set(SUPPORTED_TYPES) == {
        "count",
        *(f"{vt}{k}" for vt in ("long", "double", "float") for k in ("Sum", "Min", "Max", "First", "Last", "Any")),
        "stringFirst", "stringLast", "stringAny", "filtered",
        *SKETCH_TYPES,
    }


@pytest.mark.parametrize(
    "kind, cls, expected_kind",
    [("Sum", SumAggregator, "sum"), ("Min", MinAggregator, "min"), ("Max", MaxAggregator, "max"),
     ("First", FirstAggregator, "first"), ("Last", LastAggregator, "last")],
)
@pytest.mark.parametrize("value_type", ["long", "double", "float"])
def test_kind_value_type_and_input_column(kind, cls, expected_kind, value_type):
    agg = parse_aggregator({"type": f"{value_type}{kind}", "name": "out", "fieldName": "in"})
    assert isinstance(agg, cls)
    assert (agg.name, agg.kind, agg.value_type, agg.input_column, agg.expression) == ("out", expected_kind, value_type, "in", None)


def test_count():
    agg = parse_aggregator({"type": "count", "name": "rows"})
    assert isinstance(agg, CountAggregator)
    assert (agg.kind, agg.value_type, agg.input_column, agg.expression, agg.required_columns) == ("count", "long", None, None, [])


def test_count_combines_as_long_sum_of_itself():
    assert parse_aggregator({"type": "count", "name": "c"}).combining() == SumAggregator(type="longSum", name="c", field_name="c")
    assert parse_aggregator({"type": "count", "name": "c"}).combining().model_dump() == {"type": "longSum", "name": "c", "fieldName": "c"}


@pytest.mark.parametrize("agg_type", [t for t in FIELD_TYPES if not t.endswith(("First", "Last"))])
def test_sum_min_max_combine_over_their_own_column(agg_type):
    agg = parse_aggregator({"type": agg_type, "name": "x", "fieldName": "y"})
    combined = agg.combining()
    assert combined.model_dump() == {"type": agg_type, "name": "x", "fieldName": "x"}
    assert combined.combining() == combined  # combining is idempotent


@pytest.mark.parametrize("agg_type", [t for t in FIELD_TYPES if t.endswith(("First", "Last"))])
def test_first_last_keep_kind_and_time_column_when_combining(agg_type):
    agg = parse_aggregator({"type": agg_type, "name": "x", "fieldName": "y", "timeColumn": "t"})
    assert agg.required_columns == ["t", "y"]
    assert agg.combining().model_dump() == {"type": agg_type, "name": "x", "fieldName": "x", "timeColumn": "t"}
    assert parse_aggregator({"type": agg_type, "name": "x", "fieldName": "y"}).time_column == "__time"


def test_combining_metrics_spec_keeps_order():
    spec = [{"type": "count", "name": "count"}, {"type": "doubleSum", "name": "added", "fieldName": "delta_plus"}]
    assert [a.model_dump() for a in combining_metrics_spec(spec)] == [
        {"type": "longSum", "name": "count", "fieldName": "count"},
        {"type": "doubleSum", "name": "added", "fieldName": "added"},
    ]


def test_expression_aggregator_compiles_at_parse_and_reports_its_columns():
    agg = parse_aggregator({"type": "doubleSum", "name": "total", "expression": "price * quantity"})
    assert agg.input_column is None and agg.expression == "price * quantity"
    assert set(agg.required_columns) == {"price", "quantity"}
    assert agg.combining().model_dump() == {"type": "doubleSum", "name": "total", "fieldName": "total"}


def test_bad_expression_fails_at_parse_naming_the_path():
    assert_spec_error(
        lambda: parse_metrics_spec([{"type": "longSum", "name": "x", "expression": "a + (b"}], "spec.dataSchema.metricsSpec"),
        "spec.dataSchema.metricsSpec[0].expression",
        "a + (b",
    )


@pytest.mark.parametrize("bad_type", ["KllDoublesSketch", "arrayOfDoublesSketch", "javascript", "momentSketch"])
def test_unsupported_type_names_path_type_and_supported_list(bad_type):
    err = assert_spec_error(
        lambda: parse_metrics_spec([{"type": "count", "name": "c"}, {"type": bad_type, "name": "u", "fieldName": "x"}], "metricsSpec"),
        "metricsSpec[1].type",
        bad_type,
    )
    assert "longSum" in err.reason and "floatLast" in err.reason


def test_missing_type():
    assert_spec_error(lambda: parse_aggregator({"name": "u"}, "m"), "m.type", None)


def test_not_an_object():
    assert_spec_error(lambda: parse_metrics_spec(["count"], "metricsSpec"), "metricsSpec[0]", "count")


def test_field_name_or_expression_exactly_one():
    assert_spec_error(lambda: parse_aggregator({"type": "longSum", "name": "x"}, "m"), "m.fieldName", None, "needs 'fieldName' or 'expression'")
    assert_spec_error(
        lambda: parse_aggregator({"type": "doubleMax", "name": "x", "fieldName": "a", "expression": "b"}, "m"), "m.expression", "b", "not both"
    )


def test_first_last_need_field_name():
    assert_spec_error(lambda: parse_aggregator({"type": "longFirst", "name": "x"}, "m"), "m.fieldName", None)
    # first/last read a column; an expression is not one of their fields
    assert_spec_error(lambda: parse_aggregator({"type": "longLast", "name": "x", "fieldName": "v", "expression": "a"}, "m"), "m.expression", "a")


def test_empty_name_and_unknown_field():
    assert_spec_error(lambda: parse_aggregator({"type": "count", "name": ""}, "m"), "m.name", "")
    assert_spec_error(lambda: parse_aggregator({"type": "longSum", "name": "x", "fieldName": "y", "feildName": "z"}, "m"), "m.feildName", "z")


def test_merge_aggregators_by_name_in_first_seen_order():
    merged = merge_aggregators(
        [
            [{"type": "count", "name": "count"}, {"type": "doubleSum", "name": "added", "fieldName": "added"}],
            [{"type": "longSum", "name": "count", "fieldName": "count"}, {"type": "longMax", "name": "peak", "fieldName": "v"}],
        ]
    )
    assert [a.model_dump() for a in merged] == [
        {"type": "longSum", "name": "count", "fieldName": "count"},
        {"type": "doubleSum", "name": "added", "fieldName": "added"},
        {"type": "longMax", "name": "peak", "fieldName": "peak"},
    ]


def test_merge_aggregators_rejects_mismatched_types():
    err = assert_spec_error(
        lambda: merge_aggregators([[{"type": "longSum", "name": "v", "fieldName": "v"}], [{"type": "doubleSum", "name": "v", "fieldName": "v"}]]),
        "metricsSpec",
        {"name": "v", "types": ["longSum", "doubleSum"]},
    )
    assert "explicit metricsSpec" in err.reason


def test_merge_aggregators_reports_bad_stored_aggregator_by_segment():
    assert_spec_error(
        lambda: merge_aggregators([[{"type": "count", "name": "c"}], [{"type": "javascript", "name": "u", "fieldName": "u"}]]),
        "segments[1].aggregators[0].type",
        "javascript",
    )


def test_first_last_empty_columns():
    assert_spec_error(lambda: parse_aggregator({"type": "doubleFirst", "name": "x", "fieldName": ""}, "m"), "m.fieldName", "")
    assert_spec_error(lambda: parse_aggregator({"type": "floatLast", "name": "x", "fieldName": "v", "timeColumn": ""}, "m"), "m.timeColumn", "")
    assert_spec_error(lambda: parse_aggregator({"type": "longSum", "name": "x", "fieldName": ""}, "m"), "m.fieldName", "")


@pytest.mark.parametrize("agg_type", ["longAny", "doubleAny", "floatAny", "stringAny"])
def test_any_combines_over_its_own_column(agg_type):
    combined = parse_aggregator({"type": agg_type, "name": "x", "fieldName": "y"}).combining()
    assert (combined.type, combined.field_name, combined.kind) == (agg_type, "x", "any")
    assert combined.combining() == combined
