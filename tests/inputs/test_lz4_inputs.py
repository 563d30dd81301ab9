"""``.lz4`` input files (LZ4 frames, as the ``lz4`` tool and Druid write them) in every input format, and compressed
Parquet files, read through the real reader from real files."""

from __future__ import annotations

import gzip
import json

import lz4.frame
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import InputError
from tests.inputs.helpers import read_all

ROWS = [{"ts": f"2024-01-01T00:{i % 60:02d}:00Z", "page": f"p{i % 7}", "n": i} for i in range(500)]
FORMATS = {
    "json": {"type": "json"},
    "csv": {"type": "csv", "findColumnsFromHeader": True},
    "tsv": {"type": "tsv", "findColumnsFromHeader": True},
    "parquet": {"type": "parquet"},
}


def _plain(fmt: str, tmp_path) -> bytes:
    if fmt == "json":
        return "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        return (sep.join(ROWS[0]) + "\n" + "".join(sep.join(str(v) for v in r.values()) + "\n" for r in ROWS)).encode()
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    return path.read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_lz4_files_are_read_in_every_format(fmt, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    stored = lz4.frame.compress(_plain(fmt, tmp_path))
    (data / f"part.{fmt}.lz4").write_bytes(stored)
    rows, failures, batches = read_all({"type": "local", "baseDir": str(data), "filter": "*.lz4"}, FORMATS[fmt])
    assert not failures and len(rows) == len(ROWS)
    assert [str(r["n"]) for r in rows] == [str(r["n"]) for r in ROWS] and rows[3]["page"] == "p3"
    # processedBytes counts the uncompressed bytes, as Druid's BytesCountingInputEntity over its decompressing open()
    assert sum(b.bytes_read for b in batches) == len(_plain(fmt, tmp_path)) != len(stored)


def test_frames_as_the_lz4_tool_writes_them_and_concatenated_frames_are_read(tmp_path):
    plain = _plain("json", tmp_path)
    half = len(plain) // 2 + plain[len(plain) // 2 :].index(b"\n") + 1
    # lz4's defaults: 4 MB independent blocks with a content checksum; `cat a.lz4 b.lz4` gives two frames.
    frames = [
        lz4.frame.compress(part, block_size=lz4.frame.BLOCKSIZE_MAX4MB, block_linked=False, content_checksum=True)
        for part in (plain[:half], plain[half:])
    ]
    (tmp_path / "events.json.lz4").write_bytes(b"".join(frames))
    rows, _, _ = read_all({"type": "local", "baseDir": str(tmp_path), "filter": "*.lz4"}, {"type": "json"})
    assert len(rows) == len(ROWS)


def test_a_gzipped_parquet_file_is_read(tmp_path):
    (tmp_path / "part.parquet.gz").write_bytes(gzip.compress(_plain("parquet", tmp_path)))
    rows, _, _ = read_all({"type": "local", "baseDir": str(tmp_path), "filter": "*.gz"}, {"type": "parquet"})
    assert len(rows) == len(ROWS)


def test_a_file_that_is_not_lz4_is_an_input_error_naming_it(tmp_path):
    (tmp_path / "broken.json.lz4").write_bytes(b"this is not an lz4 frame")
    with pytest.raises(InputError, match=r"broken\.json\.lz4 is not a valid LZ4 frame file"):
        read_all({"type": "local", "baseDir": str(tmp_path), "filter": "*.lz4"}, {"type": "json"})


def test_a_filter_matching_no_file_is_an_error_naming_base_dir_and_filter(tmp_path):
    (tmp_path / "events.json").write_text("{}\n")
    with pytest.raises(InputError, match=rf"no file under baseDir {tmp_path} matches filter '\*\.csv'"):
        read_all({"type": "local", "baseDir": str(tmp_path), "filter": "*.csv"}, {"type": "json"})
