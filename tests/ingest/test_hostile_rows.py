"""Broken and unusual rows through a whole index task: each is counted the way Druid counts it, never fatal.

Also multi-value dimensions from JSON arrays, Parquet lists and CSV ``listDelimiter`` (with Druid's handling of
null elements), and a JSON field whose type changes between rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import ParseExceptionLimitExceeded
from druidflow.intervals import Interval
from druidflow.query import visible_rows
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.index_specs import COUNT_AND_SUM_V, index_task

TS = '"ts":"2024-01-01T01:00:00Z"'
CSV_FORMAT = {"type": "csv", "findColumnsFromHeader": True}


@pytest.fixture
def rt(sqlite_url, tmp_path) -> Runtime:
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def spec_for(input_source: dict, fmt: dict, *, dims=("d",), tuning: dict | None = None) -> dict:
    return index_task(
        input_source=input_source, input_format=fmt, dimensions=dims, metrics=COUNT_AND_SUM_V, intervals=["2024-01-01/2024-01-02"],
        tuning={"maxSavedParseExceptions": 10, **(tuning or {})},
    )


def run_file(rt: Runtime, tmp_path: Path, data: bytes, fmt: dict, name: str = "in.dat", **kwargs) -> dict:
    folder = tmp_path / "input"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    spec = spec_for({"type": "local", "baseDir": str(folder), "filter": name}, fmt, **kwargs)
    return index.run(spec, rt).reports["ingestionStatsAndErrors"]["payload"]


def rows_of(rt: Runtime) -> list[dict]:
    batches = list(visible_rows(rt.store, rt.storage, "t", Interval.parse("2024-01-01/2024-01-02")))
    return pa.Table.from_batches(batches).to_pylist() if batches else []


def counts(payload: dict) -> tuple[int, int, int, int]:
    s = payload["rowStats"]["buildSegments"]
    return s["processed"], s["processedWithError"], s["unparseable"], s["thrownAway"]


def saved(payload: dict) -> list[dict]:
    return payload["unparseableEvents"].get("buildSegments", [])


# ------------------------------------------------------------------------------------------ multi-value


def test_json_arrays_in_a_declared_string_dimension_are_multi_value_and_keep_null_elements(rt, tmp_path):
    data = "\n".join(
        [
            f'{{{TS},"d":["y","x"],"v":1}}',
            f'{{{TS},"d":["x","y"],"v":2}}',  # the same sorted array: rolls up with the first
            f'{{{TS},"d":["k",null,"j"],"v":4}}',  # a null element keeps the row and the element
            f'{{{TS},"d":"x","v":8}}',
            f'{{{TS},"d":[],"v":16}}',  # an empty array is a null row
        ]
    ).encode()
    payload = run_file(rt, tmp_path, data, {"type": "json"})
    assert counts(payload) == (5, 0, 0, 0)
    got = {json.dumps(r["d"]): (r["count"], r["v"]) for r in rows_of(rt)}
    assert got == {'["x", "y"]': (2, 3), '[null, "j", "k"]': (1, 4), '["x"]': (1, 8), "null": (1, 16)}


def test_parquet_lists_in_a_declared_string_dimension_are_multi_value(rt, tmp_path):
    table = pa.table(
        {
            "ts": ["2024-01-01T01:00:00Z"] * 3,
            "d": pa.array([["b", "a"], ["a", None], None], pa.list_(pa.string())),
            "n": pa.array([[2, 1], [3], [4]], pa.list_(pa.int64())),
            "v": [1, 2, 4],
        }
    )
    folder = tmp_path / "input"
    folder.mkdir()
    pq.write_table(table, folder / "in.parquet")
    spec = spec_for({"type": "local", "baseDir": str(folder), "filter": "*.parquet"}, {"type": "parquet"}, dims=("d", "n"))
    payload = index.run(spec, rt).reports["ingestionStatsAndErrors"]["payload"]
    assert counts(payload) == (3, 0, 0, 0)
    got = sorted((json.dumps(r["d"]), json.dumps(r["n"]), r["v"]) for r in rows_of(rt))
    assert got == [('["a", "b"]', '["1", "2"]', 1), ('[null, "a"]', '["3"]', 2), ("null", '["4"]', 4)]
    # The segment stores real list columns.
    segment = rt.store.used_segments("t")[0]
    with rt.storage.open_local(segment.load_spec) as path:
        schema = pq.read_schema(path)
    assert pa.types.is_list(schema.field("d").type) and pa.types.is_list(schema.field("n").type)


def test_csv_list_delimiter_splits_into_multi_value_rows(rt, tmp_path):
    data = b"ts,d,v\n2024-01-01T01:00:00Z,x|y,1\n2024-01-01T01:00:00Z,y|x,2\n2024-01-01T01:00:00Z,k||j,4\n2024-01-01T01:00:00Z,z,8\n"
    payload = run_file(rt, tmp_path, data, {**CSV_FORMAT, "listDelimiter": "|"})
    assert counts(payload) == (4, 0, 0, 0)
    got = sorted((json.dumps(r["d"]), r["count"], r["v"]) for r in rows_of(rt))
    # SQL-compatible null handling: an empty element stays an empty string.
    assert got == [('["", "j", "k"]', 1, 4), ('["x", "y"]', 2, 3), ('["z"]', 1, 8)]


def test_a_json_field_changing_type_with_a_key_missing_in_some_row_ingests_as_strings(rt, tmp_path):
    data = f'{{{TS},"x":635}}\n{{{TS},"e":"","x":"635"}}\n'.encode()
    payload = run_file(rt, tmp_path, data, {"type": "json"}, dims=("x", "e"))
    assert counts(payload) == (2, 0, 0, 0)
    got = sorted(((r["x"], r["e"]) for r in rows_of(rt)), key=str)
    assert got == [("635", ""), ("635", None)]


def test_a_json_field_changing_type_discovered_schemaless(rt, tmp_path):
    data = f'{{{TS},"x":635}}\n{{{TS},"e":"","x":"635"}}\n'.encode()
    payload = run_file(rt, tmp_path, data, {"type": "json"}, dims=())
    assert counts(payload) == (2, 0, 0, 0)
    assert sorted(r["x"] for r in rows_of(rt)) in (["635"], ["635", "635"])


# ------------------------------------------------------------------------------------------ broken rows


GOOD = f'{{{TS},"d":"a","v":1}}'


@pytest.mark.parametrize(
    "bad, message",
    [
        (f'{{{TS},"d":"\\ud800","v":1}}', "surrogate"),
        (f'{{{TS},"d":{"[" * 5000}{"]" * 5000},"v":1}}', "nested deeper"),
        (f"{GOOD} {GOOD}", "invalid JSON"),  # two objects on one line
        (f"{GOOD}{GOOD}", "invalid JSON"),
    ],
    ids=["lone-surrogate", "nested-5000", "two-objects-spaced", "two-objects-glued"],
)
def test_a_broken_json_line_is_one_unparseable_row_with_a_saved_sample(rt, tmp_path, bad, message):
    data = "\n".join([GOOD, bad, GOOD, ""]).encode()
    payload = run_file(rt, tmp_path, data, {"type": "json"})
    assert counts(payload) == (2, 0, 1, 0)
    (event,) = saved(payload)
    assert event["errorType"] == "unparseable" and message in event["details"][0]
    assert [(r["d"], r["count"]) for r in rows_of(rt)] == [("a", 2)]


def test_a_long_beyond_the_long_range_is_processed_with_error_and_null(rt, tmp_path):
    data = f'{GOOD}\n{{{TS},"d":"b","v":9223372036854775808}}\n{{{TS},"d":"c","v":-9300000000000000000}}\n'.encode()
    payload = run_file(rt, tmp_path, data, {"type": "json"})
    assert counts(payload) == (1, 2, 0, 0)
    assert {e["errorType"] for e in saved(payload)} == {"processedWithError"}
    assert sorted((r["d"], r["v"]) for r in rows_of(rt)) == [("a", 1), ("b", None), ("c", None)]


def test_a_long_beyond_the_long_range_in_csv_is_processed_with_error(rt, tmp_path):
    data = b"ts,d,v\n2024-01-01T01:00:00Z,a,9223372036854775807\n2024-01-01T01:00:00Z,b,9223372036854775808\n"
    payload = run_file(rt, tmp_path, data, CSV_FORMAT)
    assert counts(payload) == (1, 1, 0, 0)
    assert sorted((r["d"], r["v"]) for r in rows_of(rt)) == [("a", 2**63 - 1), ("b", None)]


@pytest.mark.parametrize("quoted", [False, True], ids=["native", "quote-guarded"])
def test_a_csv_row_with_invalid_utf8_is_one_unparseable_row(rt, tmp_path, quoted):
    data = b"ts,d,v\n2024-01-01T01:00:00Z,\xff\xfe,1\n2024-01-01T01:00:00Z,a,1\n" + (b'2024-01-01T01:00:00Z,"b",1\n' if quoted else b"")
    payload = run_file(rt, tmp_path, data, CSV_FORMAT)
    assert counts(payload) == (1 + quoted, 0, 1, 0)
    assert saved(payload)[0]["errorType"] == "unparseable"
    assert sorted(r["d"] for r in rows_of(rt)) == (["a", "b"] if quoted else ["a"])


def test_an_unbalanced_csv_quote_is_counted_and_the_next_line_reads_afresh(rt, tmp_path):
    data = b'ts,d,v\n2024-01-01T01:00:00Z,"abc,1\n2024-01-01T01:00:00Z,a,1\n2024-01-01T01:00:00Z,"b",2\n'
    payload = run_file(rt, tmp_path, data, CSV_FORMAT)
    assert counts(payload) == (2, 0, 1, 0)
    assert "quote" in saved(payload)[0]["details"][0]
    assert sorted((r["d"], r["v"]) for r in rows_of(rt)) == [("a", 1), ("b", 2)]


def test_bad_rows_fail_the_task_only_beyond_max_parse_exceptions_and_publish_nothing(rt, tmp_path):
    bad = f'{{{TS},"d":"\\ud800","v":1}}'
    data = "\n".join([GOOD, bad, bad, GOOD]).encode()
    payload = run_file(rt, tmp_path, data, {"type": "json"}, tuning={"maxParseExceptions": 2})
    assert counts(payload) == (2, 0, 2, 0)
    with pytest.raises(ParseExceptionLimitExceeded, match="maxParseExceptions=1"):
        run_file(rt, tmp_path, data + b"\n" + GOOD.encode(), {"type": "json"}, name="more.dat", tuning={"maxParseExceptions": 1})
    # The failed run changed nothing: the first run's rows are still the visible ones, and no lock is left.
    assert [(r["d"], r["count"]) for r in rows_of(rt)] == [("a", 2)]
    assert rt.lockbox.locks("t") == []


def test_multi_value_rows_with_null_elements_survive_compaction(rt, tmp_path):
    data = f'{{{TS},"d":["k",null,"j"],"v":1}}\n{{{TS},"d":["x"],"v":2}}\n'.encode()
    run_file(rt, tmp_path, data, {"type": "json"})
    index_rows = sorted(json.dumps(r["d"]) for r in rows_of(rt))
    from druidflow.tasks.dispatch import run_task

    run_task({"type": "compact", "dataSource": "t", "interval": "2024-01-01/2024-01-02"}, rt)
    assert sorted(json.dumps(r["d"]) for r in rows_of(rt)) == index_rows == ['["x"]', '[null, "j", "k"]']
