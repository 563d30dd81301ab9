"""flattenSpec paths beyond plain names: JSONPath functions and ``[*]``, and jq, vectorised over Arrow batches;
checked with the specs Druid's own integration tests use and the values they expect."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from druidflow.exceptions import SpecError
from druidflow.inputs.flatten import extract_path
from druidflow.specs.field_paths import EACH, parse_jq, parse_json_path
from druidflow.specs.tasks import parse_task
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import rows_of

# Druid's integration-tests/src/test/resources/indexer/json_path_index_task.json, retyped; its queries file
# (json_path_index_queries.json) expects len 5, min 0, max 4, sum 10 for the one row.
JSON_PATH_INDEX_TASK = {
    "type": "index",
    "dataSource": "json_path_index_test",
    "spec": {
        "dataSchema": {
            "dataSource": "json_path_index_test",
            "timestampSpec": {"column": "timestamp", "format": "iso"},
            "dimensionsSpec": {
                "dimensions": [
                    {"type": "long", "name": "len"},
                    {"type": "long", "name": "min"},
                    {"type": "long", "name": "max"},
                    {"type": "long", "name": "sum"},
                ],
                "dimensionExclusions": ["__time", "timestamp"],
            },
            "metricsSpec": [],
            "granularitySpec": {"type": "uniform", "segmentGranularity": "HOUR", "queryGranularity": {"type": "none"}},
        },
        "ioConfig": {
            "type": "index",
            "inputSource": {"type": "inline", "data": '{"timestamp": "2013-08-31T01:02:33Z", "values": [0,1,2,3,4] }'},
            "inputFormat": {
                "type": "json",
                "flattenSpec": {
                    "useFieldDiscovery": True,
                    "fields": [
                        {"type": "path", "name": "len", "expr": "$.values.length()"},
                        {"type": "path", "name": "min", "expr": "$.values.min()"},
                        {"type": "path", "name": "max", "expr": "$.values.max()"},
                        {"type": "path", "name": "sum", "expr": "$.values.sum()"},
                    ],
                },
            },
        },
    },
}


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def test_druids_json_path_index_task_gives_its_expected_values(rt):
    index.run(JSON_PATH_INDEX_TASK, rt)
    rows = rows_of(rt, "json_path_index_test").select(["len", "min", "max", "sum"]).to_pylist()
    assert rows == [{"len": 5, "min": 0, "max": 4, "sum": 10}]


BATCH = pa.RecordBatch.from_pylist(
    [
        {"values": [0, 1, 2, 3, 4], "items": [{"b": 1}, {"b": 5}, {"c": 2}], "obj": {"x": 1, "y": 2}},
        {"values": [], "items": None, "obj": None},
        {"values": None, "items": [{"b": 7}], "obj": {"x": 3, "y": None}},
    ]
)


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("$.values.length()", [5, 0, None]),
        ("$.values.size()", [5, 0, None]),
        ("$.values.min()", [0.0, None, None]),
        ("$.values.max()", [4.0, None, None]),
        ("$.values.sum()", [10.0, None, None]),
        ("$.values.avg()", [2.0, None, None]),
        ("$.values.stddev()", [pytest.approx(2 ** 0.5), None, None]),  # population, as Jayway's
        ("$.values.first()", [0, None, None]),
        ("$.values.last()", [4, None, None]),
        ("$.items[*].b", [[1, 5], None, [7]]),  # elements without b are left out
        ("$.items[*].b.sum()", [6.0, None, 7.0]),
        ("$.items[0].b", [1, None, 7]),
        ("$.obj.keys()", [["x", "y"], None, ["x", "y"]]),
        ("$.values[*]", [[0, 1, 2, 3, 4], None, None]),
    ],
)
def test_json_path_functions_and_wildcards(expr, expected):
    assert extract_path(BATCH, parse_json_path(expr)).to_pylist() == expected


@pytest.mark.parametrize(
    "expr, expected",
    [
        (".values | length", [5, 0, None]),
        (".values | max", [4.0, None, None]),
        (".values | add", [10.0, None, None]),
        (".items[] | .b", [[1, 5], None, [7]]),
        (".items[].b | add", [6.0, None, 7.0]),
        ('.["obj"].x', [1, None, 3]),
        ('."obj" | .y', [2, None, None]),
        (".values[1]", [1, None, None]),
    ],
)
def test_jq_expressions(expr, expected):
    assert extract_path(BATCH, parse_jq(expr)).to_pylist() == expected


def test_both_languages_reach_the_same_path():
    assert parse_jq(".items[].b | add") == parse_json_path("$.items[*].b.sum()")
    assert parse_jq(".items[].b").steps == ("items", EACH, "b")


def test_a_jq_flatten_field_ingests(rt):
    spec = {**JSON_PATH_INDEX_TASK}
    spec["spec"] = {**spec["spec"], "ioConfig": {**spec["spec"]["ioConfig"]}}
    spec["spec"]["ioConfig"]["inputFormat"] = {
        "type": "json",
        "flattenSpec": {"fields": [{"type": "jq", "name": "len", "expr": ".values | length"},
                                   {"type": "jq", "name": "sum", "expr": ".values | add"}]},
    }
    index.run(spec, rt)
    rows = rows_of(rt, "json_path_index_test")
    assert rows.select(["len", "sum"]).to_pylist() == [{"len": 5, "sum": 10}]
    assert pc.sum(rows["len"]).as_py() == 5


@pytest.mark.parametrize(
    "field",
    [
        {"type": "path", "name": "x", "expr": "$..values"},
        {"type": "path", "name": "x", "expr": "$.values.median()"},
        {"type": "jq", "name": "x", "expr": ".values | map(.+1)"},
        {"type": "jq", "name": "x", "expr": "..|.a?"},
        {"type": "jq", "name": "x"},
    ],
)
def test_what_cannot_be_evaluated_is_refused_naming_the_field(field):
    spec = {**JSON_PATH_INDEX_TASK}
    spec["spec"] = {**spec["spec"], "ioConfig": {**spec["spec"]["ioConfig"], "inputFormat": {"type": "json", "flattenSpec": {"fields": [field]}}}}
    with pytest.raises(SpecError) as err:
        parse_task(spec)
    assert "flattenSpec" in err.value.path
