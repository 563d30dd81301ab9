"""Hostile CSV/TSV files: bytes that are not UTF-8 (with a wrong field count too), NUL bytes, BOM, CRLF, long lines,
empty and header-only files, truncated compressed files. Each is read as Druid does (the bad line unparseable,
counted, the read goes on) or refused with an InputError naming the file, never a traceback."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import lz4.frame
import pytest

from druidflow.exceptions import InputError
from druidflow.inputs import delimited
from druidflow.inputs.delimited import scan_text
from druidflow.specs.io import CsvInputFormat, LocalInputSource, TsvInputFormat

from .helpers import read_all

ROOT = Path(__file__).resolve().parents[2]
COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".lz4": lz4.frame.compress}


def _write(path: Path, body: bytes, suffix: str) -> Path:
    target = path.with_name(path.name + suffix)
    target.write_bytes(COMPRESS[suffix](body))
    return target


@pytest.mark.parametrize("suffix", ["", ".gz", ".lz4"])  # "": read natively by Arrow unless the scan finds bad bytes
@pytest.mark.parametrize("tsv", [False, True])
@pytest.mark.parametrize("quoted", [False, True])
@pytest.mark.parametrize("header, skip", [(False, 0), (True, 0), (True, 1), (False, 2)])
def test_invalid_utf8_with_a_wrong_field_count_is_one_unparseable_line(tmp_path, suffix, tsv, quoted, header, skip):
    sep = b"\t" if tsv else b","
    rows = [b"1,ok", b"x,\xff\xfe,extra", b'"2",q' if quoted else b"2,q", b"3,\xc3\xa9", b"y,\xc3"]
    preamble = [b"# comment"] * skip + ([b"a,b"] if header else [])
    body = b"".join(line.replace(b",", sep) + b"\n" for line in preamble + rows)
    path = _write(tmp_path / ("f.tsv" if tsv else "f.csv"), body, suffix)
    fmt_cls = TsvInputFormat if tsv else CsvInputFormat
    fmt = fmt_cls(find_columns_from_header=True, skip_header_rows=skip) if header else fmt_cls(columns=["a", "b"], skip_header_rows=skip)

    rows_read, failures, _ = read_all(LocalInputSource(files=[str(path)]), fmt)

    two = '"2"' if quoted and tsv else "2"  # TSV has no quoting
    assert rows_read == [{"a": "1", "b": "ok"}, {"a": two, "b": "q"}, {"a": "3", "b": "é"}]
    first = len(preamble) + 1
    assert [(f.line, f.source) for f in failures] == [(first + 1, str(path)), (first + 4, str(path))]
    assert all("not valid UTF-8" in f.message for f in failures)
    assert "\ufffd" in failures[0].raw and "extra" in failures[0].raw


def test_many_bad_lines_in_one_block_each_count_once(tmp_path):
    good = b"".join(b"%d,v%d\n" % (i, i) for i in range(2000))
    bad = b"".join(b"%d,\xff,%d\n" % (i, i) for i in range(300))
    path = tmp_path / "m.csv"
    path.write_bytes(good + bad + good)
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(columns=["n", "v"]), block_size=1 << 14)
    assert len(rows) == 4000 and len(failures) == 300
    assert [f.line for f in failures] == list(range(2001, 2301))


def test_scan_sees_a_character_cut_by_its_block_boundary_as_valid(tmp_path, monkeypatch):
    monkeypatch.setattr(delimited, "_QUOTE_SCAN_BLOCK", 16)
    path = tmp_path / "u.csv"
    for pad in range(16):  # the 4-byte character lands on every position relative to the 16-byte blocks
        path.write_bytes(b"x" * pad + "a,\U0001f600é\n".encode() * 5)
        assert scan_text(path) == (False, True), pad
    path.write_bytes(b"a" * 15 + b"\xf0\x9f\x98")  # a character cut off at the end of the file
    assert scan_text(path).utf8 is False
    path.write_bytes(b"a" * 16 + b"\x80" + b'"')  # a stray continuation byte at a block's start
    assert scan_text(path) == (True, False)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_nul_bytes_bom_and_crlf(tmp_path, suffix):
    body = b"\xef\xbb\xbfts,d\r\n1,a\x00b\r\n2,c\r\n"
    path = _write(tmp_path / "n.csv", body, suffix)
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(find_columns_from_header=True))
    assert rows == [{"ts": "1", "d": "a\x00b"}, {"ts": "2", "d": "c"}] and failures == []


@pytest.mark.parametrize("suffix", ["", ".gz", ".lz4"])
def test_a_line_longer_than_the_block_is_read_whole(tmp_path, suffix):
    long_value = "é" * 300_000
    body = f"1,a\n2,{long_value}\n3,\xff\n4,c\n".encode("utf-8", errors="surrogateescape").replace("\xff".encode(), b"\xff")
    path = _write(tmp_path / "l.csv", body, suffix)
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(columns=["n", "v"]), block_size=1 << 16)
    assert [r["n"] for r in rows] == ["1", "2", "4"] and rows[1]["v"] == long_value
    assert [f.line for f in failures] == [3]


@pytest.mark.parametrize("suffix", ["", ".gz", ".lz4"])
@pytest.mark.parametrize("body", [b"", b"a,b\n", b"a,b", b"\xef\xbb\xbfa,b\r\n"])
def test_empty_and_header_only_files_give_no_rows(tmp_path, suffix, body):
    path = _write(tmp_path / "e.csv", body, suffix)
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(find_columns_from_header=True))
    assert rows == [] and failures == []


def test_a_blank_header_line_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_bytes(b"\n1,2\n")
    with pytest.raises(InputError, match=f"{path}: the header row names no columns"):
        read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(find_columns_from_header=True))


@pytest.mark.parametrize("suffix", [".gz", ".lz4"])
def test_a_truncated_compressed_file_is_an_input_error_naming_it(tmp_path, suffix):
    body = b"".join(b"%d,v%d\n" % (i, i) for i in range(50_000))
    data = COMPRESS[suffix](body)
    path = tmp_path / f"t.csv{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=str(path)):
        read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(columns=["n", "v"]))


def test_druidflow_run_counts_the_line_and_publishes_the_rest(tmp_path, sqlite_url):
    (tmp_path / "in").mkdir()
    body = b'ts,page,added\n2024-01-01T00:00:00Z,a,1\n2024-01-01T01:00:00Z,\xff\xfe,2,extra\n2024-01-01T02:00:00Z,"b",3\n'
    (tmp_path / "in" / "bad.csv").write_bytes(body)
    (tmp_path / "in" / "bad.csv.gz").write_bytes(gzip.compress(body))
    spec = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "hostile",
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["page"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "added", "fieldName": "added"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": True},
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "local", "baseDir": str(tmp_path / "in"), "filter": "bad.csv*"},
                "inputFormat": {"type": "csv", "findColumnsFromHeader": True},
            },
            "tuningConfig": {"type": "index", "maxParseExceptions": 2},
        },
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUIDFLOW_")}
    env.update(DRUIDFLOW_METADATA_URL=sqlite_url, DRUIDFLOW_DEEP_STORAGE=str(tmp_path / "deep"), DRUIDFLOW_WORK_DIR=str(tmp_path / "work"))
    out = subprocess.run(
        [sys.executable, "-m", "druidflow.cli", "run", str(tmp_path / "spec.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr
    stats = json.loads(out.stdout[out.stdout.index("{") :])
    build = _find(stats, "buildSegments")
    assert build["processed"] == 4 and build["unparseable"] == 2, build


def _find(obj: object, key: str) -> dict:
    """The first dict under ``key`` holding row stats, anywhere in a report."""
    if isinstance(obj, dict):
        if isinstance(obj.get(key), dict) and "processed" in obj[key]:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found:
                return found
    if isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found:
                return found
    return {}


def test_a_valid_line_longer_than_the_block_in_a_plain_file_is_read_whole(tmp_path):
    # Valid UTF-8 and uncompressed: Arrow reads it natively (falling back to the guard if its block is too small).
    path = tmp_path / "long.csv"
    path.write_text("h1,h2\n1,a\n2," + "é" * 300_000 + '\n3,"q"\n', encoding="utf-8")
    rows, failures, batches = read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(find_columns_from_header=True), block_size=1 << 16)
    assert [r["h1"] for r in rows] == ["1", "2", "3"] and rows[1]["h2"] == "é" * 300_000 and failures == []
    assert sum(b.bytes_read for b in batches) == path.stat().st_size


def test_a_header_name_past_the_csv_field_limit_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("h1," + "x" * 200_000 + "\n1,a\n")
    with pytest.raises(InputError, match=f"{path}: the header row cannot be read"):
        read_all(LocalInputSource(files=[str(path)]), CsvInputFormat(find_columns_from_header=True))
