"""Hostile task specs: each is a SpecError naming its field path, raised before any lock is taken."""

from __future__ import annotations

import copy
import json
import time

import pytest

from druidflow import cli
from druidflow.exceptions import SpecError
from druidflow.expressions import MAX_EXPRESSION_DEPTH, compile_expression
from druidflow.specs.limits import MAX_NUM_SHARDS, MAX_SPEC_DEPTH
from druidflow.specs.tasks import parse_task
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.runtime import Runtime

TS = '"ts":"2024-01-01T01:00:00Z"'
BASE = {
    "type": "index",
    "spec": {
        "dataSchema": {
            "dataSource": "t",
            "timestampSpec": {"column": "ts"},
            "dimensionsSpec": {"dimensions": ["d"]},
            "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}],
            "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "intervals": ["2024-01-01/2024-01-02"]},
        },
        "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": f'{{{TS},"d":"a","v":3}}'}, "inputFormat": {"type": "json"}},
    },
}


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def index_spec(edit=None) -> dict:
    spec = copy.deepcopy(BASE)
    if edit:
        edit(spec)
    return spec


def schema(spec: dict) -> dict:
    return spec["spec"]["dataSchema"]


def nested(key: str, depth: int, leaf: dict) -> dict:
    for _ in range(depth):
        leaf = {"type": "not", key: leaf} if key == "field" else {key: leaf}
    return leaf


def deep_filter_text(depth: int) -> str:
    """An index spec's JSON text with a filter nested ``depth`` levels (too deep for ``json.dumps`` to write)."""
    leaf = '{"type":"selector","dimension":"d","value":"a"}'
    text = json.dumps(index_spec(lambda s: schema(s).__setitem__("transformSpec", {"filter": "FILTER"})))
    return text.replace('"FILTER"', '{"type":"not","field":' * depth + leaf + "}" * depth)


def refused(spec, path_part: str, rt: Runtime | None = None) -> SpecError:
    with pytest.raises(SpecError) as err:
        if rt is None:
            parse_task(spec)
        else:
            run_task(spec, rt)
    assert path_part in err.value.path, err.value
    if rt is not None:
        assert rt.lockbox.locks() == []
        assert rt.store.used_segments("t") == []
    return err.value


@pytest.mark.parametrize("priority", [2**63, 1e30, 2**31, -(2**31) - 1, "9223372036854775808"])
@pytest.mark.parametrize("kind", ["index", "kill"])
def test_priority_outside_a_java_int_is_refused(rt, priority, kind):
    if kind == "index":
        spec = index_spec(lambda s: s.__setitem__("context", {"priority": priority}))
    else:
        spec = {"type": "kill", "dataSource": "t", "interval": "2024-01-01/2024-01-02", "context": {"priority": priority}}
    refused(spec, "context.priority", rt)


def test_priority_at_the_java_int_bounds_is_accepted():
    assert parse_task(index_spec(lambda s: s.__setitem__("context", {"priority": 2**31 - 1}))).priority == 2**31 - 1
    assert parse_task(index_spec(lambda s: s.__setitem__("context", {"priority": -(2**31)}))).priority == -(2**31)


@pytest.mark.parametrize("num_shards", [10**7, 1e30, MAX_NUM_SHARDS + 1])
def test_absurd_num_shards_is_refused_at_once_and_takes_no_lock(rt, num_shards):
    spec = index_spec(
        lambda s: s["spec"].__setitem__(
            "tuningConfig", {"type": "index", "forceGuaranteedRollup": True, "partitionsSpec": {"type": "hashed", "numShards": num_shards}}
        )
    )
    started = time.monotonic()
    refused(spec, "partitionsSpec.numShards", rt)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "field, value",
    [
        ("maxRowsPerSegment", 2**31),
        ("maxRowsPerSegment", 2**63),
        ("maxRowsInMemory", 2**70),
        ("maxParseExceptions", 2**31),
        ("maxSavedParseExceptions", 2**40),
        ("maxTotalRows", 2**63),
        ("maxBytesInMemory", 2**64),
    ],
)
def test_integer_tuning_fields_are_bounded(field, value):
    refused(index_spec(lambda s: s["spec"].__setitem__("tuningConfig", {"type": "index", field: value})), f"tuningConfig.{field}")


@pytest.mark.parametrize(
    "interval",
    ["-292275056-01-01/2020-01-01", "2020-01-01/292278995-01-01", "1000-01-01/P1000000000Y"],
)
def test_intervals_beyond_a_64_bit_millisecond_count_are_refused(rt, interval):
    refused({"type": "kill", "dataSource": "t", "interval": interval}, "interval", rt)
    refused(index_spec(lambda s: schema(s)["granularitySpec"].__setitem__("intervals", [interval])), "granularitySpec.intervals")


def test_a_kill_over_jodas_whole_range_runs(rt):
    run_task(index_spec(), rt)
    for interval in ("-292275055-05-16T16:47:04.192Z/292278994-08-17T07:12:55.807Z", "-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"):
        run_task({"type": "kill", "dataSource": "t", "interval": interval, "markAsUnused": True}, rt)
    assert rt.store.used_segments("t") == [] and rt.lockbox.locks() == []


def test_an_expression_of_20000_terms_evaluates_in_a_loop(rt):
    expression = " + ".join(["v"] * 20_000)
    run_task(index_spec(lambda s: schema(s).__setitem__("transformSpec", {"transforms": [{"type": "expression", "name": "v", "expression": expression}]})), rt)
    assert compile_expression(expression).required_columns == {"v"}
    from druidflow.query import visible_rows

    (batch,) = list(visible_rows(rt.store, rt.storage, "t", None))
    assert batch.column("v").to_pylist() == [60_000]


@pytest.mark.parametrize("text", ["(" * 5000 + "v" + ")" * 5000, "-" * 5000 + "v", "abs(" * 5000 + "v" + ")" * 5000, "v+(" * 3000 + "v" + ")" * 3000])
def test_deeply_nested_expressions_are_refused_with_a_depth_error(text):
    spec = index_spec(lambda s: schema(s).__setitem__("transformSpec", {"transforms": [{"type": "expression", "name": "x", "expression": text}]}))
    err = refused(spec, "transformSpec.transforms[0].expression")
    assert f"deeper than {MAX_EXPRESSION_DEPTH}" in err.reason


def test_expressions_nested_within_the_limit_evaluate():
    depth = MAX_EXPRESSION_DEPTH - 5
    import pyarrow as pa

    out = compile_expression("(" * depth + "v + 1" + ")" * depth).evaluate(pa.table({"v": [1, 2]}))
    assert out.to_pylist() == [2, 3]


def test_a_filter_nested_3000_deep_is_refused_naming_its_path():
    leaf = {"type": "selector", "dimension": "d", "value": "a"}
    spec = index_spec(lambda s: schema(s).__setitem__("transformSpec", {"filter": nested("field", 3000, leaf)}))
    err = refused(spec, "spec.dataSchema.transformSpec.filter.field")
    assert f"deeper than {MAX_SPEC_DEPTH}" in err.reason
    # As JSON text deeper than Python's json module can decode:
    err = refused(deep_filter_text(3000), "")
    assert f"deeper than {MAX_SPEC_DEPTH}" in err.reason


def test_a_filter_nested_within_the_limit_runs(rt):
    leaf = {"type": "selector", "dimension": "d", "value": "a"}
    # 90 nots are the selector itself (the row is kept); 91 drop it.
    run_task(index_spec(lambda s: schema(s).__setitem__("transformSpec", {"filter": nested("field", 90, leaf)})), rt)
    assert len(rt.store.used_segments("t")) == 1
    report = run_task(index_spec(lambda s: schema(s).__setitem__("transformSpec", {"filter": nested("field", 91, leaf)})), rt)
    assert report["reports"]["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["thrownAway"] == 1


def test_cli_gives_a_one_line_error_for_a_spec_deeper_than_json_can_decode(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text(deep_filter_text(3000))
    code = cli.main(["--metadata-url", f"sqlite:///{tmp_path / 'm.db'}", "run", str(path)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "deeper than" in err and "Traceback" not in err


def test_a_context_nested_300_deep_is_refused_naming_its_path():
    err = refused(index_spec(lambda s: s.__setitem__("context", {"deep": nested("a", 300, {})})), "context.deep.a")
    assert f"deeper than {MAX_SPEC_DEPTH}" in err.reason


@pytest.mark.parametrize("gran", [5, "5", [5]])
def test_legacy_compact_with_a_non_object_granularity_spec_is_a_field_named_error(gran):
    spec = {"type": "compact", "dataSource": "t", "interval": "2024-01-01/2024-01-02", "segmentGranularity": "DAY", "granularitySpec": gran}
    refused(spec, "granularitySpec")
    refused({k: v for k, v in spec.items() if k != "segmentGranularity"}, "granularitySpec")


@pytest.mark.parametrize("name", ["__chunk", "__bucket", "__time_v"])
def test_internal_column_names_are_reserved(name):
    refused(index_spec(lambda s: schema(s)["dimensionsSpec"].__setitem__("dimensions", [name])), "dimensionsSpec.dimensions[0]")
    refused(index_spec(lambda s: schema(s)["dimensionsSpec"].__setitem__("dimensions", [{"type": "long", "name": name}])), "dimensions[0]")
    refused(index_spec(lambda s: schema(s)["metricsSpec"].append({"type": "longSum", "name": name, "fieldName": "v"})), "metricsSpec[2].name")
    refused(
        index_spec(lambda s: schema(s).__setitem__("transformSpec", {"transforms": [{"type": "expression", "name": name, "expression": "v"}]})),
        "transforms[0].name",
    )


def test_input_fields_named_like_internal_columns_are_not_discovered(rt):
    data = f'{{{TS},"d":"a","__chunk":"x","__bucket":7,"v":1}}'
    spec = index_spec(lambda s: (schema(s)["dimensionsSpec"].__setitem__("dimensions", []), s["spec"]["ioConfig"]["inputSource"].__setitem__("data", data)))
    run_task(spec, rt)
    (segment,) = rt.store.used_segments("t")
    assert segment.dimension_names == ["d"]


@pytest.mark.parametrize(
    "name",
    ["a\\b", "intermediate_pushes", "INTERMEDIATE_PUSHES", "x" * 201, "é" * 101, "a/b", ".hidden", "tab\there", "nl\nx", "bell\x07", "nbsp\x85", "", "..", "lone\ud800"],
)
def test_bad_datasource_names_are_refused_at_submit(rt, name):
    refused(index_spec(lambda s: schema(s).__setitem__("dataSource", name)), "dataSource", rt)
    refused({"type": "kill", "dataSource": name, "interval": "2024-01-01/2024-01-02"}, "dataSource", rt)
    refused({"type": "compact", "dataSource": name, "interval": "2024-01-01/2024-01-02"}, "dataSource", rt)


@pytest.mark.parametrize("name", ["with space", "x" * 200, "ünïcode", "a.b", "intermediate_pushes_2"])
def test_good_datasource_names_are_accepted(name):
    assert parse_task(index_spec(lambda s: schema(s).__setitem__("dataSource", name))).data_source == name


def test_a_task_id_longer_than_the_metadata_column_is_refused():
    refused(index_spec(lambda s: s.__setitem__("id", "i" * 256)), "id")


def test_lone_surrogates_anywhere_in_a_spec_are_refused_naming_the_field():
    err = refused(index_spec(lambda s: schema(s)["dimensionsSpec"].__setitem__("dimensions", ["ok", "bad\ud800"])), "dimensionsSpec.dimensions[1]")
    assert "surrogate" in err.reason
    refused(index_spec(lambda s: s.__setitem__("context", {"k\udc00": 1})), "context")


def test_cli_gives_a_one_line_error_for_a_spec_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"type": "index", "x": "\xff"}')
    code = cli.main(["--metadata-url", f"sqlite:///{tmp_path / 'm.db'}", "run", str(path)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "UTF-8" in err
