"""Seeded generators of hostile input for the fuzz tests: broken rows per input format, mutated task specs.

Everything is drawn from a ``random.Random`` the caller seeds, so a failure reproduces from its seed.
"""

from __future__ import annotations

import copy
import io
import json
import random
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

GOOD_TS = "2024-01-01T01:00:00Z"
DAY = "2024-01-01/2024-01-02"

# ---------------------------------------------------------------------------------------------- row pieces


def _text(rng: random.Random) -> str:
    return rng.choice(
        [
            "a",
            "",
            " ",
            "x" * rng.randint(1, 5000),
            "ünï\u00e9",
            "\u0000nul",
            "tab\tin",
            "\x1f\x1e",  # the engine's own multi-value markers
            "emoji \U0001f600",
            "quote\"d",
            "comma,here",
            "pipe|sep",
            "\u2028line sep",
        ]
    )


def _number(rng: random.Random) -> Any:
    return rng.choice(
        [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308, "NaN", "Infinity", "-Infinity"]
    )


def _bad_ts(rng: random.Random) -> Any:
    return rng.choice(["", "not a time", "2024-13-01T00:00:00Z", "2024-01-01T25:61:00Z", "1e30", None, 9e18, -1, "2023-12-31T23:59:59Z", "2024-01-02T00:00:00Z", True, [], {}])


# ----------------------------------------------------------------------------------------------- JSON lines


def json_row(rng: random.Random, row_id: int) -> bytes:
    """One line of JSON (no newline): good, odd-but-valid or broken."""
    good = {"ts": GOOD_TS, "id": str(row_id), "d": "a", "v": 1}
    kind = rng.randrange(24)
    if kind < 6:
        return json.dumps(good).encode()
    if kind == 6:
        return b'{"ts":"%s","id":"%d","d":"\\ud800","v":1}' % (GOOD_TS.encode(), row_id)
    if kind == 7:
        depth = rng.randint(900, 6000)
        return b'{"ts":"%s","id":"%d","d":%s%s,"v":1}' % (GOOD_TS.encode(), row_id, b"[" * depth, b"]" * depth)
    if kind == 8:
        return json.dumps(good).encode() + rng.choice([b" ", b"", b"\t"]) + json.dumps(good).encode()
    if kind == 9:
        raw = json.dumps(good).encode()
        return raw[: rng.randint(1, len(raw) - 1)]  # truncated
    if kind == 10:
        return rng.choice([b"[1,2]", b"42", b'"text"', b"null", b"true", b"{", b"}", b"{]", b"\xff\xfe{}", b'{"a":1,}'])
    if kind == 11:
        return json.dumps({**good, "v": _number(rng)}).encode()
    if kind == 12:
        return json.dumps({**good, "ts": _bad_ts(rng)}).encode()
    if kind == 13:
        return json.dumps({**good, "d": rng.choice([["x", None, "y"], [], [None], [1, "a"], {"k": [1]}, [[1]], None, 5, True])}).encode()
    if kind == 14:
        return json.dumps({**good, "d": _text(rng)}, ensure_ascii=rng.random() < 0.5).encode()
    if kind == 15:
        return b'{"ts":"%s","id":"%d","d":"a","v":1,"v":2}' % (GOOD_TS.encode(), row_id)  # duplicate key
    if kind == 16:
        return json.dumps({"id": str(row_id), "d": "a"}).encode()  # no timestamp
    if kind == 17:
        return json.dumps({**good, "v": rng.choice(["12", " 7 ", "abc", "1.5", "", "1e3", [1], {"x": 1}, False])}).encode()
    if kind == 18:
        raw = bytearray(json.dumps(good).encode())
        raw[rng.randrange(len(raw))] = rng.choice([0x80, 0xC3, 0xFF, 0xED])
        return bytes(raw)
    if kind == 19:
        return json.dumps({**good, "extra": {"deep": [{"x": _number(rng)}]}, "x": rng.choice([1, "1", 1.5, None, [1]])}).encode()
    if kind == 20:
        return json.dumps({**good, "__chunk": "x", "__bucket": 3, "__time": "junk"}).encode()
    if kind == 21:
        return b"\xef\xbb\xbf" + json.dumps(good).encode()  # a BOM inside the file
    if kind == 22:
        return json.dumps({**good, "ts": rng.choice([1704070800000, "1704070800000", 1704070800000.5])}).encode()
    return b'{"ts":"%s","id":"%d","d":"a","v":1} // trailing' % (GOOD_TS.encode(), row_id)


# ----------------------------------------------------------------------------------------------- CSV and TSV


def delimited_row(rng: random.Random, row_id: int, sep: str) -> bytes:
    """One physical line of CSV (``sep`` ",") or TSV (``sep`` "\\t"), without its newline; columns ts,id,d,v."""
    fields = [GOOD_TS, str(row_id), "a", "1"]
    kind = rng.randrange(16)
    if kind < 5:
        pass
    elif kind == 5:
        fields[2] = '"abc'  # unbalanced quote
    elif kind == 6:
        fields[2] = rng.choice(['"a""b"', '"x,y"', '""', '"q"uote', 'in"side'])
    elif kind == 7:
        return sep.join(fields).encode() + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"])
    elif kind == 8:
        fields.append("extra")
    elif kind == 9:
        fields = fields[:2]
    elif kind == 10:
        fields[3] = str(rng.choice(["9223372036854775808", "-9223372036854775809", "abc", "1.5", "", " 3 ", "1e400", "NaN"]))
    elif kind == 11:
        fields[0] = str(rng.choice(["", "garbage", "2024-02-30T00:00:00Z", "1704070800000", "2023-01-01T00:00:00Z"]))
    elif kind == 12:
        fields[2] = rng.choice(["x|y", "k||j", "|", "a|b|a"])
    elif kind == 13:
        fields[2] = _text(rng).replace("\n", "").replace("\r", "")
    elif kind == 14:
        return sep.encode() * rng.randint(0, 6) or b" "
    else:
        fields[2] = "\x01".join(["m", "n"])  # Druid's default list delimiter
    return sep.join(fields).encode()


# ----------------------------------------------------------------------------------------------- Parquet


def parquet_file(rng: random.Random, first_id: int, rows: int) -> bytes:
    """A Parquet file of ``rows`` rows with one randomly chosen odd column type or value mix."""
    ids = [str(first_id + i) for i in range(rows)]
    ts: Any = pa.array([GOOD_TS] * rows)
    d: Any = pa.array(["a"] * rows)
    v: Any = pa.array([1] * rows, pa.int64())
    kind = rng.randrange(9)
    if kind == 0:
        v = pa.array([rng.choice([0, 2**64 - 1, 2**63, 5]) for _ in range(rows)], pa.uint64())
    elif kind == 1:
        v = pa.array([rng.choice([1.5, float("nan"), float("inf"), 1e30, None]) for _ in range(rows)], pa.float64())
    elif kind == 2:
        v = pa.array([rng.choice(["1", "x", "", None, "9223372036854775808"]) for _ in range(rows)])
    elif kind == 3:
        d = pa.array([rng.choice([["x", None], [], None, ["b", "a", "b"]]) for _ in range(rows)], pa.list_(pa.string()))
    elif kind == 4:
        d = pa.array([rng.choice([b"\xff\xfe", b"ok", None]) for _ in range(rows)], pa.binary())
    elif kind == 5:
        d = pa.array([{"k": rng.choice([1, None])} for _ in range(rows)], pa.struct([("k", pa.int64())]))
    elif kind == 6:
        ts = pa.array([rng.choice([1704070800000, -(2**62), 2**62, 0, None]) for _ in range(rows)], pa.int64())
    elif kind == 7:
        ts = pa.array([rng.choice([GOOD_TS, "junk", None, "2025-01-01T00:00:00Z"]) for _ in range(rows)])
    else:
        d = pa.array([rng.choice([[1, 2], [None], []]) for _ in range(rows)], pa.list_(pa.int64()))
    buf = io.BytesIO()
    pq.write_table(pa.table({"ts": ts, "id": ids, "d": d, "v": v}), buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- specs


HOSTILE_VALUES: list[Callable[[random.Random], Any]] = [
    lambda r: None,
    lambda r: r.choice([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e30, -1e30, 1.5, float("nan")]),
    lambda r: r.choice(["", " ", "\x00", "a/b", "a\\b", ".x", "__chunk", "__time", "__bucket", "intermediate_pushes", "x" * 300]),
    lambda r: r.choice([True, False]),
    lambda r: r.choice([[], [None], [1, "a"], {}, {"type": "nope"}, {"type": None}]),
    lambda r: r.choice(["DAY", "FORTNIGHT", "P1D", "PT0S", "-P1D", "2024-01-01/2023-01-01", "-292275056-01-01/2020", "1000/P1000000000Y"]),
    lambda r: _nest(r.randint(50, 400)),
    lambda r: r.choice(["(" * 300 + "v" + ")" * 300, " + ".join(["v"] * r.randint(1, 3000)), "v +", "\"unterminated", "abs(", "foo(v)"]),
]


def _nest(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, prefix + (i,)))
    return out


def mutate(rng: random.Random, spec: dict, mutations: int) -> dict:
    """``spec`` with ``mutations`` random edits: a value replaced, a key removed, or an unknown key added."""
    spec = copy.deepcopy(spec)
    for _ in range(mutations):
        paths = [p for p in _paths(spec) if p]
        path = rng.choice(paths)
        parent = spec
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = rng.random()
        if action < 0.7:
            parent[last] = rng.choice(HOSTILE_VALUES)(rng)
        elif action < 0.85 and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent, dict):
            parent[rng.choice(["surprise", "maxRowsPerSegment", "numShards", "priority", "dropExisting", "listDelimiter"])] = rng.choice(HOSTILE_VALUES)(rng)
        if not isinstance(spec, dict):
            break
    return spec
