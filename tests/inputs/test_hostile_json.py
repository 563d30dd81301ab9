"""Hostile JSON lines: bare ``null`` lines and nesting tens of thousands deep (both crash pyarrow's reader, so they
must never reach it), lines that are numbers or arrays, NUL bytes, BOM, CRLF, empty files, truncated compressed
files. Each is one unparseable row with its line number, or an InputError naming the file, never a crash."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import lz4.frame
import pytest

from druidflow.exceptions import InputError
from druidflow.inputs.json_lines import JsonLinesParser, screen_lines
from druidflow.specs.io import JsonInputFormat, LocalInputSource

from .helpers import read_all

GOOD = b'{"ts":"2024-01-01T00:00:00Z","d":"a","v":1}\n'
COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".lz4": lz4.frame.compress}


def _read_in_child(path: Path, block_size: int = 1 << 20) -> tuple[int, list[list]]:
    """Rows and (line, message) failures of ``path`` read in a child process, so that a crash fails this test
    instead of ending the test run."""
    code = (
        "import json, sys\n"
        "from tests.inputs.helpers import read_all\n"
        "from druidflow.specs.io import JsonInputFormat, LocalInputSource\n"
        f"rows, failures, _ = read_all(LocalInputSource(files=[sys.argv[1]]), JsonInputFormat(), block_size={block_size})\n"
        "print(json.dumps([len(rows), [[f.line, f.message] for f in failures]]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"the reader died (exit {out.returncode}): {out.stderr[-2000:]}"
    n, failures = json.loads(out.stdout)
    return n, failures


@pytest.mark.parametrize("suffix", ["", ".gz", ".lz4"])
@pytest.mark.parametrize("where", ["first", "middle", "indented"])
def test_a_bare_null_line_is_one_unparseable_row(tmp_path, suffix, where):
    null = b"  null \r\n" if where == "indented" else b"null\n"
    body = null + GOOD * 3 if where == "first" else GOOD + null + GOOD * 2
    path = tmp_path / f"n.json{suffix}"
    path.write_bytes(COMPRESS[suffix](body))
    n, failures = _read_in_child(path)
    assert n == 3
    assert failures == [[1 if where == "first" else 2, "expected a JSON object, found null"]]


def test_null_lines_where_pyarrow_starts_its_own_blocks(tmp_path):
    line = b'{"ts":"2024-01-01T00:00:00Z","d":"aaaaaaaaaaaaaaaaaaaaa","v":1}\n'
    assert len(line) == 64
    lines = [line] * 40_000
    for k in range(16_380, 16_390):  # pyarrow's 1 MiB blocks start at line 16,384 here
        lines[k] = b"null" + b" " * 59 + b"\n"
    path = tmp_path / "blocks.json"
    path.write_bytes(b"".join(lines))
    n, failures = _read_in_child(path, block_size=8 << 20)
    assert n == 40_000 - 10
    assert [f[0] for f in failures] == list(range(16_381, 16_391))


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "deep",
    [
        b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"[" * 200_000,  # never closed
        b'{"a":' * 1_001 + b"1" + b"}" * 1_001,  # just past Jackson's limit
    ],
)
def test_nesting_deeper_than_jacksons_limit_is_one_unparseable_row(tmp_path, suffix, deep):
    path = tmp_path / f"d.json{suffix}"
    path.write_bytes(COMPRESS[suffix](GOOD + deep + b"\n" + GOOD))
    n, failures = _read_in_child(path)
    assert n == 2 and failures == [[2, "invalid JSON: nested deeper than 1000 levels"]]


def test_deep_but_allowed_nesting_and_long_flat_arrays_are_kept(tmp_path):
    deep_ok = b'{"ts":"x","a":' + b'{"b":' * 998 + b"1" + b"}" * 998 + b"}\n"
    many = b'{"ts":"y","l":[' + b",".join(b"[%d]" % i for i in range(3000)) + b"]}\n"
    path = tmp_path / "ok.json"
    path.write_bytes(GOOD + deep_ok + many)
    data = path.read_bytes()
    screened = screen_lines(data, "ok.json", 1)
    assert screened.block is data and screened.failures == [] and screened.nonblank == 3  # nothing taken out
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), JsonInputFormat())
    assert len(rows) == 3 and failures == []


@pytest.mark.parametrize("suffix", ["", ".gz", ".lz4"])
def test_lines_that_are_not_objects_nul_bytes_bom_and_crlf(tmp_path, suffix):
    body = (
        b"\xef\xbb\xbf"
        + GOOD.replace(b"\n", b"\r\n")
        + b"42\n[1,2]\n\"text\"\ntrue\n"
        + b'{"ts":"x","d":"a\x00b"}\n'  # a raw NUL inside a string: invalid JSON
        + b'{"ts":"x","d":"a\\u0000b"}\n'  # an escaped one: valid
        + GOOD
    )
    path = tmp_path / f"o.json{suffix}"
    path.write_bytes(COMPRESS[suffix](body))
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), JsonInputFormat())
    assert len(rows) == 3 and rows[1]["d"] == "a\x00b"
    assert [(f.line, f.message.split(":")[0]) for f in failures] == [
        (2, "expected a JSON object, found int"),
        (3, "expected a JSON object, found list"),
        (4, "expected a JSON object, found str"),
        (5, "expected a JSON object, found bool"),
        (6, "invalid JSON"),
    ]


@pytest.mark.parametrize("suffix", ["", ".gz", ".lz4"])
@pytest.mark.parametrize("body", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_empty_files_give_no_rows(tmp_path, suffix, body):
    path = tmp_path / f"e.json{suffix}"
    path.write_bytes(COMPRESS[suffix](body))
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), JsonInputFormat())
    assert rows == []
    # A byte-order mark alone is a line with no JSON value in it: one unparseable row, like any other.
    assert [(f.line, f.message.split(":")[0]) for f in failures] == ([(1, "invalid JSON")] if body.startswith(b"\xef") else [])


@pytest.mark.parametrize("suffix", [".gz", ".lz4"])
def test_a_truncated_compressed_file_is_an_input_error_naming_it(tmp_path, suffix):
    data = COMPRESS[suffix](GOOD * 100_000)
    path = tmp_path / f"t.json{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=f"could not read {path}"):
        read_all(LocalInputSource(files=[str(path)]), JsonInputFormat())


def test_a_line_longer_than_the_block_is_read_whole(tmp_path):
    long_line = b'{"ts":"z","d":"' + "é".encode() * 200_000 + b'"}\n'
    path = tmp_path / "l.json"
    path.write_bytes(GOOD + long_line + b"null\n" + GOOD)
    rows, failures, _ = read_all(LocalInputSource(files=[str(path)]), JsonInputFormat(), block_size=1 << 16)
    assert [r["ts"] for r in rows] == ["2024-01-01T00:00:00Z", "z", "2024-01-01T00:00:00Z"]
    assert [f.line for f in failures] == [3]


def test_parse_block_as_the_push_receiver_calls_it():
    tables, failures = JsonLinesParser().parse_block(b"null\n" + GOOD, "push", 1)
    assert sum(t.num_rows for t in tables) == 1 and [f.line for f in failures] == [1]


@pytest.mark.parametrize("blank", [b"\n", b"   \t  \r\n", b"null\n", b'{"a":' * 1_001 + b"1" + b"}" * 1_001 + b"\n"])
def test_two_objects_on_a_line_are_one_bad_line_even_when_a_blank_line_evens_the_count(blank):
    # pyarrow reads two rows from the doubled line and none from the blank (or blanked-out) one: as many rows as
    # lines, yet the doubled line is one unparseable line for Druid's line reader, and no row is read twice.
    doubled = b'{"id":"x","v":1} {"id":"x","v":2}\n'
    data = b'{"id":"a","v":0}\n' + blank + doubled + b'{"id":"b","v":3}\n'
    chunks = list(JsonLinesParser().read(__import__("io").BytesIO(data), "mem", 1 << 20))
    ids = [r["id"] for t, _, _ in chunks if t is not None for r in t.to_pylist()]
    failures = [f for _, fs, _ in chunks for f in fs]
    assert ids == ["a", "b"]
    assert [f.line for f in failures if "null" not in f.message and "nested" not in f.message] == [3]
