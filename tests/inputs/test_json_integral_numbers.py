"""JSON numbers keep their kind (Jackson: ``1`` a long, ``1.0`` a double) through a column pyarrow reads as doubles."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.json as pj

from druidflow.inputs import open_input
from druidflow.inputs.json_numbers import companion_name, integer_literals, integral_text, with_companions

LINES = [
    '{"a":1,"b":"x"}',
    '{"a":2.5, "o":{"a":3}}',  # the nested "a" is not the root one: decided by Python's json
    '{"a" : 3}',
    '{"a":1e5}',  # an exponent makes a double in Jackson
    '{"a":2.50}',
    '{"a":-0}',  # an integer: Long 0
    '{"a":-0.0}',
    '{"s":"\\"a\\":1","a":4.0}',  # "a":1 inside a string is no key
    '{"a":null}',
    '{"o":{"a":3},"a":7}',
    '{"\\u0061":8}',  # the key written with an escape: decided by Python's json
    '{"a":12345678901234567890}',  # beyond a long: Jackson's BigInteger, a double in Druid
    '{"b":"no a at all"}',
]


def python_kind(line: str) -> bool:
    value = json.loads(line).get("a")
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def test_integer_literals_agree_with_pythons_json_on_awkward_lines():
    data = ("\n".join(LINES) + "\n").encode()
    table = with_companions(pj.read_json(pa.py_buffer(data)), data)
    assert table.column(companion_name("a")).to_pylist() == [python_kind(line) for line in LINES]
    assert integer_literals(pa.array(LINES), "a").tolist()[:4] == [True, False, True, False]


def test_blank_lines_do_not_shift_the_rows():
    data = b'{"a":1}\n\n   \n{"a":2.0}\n{"a":3}\n'
    table = with_companions(pj.read_json(pa.py_buffer(data)), data)
    assert table.column(companion_name("a")).to_pylist() == [True, False, True]


def test_text_is_string_value_of_the_number_druid_read():
    values = pa.array([1.0, 2.5, 3.0, 1e7, 1e7, None, -0.0])
    integral = pa.array([True, False, False, True, False, False, True])
    assert integral_text(values, integral).to_pylist() == ["1", "2.5", "3.0", "10000000", "1.0E7", None, "0"]


def test_reader_hands_out_the_kinds_and_strings_as_druid_holds_them(tmp_path):
    # More than one read block (1 MiB): the first block all integers (int64 in pyarrow), the last mixed (double).
    # The mixed block makes the column double for good: the integer block after it is widened and stays integers.
    many = [{"t": 0, "n": i} for i in range(60_000)]
    rows = many + [{"t": 3, "n": 2.5}, {"t": 4, "n": 3}, {"t": 5, "n": 3.0}, {"t": 6, "n": 1e7}] + many
    path = tmp_path / "in.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "*.json"}
    dictionary = pa.dictionary(pa.int32(), pa.string())
    as_text = [
        v for b in open_input(source, {"type": "json"}, batch_rows=1000, column_types={"n": dictionary}).batches() for v in b.data.column("n").to_pylist()
    ]
    expected = [str(i) for i in range(60_000)] + ["2.5", "3", "3.0", "1.0E7"] + [str(i) for i in range(60_000)]
    assert as_text == expected
    numbers, types = [], set()
    for b in open_input(source, {"type": "json"}, batch_rows=1000).batches():  # 1 MiB blocks
        types.add((b.data.schema.field("n").type, "n" in b.integral_numbers))
        column = b.data.column("n")
        text = integral_text(column, b.integral_numbers["n"]) if "n" in b.integral_numbers else column.cast(pa.string())
        numbers += text.to_pylist()
    assert numbers == expected
    assert types == {(pa.int64(), False), (pa.float64(), True)}  # integers, then doubles (some widened integers)
    assert not any(name.startswith("\x00") for b in open_input(source, {"type": "json"}).batches() for name in b.data.schema.names)


def test_only_the_fields_that_may_become_text_are_looked_at(tmp_path):
    (tmp_path / "in.json").write_text('{"n":1,"m":1}\n{"n":2.5,"m":2.5}\n')
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "*.json"}
    (batch,) = open_input(source, {"type": "json"}, text_fields=["m"]).batches()
    assert set(batch.integral_numbers) == {"m"} and batch.integral_numbers["m"].to_pylist() == [True, False]
    (batch,) = open_input(source, {"type": "json"}, text_fields=[]).batches()
    assert batch.integral_numbers == {}


def test_rows_parsed_by_python_keep_the_kinds_too(tmp_path):
    # A row whose list mixes kinds is parsed by Python's json (int and float kept apart there).
    lines = ['{"d":1,"x":[1]}', '{"d":2.5,"x":[2]}', '{"d":3,"x":[1,"a"]}', '{"d":4.0,"x":[3]}', "{broken", '{"d":5,"x":[4]}']
    (tmp_path / "in.json").write_text("\n".join(lines) + "\n")
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "*.json"}
    dictionary = pa.dictionary(pa.int32(), pa.string())
    batches = list(open_input(source, {"type": "json"}, column_types={"d": dictionary}).batches())
    assert [v for b in batches for v in b.data.column("d").to_pylist()] == ["1", "2.5", "3", "4.0", "5"]
    assert sum(len(b.unparseable) for b in batches) == 1


def test_a_table_built_from_python_objects_keeps_the_kinds():
    from druidflow.inputs.json_lines import JsonLinesParser

    table = JsonLinesParser(None)._from_python([{"d": 1}, {"d": 2.5}, {"d": 3.0}, {"d": None}, {"d": -4, "e": 1}])
    assert table.column(companion_name("d")).to_pylist() == [True, False, False, False, True]
    assert companion_name("e") not in table.column_names  # an integer column needs none


def test_arrays_of_numbers_keep_each_elements_kind(tmp_path):
    lines = ['{"m":[1, 2.0, 3.5]}', '{"m":null}', '{"m":[]}', '{"m":[4,null,5e1]}', '{"o":{"m":[1]},"m":[6, 7.0]}', '{"m":[8]}']
    (tmp_path / "in.json").write_text("\n".join(lines) + "\n")
    source = {"type": "local", "baseDir": str(tmp_path), "filter": "*.json"}
    (batch,) = open_input(source, {"type": "json"}, column_types={"m": pa.dictionary(pa.int32(), pa.string())}).batches()
    assert batch.data.column("m").to_pylist() == [["1", "2.0", "3.5"], None, [], ["4", None, "50.0"], ["6", "7.0"], ["8"]]
    (batch,) = open_input(source, {"type": "json"}).batches()
    assert batch.integral_numbers["m"].to_pylist() == [[True, False, False], [], [], [True, False, False], [True, False], [True]]
