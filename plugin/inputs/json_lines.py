"""JSON lines, parsed by pyarrow a block at a time; a bad line costs its block a repair, not the file.

The stream is cut into blocks of whole lines, each parsed vectorised by ``pyarrow.json``. A block pyarrow
rejects is *repaired*: a single-block parse names the row of the first problem, the stretch before it is kept
(parsed vectorised), and parsing resumes after it. A broken line (invalid JSON, invalid UTF-8, or JSON that is
not an object) is reported as unparseable with its text and line number. A valid line whose field kind differs
from the rows before it (``1`` then ``"x"``) starts a new stretch with fresh type inference, and the stretches'
types are unified downstream. Only when that does not work out (a line mixing kinds inside itself, several
objects on one line, too many splits) does the rest of the block go through Python's ``json``, with
disagreeing fields as strings. So a file with a broken line every thousand rows is still parsed vectorised.

``NaN`` and ``Infinity`` are read as doubles (pyarrow accepts them; Jackson, by default, would not).

pyarrow infers timestamps from date-like strings; Druid keeps strings as written (the timestampSpec parses
them), so such fields are re-read with an explicit string type, remembered for the following blocks.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.types as pt

from druidflow.inputs.batch import ParseFailure, truncate_raw
from druidflow.inputs.json_numbers import companions_from_python, with_companions
from druidflow.inputs.schema import _json_text

Chunk = tuple[Optional[pa.Table], list[ParseFailure], Optional[int]]

_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
_ARROW_BLOCK = 1 << 20
_ERROR_ROW = re.compile(r" in row (\d+)\s*$")
_MAX_SPLITS = 1024  # beyond this many problems in one block, Python parses the rest of it
# Jackson's default StreamReadConstraints.maxNestingDepth: a row nested deeper is unparseable in Druid.
MAX_NESTING_DEPTH = 1000
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _is_time(t: pa.DataType) -> bool:
    return bool(pt.is_timestamp(t) or pt.is_date(t) or pt.is_time(t))


def _children(t: pa.DataType) -> list[pa.DataType]:
    if pt.is_struct(t):
        return [f.type for f in t]
    if pt.is_list(t) or pt.is_large_list(t):
        return [t.value_type]
    return []


def _has_timestamp(t: pa.DataType) -> bool:
    """Whether a type holds a timestamp, date or time anywhere (iteratively: a row may nest 1,000 levels deep)."""
    stack = [t]
    while stack:
        t = stack.pop()
        if _is_time(t):
            return True
        stack.extend(_children(t))
    return False


def _timestamps_as_strings(t: pa.DataType) -> pa.DataType:
    """``t`` with every timestamp, date or time in it a string (iteratively: children are converted onto a value
    stack before their parent takes them off)."""
    values: list[pa.DataType] = []
    stack: list[tuple[pa.DataType, bool]] = [(t, False)]
    while stack:
        node, seen = stack.pop()
        children = _children(node)
        if not seen and children:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(children))  # the first child is converted first
            continue
        if _is_time(node):
            values.append(pa.string())
        elif not children:
            values.append(node)
        else:
            converted, values = values[len(values) - len(children) :], values[: len(values) - len(children)]
            if pt.is_struct(node):
                values.append(pa.struct([pa.field(f.name, c) for f, c in zip(node, converted)]))
            else:
                values.append(pa.list_(converted[0]))
    return values[0]


class JsonLinesParser:
    """Parses blocks of JSON lines into Arrow tables; remembers which fields must stay strings."""

    def __init__(self, integral_fields: Optional[AbstractSet[str]] = frozenset()) -> None:
        self.hints: dict[str, pa.DataType] = {}
        # The double fields to add a companion column for, saying which rows were written as integers
        # (druidflow.inputs.json_numbers; None: every one); the reader takes them off again.
        self.integral_fields = integral_fields
        # Root fields seen holding a list with objects or lists in it: Arrow can only keep such a list as text
        # elements, and Druid's schemaless discovery skips it (JSONFlattenerMaker: not a flat list).
        self.non_flat_fields: set[str] = set()

    def _from_python(self, objs: list[dict[str, Any]]) -> pa.Table:
        for obj in objs:
            for name, value in obj.items():
                if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
                    self.non_flat_fields.add(name)
        table = _table_from_python(objs)
        return companions_from_python(objs, table, self.integral_fields)

    def read(self, stream: Any, uri: str, block_size: int) -> Iterator[Chunk]:
        """Tables (or None when a stretch held no good row) and the broken lines of one stream."""
        carry = b""
        line = 1
        while True:
            chunk = stream.read(block_size)
            if chunk:
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data  # a line longer than a block: keep reading until it ends
                    continue
                end = cut + 1
                block, carry = memoryview(data)[:end], data[end:]  # a view: no copy of the block
            else:
                if not carry:
                    return
                data, end = carry, len(carry)
                block, carry = memoryview(data), b""
            screened = screen_lines(block, uri, line)
            tables, failures = self._parse_screened(screened, uri, line)
            for i, table in enumerate(tables):
                yield table, failures if i == 0 else [], None
            if not tables and failures:
                yield None, failures, None
            line += screened.newlines
            if not chunk:
                return

    def parse_block(self, block: bytes | memoryview, uri: str, first_line: int) -> tuple[list[pa.Table], list[ParseFailure]]:
        """The tables of one block of whole lines (usually one), and its broken lines."""
        return self._parse_screened(screen_lines(block, uri, first_line), uri, first_line)

    def _parse_screened(self, screened: Screened, uri: str, first_line: int) -> tuple[list[pa.Table], list[ParseFailure]]:
        # Lines that would crash pyarrow's reader (a bare ``null``, nesting thousands deep) are already out.
        tables, failures = self._parse_block(screened.block, uri, first_line, screened.nonblank)
        if screened.failures:
            return tables, sorted(screened.failures + failures, key=lambda f: f.line or 0)
        return tables, failures

    def _parse_block(
        self, block: bytes | memoryview, uri: str, first_line: int, nonblank: int
    ) -> tuple[list[pa.Table], list[ParseFailure]]:
        # pyarrow's JSON parser passes invalid UTF-8 through into string columns; only valid text goes to it.
        if _is_valid_utf8(block):
            table = self._vectorised(block)
            if table is not None:
                # pyarrow skips blank lines; a line holding no object fails the parse: so one row per line exactly
                # when the rows are as many as the lines that are not blank.
                if table.num_rows == nonblank:
                    return [table], []
                # Several objects on one line: pyarrow reads them as rows, Druid's line reader as one bad line.
                tables, failures = self._by_lines(bytes(block), uri, first_line)
                return _merge_alike(tables), failures
        tables, failures = self._repair(bytes(block), uri, first_line)
        return _merge_alike(tables), failures

    def _repair(self, data: bytes, uri: str, first_line: int) -> tuple[list[pa.Table], list[ParseFailure]]:
        tables: list[pa.Table] = []
        failures: list[ParseFailure] = []
        lines = _LineIndex(data)
        cur = 0
        for _ in range(_MAX_SPLITS):
            if cur >= lines.count:
                return tables, failures
            piece = memoryview(data)[lines.starts[cur] :]
            if not _is_valid_utf8(piece):
                break
            row, message = _first_problem(piece)
            if row is None and message is None:  # the rest is clean
                table = self._vectorised(piece)
                if table is None or table.num_rows != lines.nonblank_between(cur, lines.count):
                    break
                tables.append(table)
                return tables, failures
            bad = lines.nth_nonblank(cur, row) if row is not None else None
            if bad is None:
                break
            raw = lines.text(bad)
            obj, error = _load_object(raw)
            kind_change = "changed from" in (message or "")
            if error is None and not kind_change:
                break  # pyarrow's row and our line disagree (several objects on a line?): let Python decide
            if not raw.strip():
                break
            if bad > cur:
                stretch = self._vectorised(memoryview(data)[lines.starts[cur] : lines.starts[bad]])
                if stretch is None or stretch.num_rows != lines.nonblank_between(cur, bad):
                    break
                tables.append(stretch)
            if error is not None:
                failures.append(ParseFailure(truncate_raw(raw), error, uri, first_line + bad))
                cur = bad + 1
            elif bad == cur:  # the row disagrees with itself (e.g. a list of numbers and strings)
                tables.append(self._from_python([obj]))
                cur = bad + 1
            else:
                cur = bad  # a new stretch starts at the row whose kinds changed
        # Too many problems, or ones pyarrow cannot pin down: Python parses what is left of the block.
        rest = data[lines.starts[cur] :] if cur < lines.count else b""
        more_tables, more = self._by_lines(rest, uri, first_line + cur)
        return tables + more_tables, failures + more

    def _by_lines(self, data: bytes, uri: str, first_line: int) -> tuple[list[pa.Table], list[ParseFailure]]:
        """Python's ``json`` decides line by line which lines are good; the good ones are then parsed together."""
        rows, failures = _split_lines(data, uri, first_line)
        if not rows:
            return [], failures
        table = self._vectorised(b"\n".join(r for r, _ in rows))
        if table is None or table.num_rows != len(rows):
            table = self._from_python([o for _, o in rows])
        return [table], failures

    def _vectorised(self, data: bytes | memoryview) -> Optional[pa.Table]:
        table = self._try(data, self.hints) if self.hints else None
        if table is None:
            table = self._try(data, None)
            if table is None:
                return None
            self.hints = {}
        if any(_type_depth(f.type) > MAX_NESTING_DEPTH for f in table.schema):
            return None  # some row is nested too deep: the line-by-line path finds and counts it
        new_hints = {f.name: _timestamps_as_strings(f.type) for f in table.schema if _has_timestamp(f.type)}
        if new_hints:
            self.hints = {**self.hints, **new_hints}
            table = self._try(data, self.hints)
        if table is not None and self.integral_fields != frozenset():
            table = with_companions(table, data, self.integral_fields)
        return table

    @staticmethod
    def _try(data: bytes | memoryview, hints: Optional[dict[str, pa.DataType]]) -> Optional[pa.Table]:
        parse_options = pajson.ParseOptions(
            explicit_schema=pa.schema(list(hints.items())) if hints else None,
            unexpected_field_behavior="infer",
            newlines_in_values=False,
        )
        block_size = _ARROW_BLOCK
        while True:
            try:
                return pajson.read_json(
                    pa.py_buffer(data),
                    read_options=pajson.ReadOptions(use_threads=True, block_size=block_size),
                    parse_options=parse_options,
                )
            except _PARSE_ERRORS as exc:
                # A single line longer than pyarrow's block: retry with one block for the whole buffer.
                if "straddl" in str(exc).lower() and block_size < len(data) + 1:
                    block_size = len(data) + 1
                    continue
                return None


def _merge_alike(tables: list[pa.Table]) -> list[pa.Table]:
    """Consecutive stretches with the same schema as one table (a repaired block is usually one table again)."""
    merged: list[pa.Table] = []
    for table in tables:
        if merged and merged[-1].schema.equals(table.schema):
            merged[-1] = pa.concat_tables([merged[-1], table])
        else:
            merged.append(table)
    return merged


def _first_problem(data: bytes | memoryview) -> tuple[Optional[int], Optional[str]]:
    """Parse ``data`` as one pyarrow block: ``(None, None)`` if it is clean, else the 0-based row (object) where
    parsing stopped, if pyarrow says, and its message."""
    try:
        pajson.read_json(
            pa.py_buffer(data),
            read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=pajson.ParseOptions(unexpected_field_behavior="infer", newlines_in_values=False),
        )
        return None, None
    except _PARSE_ERRORS as exc:
        message = str(exc)
        match = _ERROR_ROW.search(message)
        return (int(match.group(1)) if match else None), message


class _LineIndex:
    """Where each line of a block starts and ends, and which lines are not blank (pyarrow skips blank ones)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.concatenate((newlines, [len(data)]))
        if starts[-1] == len(data):  # the block ends with a newline: no line after it
            starts, ends = starts[:-1], ends[:-1]
        self.starts, self.ends = starts, ends
        self.count = len(starts)
        self.nonblank = np.flatnonzero(~_blank_lines(np.frombuffer(data, dtype=np.uint8), data, starts, ends))

    def nonblank_between(self, first: int, end: int) -> int:
        """How many lines in ``[first, end)`` are not blank."""
        return int(np.searchsorted(self.nonblank, end) - np.searchsorted(self.nonblank, first))

    def nth_nonblank(self, first: int, n: int) -> Optional[int]:
        """The index of the ``n``-th (0-based) non-blank line at or after line ``first``."""
        k = int(np.searchsorted(self.nonblank, first)) + n
        return int(self.nonblank[k]) if k < len(self.nonblank) else None

    def text(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]]


def _load_object(raw: bytes) -> tuple[Any, Optional[str]]:
    """``(object, None)`` for a line holding one JSON object, else ``(None, why not)``."""
    try:
        obj = json.loads(raw)  # like pyarrow, accepts NaN and Infinity as doubles
    except ValueError as exc:  # includes UnicodeDecodeError
        return None, f"invalid JSON: {exc}"
    except RecursionError:
        return None, f"invalid JSON: nested deeper than {MAX_NESTING_DEPTH} levels"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, found {type(obj).__name__}"
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None, "invalid JSON: a \\u escape names a lone UTF-16 surrogate, which is not a character"
        except RecursionError:
            return None, f"invalid JSON: nested deeper than {MAX_NESTING_DEPTH} levels"
    if len(raw) > 2 * MAX_NESTING_DEPTH and _value_depth(obj) > MAX_NESTING_DEPTH:
        return None, f"invalid JSON: nested deeper than {MAX_NESTING_DEPTH} levels"
    return obj, None


def _value_depth(value: Any) -> int:
    """How deep lists and objects nest in a parsed JSON value (iteratively: the value may be very deep)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _type_depth(t: pa.DataType) -> int:
    """How deep an Arrow type nests (iteratively)."""
    deepest = 0
    stack = [(t, 0)]
    while stack:
        t, depth = stack.pop()
        deepest = max(deepest, depth)
        for i in range(t.num_fields):
            stack.append((t.field(i).type, depth + 1))
    return deepest


_COUNT_STEP = 1 << 18  # searched a cache-sized piece at a time: no block-sized temporary
# Characters a line may start with when it is blank or a bare null: a newline (an empty line), a carriage return,
# a space, a tab, and the ``n`` of ``null``. Lines of JSON objects start with ``{``.
_ODD_FIRST = np.array([10, 13, 32, 9, 110], dtype=np.uint8)
# A line nested N deep holds at least N bytes, so lines shorter than this cannot crash pyarrow (which it does some
# 15,000 levels down); deeper than Jackson's limit but shorter, they parse, and their type's depth gives them away.
_LONG_LINE = 4096


class Screened(NamedTuple):
    block: bytes | memoryview  # the block with the lines pyarrow must not see turned into spaces
    failures: list[ParseFailure]  # one for each of those lines
    newlines: int  # newline characters in the block
    nonblank: int  # lines that are neither empty nor whitespace only, nor taken out


def screen_lines(block: bytes | memoryview, uri: str, first_line: int) -> Screened:
    """``block`` with the lines pyarrow's JSON reader cannot be given turned into spaces (same length, same line
    numbers), and a failure for each: a bare ``null`` (pyarrow 26 crashes the process on a block whose first row
    is one) and a line nested deeper than Jackson's limit among the long ones (pyarrow's recursive parser
    overflows its stack). Also counts the lines that are not blank, which pyarrow skips. Vectorised over the line
    starts: only lines starting with a blank or ``n``, or longer than ``_LONG_LINE``, are looked at one by one."""
    arr = np.frombuffer(block, dtype=np.uint8)
    n = len(arr)
    if not n:
        return Screened(block, [], 0, 0)
    newlines = _newline_positions(arr)
    starts = np.empty(len(newlines) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines + 1
    ends = np.empty_like(starts)
    ends[:-1] = newlines
    ends[-1] = n
    if starts[-1] == n:  # the block ends with a newline: no line after it
        starts, ends = starts[:-1], ends[:-1]
    blank = 0
    found: dict[int, tuple[int, str]] = {}
    odd = np.flatnonzero(np.isin(arr[starts], _ODD_FIRST))
    for i in odd.tolist():
        text = bytes(block[int(starts[i]) : int(ends[i])]).strip()
        if not text:
            blank += 1
        elif text == b"null":
            found[i] = (int(starts[i]), "expected a JSON object, found null")
    long_lines = np.flatnonzero(ends - starts > _LONG_LINE)
    if len(long_lines):
        opening = (arr == 91) | (arr == 123)
        for i in long_lines.tolist():
            start, end = int(starts[i]), int(ends[i])
            if i not in found and np.count_nonzero(opening[start:end]) > MAX_NESTING_DEPTH:
                _, error = _load_object(bytes(block[start:end]))
                if error is not None and "nested deeper" in error:
                    found[i] = (start, error)
    nonblank = len(starts) - blank - len(found)
    if not found:
        return Screened(block, [], len(newlines), nonblank)
    out = bytearray(block)
    failures = []
    for i in sorted(found):
        start, message = found[i]
        end = int(ends[i])
        raw = bytes(out[start:end])
        out[start:end] = b" " * (end - start)
        failures.append(ParseFailure(truncate_raw(raw.decode("utf-8", errors="replace")), message, uri, first_line + i))
    return Screened(bytes(out), failures, len(newlines), nonblank)


def _blank_lines(arr: np.ndarray, data: bytes | memoryview, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which lines are empty or whitespace only (pyarrow skips them); only lines starting with a blank are read."""
    blank = ends == starts
    if len(arr):
        first = arr[np.minimum(starts, len(arr) - 1)]
        for i in np.flatnonzero(~blank & np.isin(first, _ODD_FIRST[1:4])).tolist():
            blank[i] = not bytes(data[int(starts[i]) : int(ends[i])]).strip()
    return blank


def _newline_positions(arr: np.ndarray) -> np.ndarray:
    """Where the newlines of ``arr`` are, a cache-sized piece at a time (no block-sized temporary)."""
    parts = [np.flatnonzero(arr[i : i + _COUNT_STEP] == 10) + i for i in range(0, len(arr), _COUNT_STEP)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _is_valid_utf8(data: bytes | memoryview) -> bool:
    whole = data.obj if isinstance(data, memoryview) else data
    if isinstance(whole, bytes) and whole.isascii():
        return True  # ASCII (a view's whole buffer, hence the view): no decoded copy needed
    try:
        codecs.utf_8_decode(data, "strict", True)  # C speed; the decoded text is thrown away
        return True
    except UnicodeDecodeError:
        return False


def _split_lines(block: bytes, uri: str, first_line: int) -> tuple[list[tuple[bytes, dict[str, Any]]], list[ParseFailure]]:
    """The good lines (raw and parsed) of a stretch, and a failure for each broken one (Python's json)."""
    rows: list[tuple[bytes, dict[str, Any]]] = []
    failures: list[ParseFailure] = []
    for offset, raw in enumerate(block.split(b"\n")):
        text = raw.strip()
        if not text:
            continue
        obj, error = _load_object(text)
        if error is not None:
            failures.append(ParseFailure(truncate_raw(raw), error, uri, first_line + offset))
        else:
            rows.append((text, obj))
    return rows, failures


def _table_from_python(objs: list[dict[str, Any]]) -> pa.Table:
    """A table from parsed rows whose values disagree on their kind somewhere; each disagreeing field (at any
    depth) becomes a string field, everything else keeps its type."""
    columns = _normalise(objs)
    names: dict[str, None] = {}
    for obj in columns:
        names.update(dict.fromkeys(obj))
    arrays = {}
    for name in names:
        values = [obj.get(name) for obj in columns]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays[name] = pa.array([None if v is None else _json_text(v) for v in values], pa.string())
    return pa.table(arrays)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _normalise(values: list[Any]) -> list[Any]:
    """Values of one field across rows, with every field whose kinds disagree turned into text."""
    kinds = {_kind(v) for v in values if v is not None}
    if len(kinds) > 1:
        return [None if v is None else _json_text(v) for v in values]
    if kinds == {"object"}:
        keys: dict[str, None] = {}
        for v in values:
            if v is not None:
                keys.update(dict.fromkeys(v))
        children = {k: _normalise([None if v is None else v.get(k) for v in values]) for k in keys}
        return [None if v is None else {k: children[k][i] for k in keys if k in v} for i, v in enumerate(values)]
    if kinds == {"array"}:
        flat = [item for v in values if v is not None for item in v]
        flat = _normalise(flat)
        out: list[Optional[list[Any]]] = []
        pos = 0
        for v in values:
            if v is None:
                out.append(None)
            else:
                out.append(flat[pos : pos + len(v)])
                pos += len(v)
        return out
    return values
