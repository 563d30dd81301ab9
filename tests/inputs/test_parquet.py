"""Parquet input: batches, binaryAsString, flattenSpec over structs, column types, bad files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import InputError
from druidflow.specs.io import LocalInputSource, ParquetInputFormat

from .helpers import read_all, table_of


@pytest.fixture
def parquet_file(tmp_path):
    path = tmp_path / "events.parquet"
    table = pa.table(
        {
            "ts": pa.array([1_700_000_000_000 + i for i in range(1000)], pa.timestamp("ms")),
            "page": [f"p{i % 10}" for i in range(1000)],
            "raw": pa.array([f"b{i}".encode() for i in range(1000)], pa.binary()),
            "geo": pa.array([{"city": f"c{i % 3}", "pos": [i, i + 1]} for i in range(1000)]),
            "added": pa.array(range(1000), pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=300)
    return path


def test_batches_are_bounded_and_complete(parquet_file):
    rows, failures, batches = read_all(LocalInputSource(files=[str(parquet_file)]), ParquetInputFormat(), batch_rows=128)
    assert len(rows) == 1000 and failures == []
    assert max(b.num_rows for b in batches) <= 128
    assert sum(b.bytes_read for b in batches) == parquet_file.stat().st_size
    schema = batches[0].data.schema
    assert schema.field("ts").type == pa.timestamp("ms") and schema.field("raw").type == pa.binary()


def test_binary_as_string(parquet_file):
    _, _, batches = read_all(LocalInputSource(files=[str(parquet_file)]), ParquetInputFormat(binary_as_string=True))
    table = table_of(batches)
    assert table.schema.field("raw").type == pa.string() and table.column("raw")[5].as_py() == "b5"


def test_flatten_spec_over_parquet_structs(parquet_file):
    fmt = ParquetInputFormat(
        flatten_spec={"useFieldDiscovery": False, "fields": [
            {"type": "root", "name": "page"},
            {"type": "path", "name": "city", "expr": "$.geo.city"},
            {"type": "path", "name": "y", "expr": "$.geo.pos[1]"},
        ]}
    )
    rows, _, _ = read_all(LocalInputSource(files=[str(parquet_file)]), fmt)
    assert rows[4] == {"page": "p4", "city": "c1", "y": 5}


def test_column_types(parquet_file):
    dict_type = pa.dictionary(pa.int32(), pa.string())
    _, _, batches = read_all(
        LocalInputSource(files=[str(parquet_file)]), ParquetInputFormat(), column_types={"page": dict_type, "added": pa.float64()}
    )
    table = table_of(batches)
    assert table.schema.field("page").type == dict_type and table.schema.field("added").type == pa.float64()


def test_schema_drift_between_files_is_unified(tmp_path):
    pq.write_table(pa.table({"v": pa.array([1, 2], pa.int32())}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"v": [1.5], "w": ["x"]}), tmp_path / "b.parquet")
    pq.write_table(pa.table({"v": ["text"]}), tmp_path / "c.parquet")
    rows, _, batches = read_all(LocalInputSource(base_dir=str(tmp_path), filter="*.parquet"), ParquetInputFormat())
    assert [b.data.schema.field("v").type for b in batches] == [pa.int32(), pa.float64(), pa.string()]
    assert rows[-1] == {"v": "text", "w": None}


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match="fake.parquet"):
        read_all(LocalInputSource(files=[str(path)]), ParquetInputFormat())
