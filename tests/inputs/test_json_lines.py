"""JSON lines: vectorised blocks, per-block fallback for broken lines, type drift, nesting, flattenSpec."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest

from druidflow.inputs import open_input
from druidflow.inputs.json_lines import JsonLinesParser
from druidflow.specs.io import InlineInputSource, JsonInputFormat, LocalInputSource

from .helpers import read_all, table_of


def lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def test_plain_json_lines():
    rows, failures, batches = read_all(
        InlineInputSource(data=lines({"ts": "2024-01-01T00:00:00Z", "page": "A", "added": 3}, {"ts": "2024-01-02T00:00:00Z", "page": "B", "added": 4})),
        JsonInputFormat(),
    )
    assert rows == [
        {"ts": "2024-01-01T00:00:00Z", "page": "A", "added": 3},
        {"ts": "2024-01-02T00:00:00Z", "page": "B", "added": 4},
    ]
    assert failures == [] and batches[0].data.schema.field("added").type == pa.int64()


def test_date_like_strings_stay_strings_as_written():
    data = lines({"ts": "2024-01-01", "t2": "2024-01-01 10:00", "nested": {"d": "2024-03-01"}, "l": ["2024-01-01"]})
    rows, _, batches = read_all(InlineInputSource(data=data), JsonInputFormat())
    assert rows == [{"ts": "2024-01-01", "t2": "2024-01-01 10:00", "nested": {"d": "2024-03-01"}, "l": ["2024-01-01"]}]
    schema = batches[0].data.schema
    assert schema.field("ts").type == pa.string() and schema.field("nested").type == pa.struct([("d", pa.string())])


def test_broken_lines_are_unparseable_with_text_and_line_number():
    data = lines({"a": 1}, '{"a": 2', "[1, 2]", "", '{"a": tru}', '"just a string"', {"a": 3}, '{"a": 4}}')
    rows, failures, _ = read_all(InlineInputSource(data=data), JsonInputFormat())
    assert rows == [{"a": 1}, {"a": 3}]
    assert [(f.line, f.raw) for f in failures] == [
        (2, '{"a": 2'), (3, "[1, 2]"), (5, '{"a": tru}'), (6, '"just a string"'), (8, '{"a": 4}}')
    ]
    assert "invalid JSON" in failures[0].message and "expected a JSON object" in failures[1].message
    assert failures[0].where == "inline:2"


def _count_calls(monkeypatch, name):
    import druidflow.inputs.json_lines as jl

    calls = {"n": 0}
    real = getattr(jl, name) if hasattr(jl, name) else getattr(jl.JsonLinesParser, name)

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    if hasattr(jl, name):
        monkeypatch.setattr(jl, name, counting)
    else:
        monkeypatch.setattr(jl.JsonLinesParser, name, counting)
    return calls


def test_repair_is_confined_to_the_broken_block_and_stays_vectorised(monkeypatch):
    good = [{"n": i, "s": f"v{i}"} for i in range(2000)]
    data = lines(*good[:1000], "{broken", *good[1000:])
    repairs = _count_calls(monkeypatch, "_repair")
    python_lines = _count_calls(monkeypatch, "_split_lines")
    chunks = list(JsonLinesParser().read(io.BytesIO(data.encode()), "mem", 4096))
    assert repairs["n"] == 1  # only the block holding the broken line
    assert python_lines["n"] == 0  # ... and it was repaired without parsing lines in Python
    assert [r["n"] for t, _, _ in chunks if t is not None for r in t.to_pylist()] == list(range(2000))
    [failure] = [f for _, fs, _ in chunks for f in fs]
    assert failure.line == 1001 and failure.raw == "{broken"


def test_many_broken_lines_in_one_block(monkeypatch):
    python_lines = _count_calls(monkeypatch, "_split_lines")
    objs = [f"{{oops {i}" if i % 50 == 7 else {"i": i} for i in range(5000)]
    rows, failures, _ = read_all(InlineInputSource(data=lines(*objs)), JsonInputFormat())
    assert python_lines["n"] == 0
    assert [r["i"] for r in rows] == [i for i in range(5000) if i % 50 != 7]
    assert [f.line for f in failures] == [i + 1 for i in range(5000) if i % 50 == 7]


def test_kind_change_inside_a_block_splits_it_vectorised(monkeypatch):
    python_lines = _count_calls(monkeypatch, "_split_lines")
    data = lines(*[{"v": i} for i in range(100)], *[{"v": f"s{i}"} for i in range(100)])
    rows, failures, batches = read_all(InlineInputSource(data=data), JsonInputFormat())
    assert python_lines["n"] == 0 and failures == []
    assert [b.data.schema.field("v").type for b in batches] == [pa.int64(), pa.string()]
    assert rows[0] == {"v": 0} and rows[-1] == {"v": "s99"}


def test_several_objects_on_a_line_fall_back_to_python():
    data = lines({"a": 1}, '{"a": 2}{"a": 3}', "{bad", {"a": 4})
    rows, failures, _ = read_all(InlineInputSource(data=data), JsonInputFormat())
    assert [f.line for f in failures] == [2, 3]  # Python's json rejects the doubled line too
    assert rows == [{"a": 1}, {"a": 4}]


def test_invalid_utf8_line_is_unparseable(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"a": "ok"}\n{"a": "\xff\xfe"}\n{"a": "fine"}\n')
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), JsonInputFormat())
    assert rows == [{"a": "ok"}, {"a": "fine"}]
    assert len(failures) == 1 and failures[0].line == 2 and failures[0].source == str(path)


def test_mixed_kinds_inside_one_block_widen_to_strings():
    data = lines({"v": 1, "k": "a"}, {"v": "n/a", "k": "b"}, {"v": True, "k": "c"}, {"v": {"x": 1}, "k": "d"})
    rows, failures, batches = read_all(InlineInputSource(data=data), JsonInputFormat())
    assert failures == []
    assert [r["v"] for r in rows] == [1, "n/a", "true", '{"x":1}']
    assert batches[0].data.schema.field("v").type == pa.int64()
    assert {b.data.schema.field("v").type for b in batches[1:]} == {pa.string()}


def test_a_row_mixing_kinds_inside_itself():
    data = lines({"l": [1, 2]}, {"l": [3, "x"], "n": {"a": [1, "y"]}}, {"l": [4]})
    rows, failures, _ = read_all(InlineInputSource(data=data), JsonInputFormat())
    assert failures == []
    assert [r["l"] for r in rows] == [[1, 2], ["3", "x"], ["4"]]
    assert rows[1]["n"] == {"a": ["1", "y"]}


def test_type_drift_between_blocks_promotes_forward():
    data = lines(*[{"v": i} for i in range(50)], *[{"v": i + 0.5} for i in range(50)], *[{"v": "text"} for _ in range(50)], *[{"v": 7} for _ in range(50)])
    rows, failures, batches = read_all(InlineInputSource(data=data), JsonInputFormat(), block_size=256)
    assert failures == [] and len(batches) > 4
    types = [b.data.schema.field("v").type for b in batches]
    # each type only ever widens: int64 -> double -> string, and a late int stays a string
    order = {pa.int64(): 0, pa.float64(): 1, pa.string(): 2}
    assert [order[t] for t in types] == sorted(order[t] for t in types)
    assert types[0] == pa.int64() and types[-1] == pa.string()
    assert rows[-1] == {"v": "7"}
    assert len(rows) == 200


def test_new_fields_later_are_added_and_kept():
    data = lines(*[{"a": i} for i in range(30)], *[{"a": i, "b": "x"} for i in range(30)], *[{"a": i} for i in range(30)])
    _, _, batches = read_all(InlineInputSource(data=data), JsonInputFormat(), block_size=128)
    names = [b.data.schema.names for b in batches]
    assert names[0] == ["a"] and names[-1] == ["a", "b"]
    assert batches[-1].data.column("b").null_count == batches[-1].num_rows


def test_nested_objects_stay_structs_and_merge():
    data = lines({"u": {"name": "x", "id": 1}}, *[{"u": {"name": "y"}} for _ in range(20)], {"u": {"geo": {"c": "NL"}}})
    rows, _, batches = read_all(InlineInputSource(data=data), JsonInputFormat(), block_size=64)
    last = batches[-1].data.schema.field("u").type
    assert pa.types.is_struct(last) and {f.name for f in last} == {"name", "id", "geo"}
    assert rows[-1]["u"] == {"name": None, "id": None, "geo": {"c": "NL"}}


def test_flatten_spec_root_path_tree_with_discovery():
    fmt = JsonInputFormat(
        flatten_spec={
            "useFieldDiscovery": True,
            "fields": [
                {"type": "root", "name": "timestamp", "expr": "ts"},
                {"type": "path", "name": "city", "expr": "$.geo.city"},
                {"type": "path", "name": "first_tag", "expr": "$.tags[0]"},
                {"type": "path", "name": "last_tag", "expr": "$.tags[-1]"},
                {"type": "path", "name": "deep", "expr": "$['geo']['pos'][1]"},
                {"type": "tree", "name": "country", "nodes": ["geo", "country"]},
                {"type": "path", "name": "missing", "expr": "$.nope.nothing"},
            ],
        }
    )
    data = lines(
        {"ts": "t1", "geo": {"city": "Delft", "country": "NL", "pos": [1.5, 2.5]}, "tags": ["a", "b", "c"]},
        {"ts": "t2", "geo": None, "tags": []},
        {"ts": "t3", "tags": ["only"]},
    )
    rows, _, _ = read_all(InlineInputSource(data=data), fmt)
    assert [(r["timestamp"], r["city"], r["first_tag"], r["last_tag"], r["deep"], r["country"], r["missing"]) for r in rows] == [
        ("t1", "Delft", "a", "c", 2.5, "NL", None),
        ("t2", None, None, None, None, None, None),
        ("t3", None, "only", "only", None, None, None),
    ]
    assert "geo" in rows[0] and "ts" in rows[0]  # discovered top-level fields kept


def test_flatten_spec_without_discovery_gives_only_the_fields():
    fmt = JsonInputFormat(flatten_spec={"useFieldDiscovery": False, "fields": [{"type": "path", "name": "c", "expr": "$.g.c"}]})
    rows, _, _ = read_all(InlineInputSource(data=lines({"a": 1, "g": {"c": "x"}})), fmt)
    assert rows == [{"c": "x"}]


def test_column_types_apply_after_flattening():
    fmt = JsonInputFormat(flatten_spec={"fields": [{"type": "path", "name": "city", "expr": "$.g.c"}]})
    dict_type = pa.dictionary(pa.int32(), pa.string())
    _, _, batches = read_all(
        InlineInputSource(data=lines({"g": {"c": "x"}, "n": 5}, {"g": {"c": 7}, "n": 6})),
        fmt,
        column_types={"city": dict_type, "n": dict_type},
    )
    table = table_of(batches)
    assert table.schema.field("city").type == dict_type
    assert table.column("city").to_pylist() == ["x", "7"] and table.column("n").to_pylist() == ["5", "6"]


def test_keep_null_columns_is_exposed():
    assert open_input(InlineInputSource(data="{}"), JsonInputFormat(keep_null_columns=True)).keep_null_columns
    assert not open_input(InlineInputSource(data="{}"), JsonInputFormat()).keep_null_columns
    assert open_input(InlineInputSource(data="{}"), JsonInputFormat()).list_delimiter is None


def test_a_line_longer_than_the_block():
    big = {"k": "x" * 5000}
    rows, _, _ = read_all(InlineInputSource(data=lines({"k": "a"}, big, {"k": "b"})), JsonInputFormat(), block_size=100)
    assert [len(r["k"]) for r in rows] == [1, 5000, 1]


def test_last_line_without_newline_and_bytes_add_up(tmp_path):
    path = tmp_path / "x.json"
    content = lines(*[{"i": i} for i in range(100)]) + '{"i": 100}'
    path.write_text(content)
    rows, _, batches = read_all(LocalInputSource(files=[str(path)]), JsonInputFormat(), block_size=97, batch_rows=7)
    assert [r["i"] for r in rows] == list(range(101))
    assert max(b.num_rows for b in batches) <= 7
    assert sum(b.bytes_read for b in batches) == len(content)


@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_batch_rows(batch_rows):
    data = lines(*[{"i": i} for i in range(10)])
    _, _, batches = read_all(InlineInputSource(data=data), JsonInputFormat(), batch_rows=batch_rows)
    assert all(b.num_rows <= batch_rows for b in batches) and sum(b.num_rows for b in batches) == 10
