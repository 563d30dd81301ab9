"""JSON lines, parsed by pyarrow a block at a time, with a per-block fallback for bad lines.

The stream is cut into blocks of whole lines. Each block is parsed vectorised by ``pyarrow.json``; only a
block pyarrow rejects is examined line by line: broken lines (invalid JSON, or JSON that is not an object) are
reported as unparseable with their text and line number, and the good lines are parsed again, vectorised.
Only if the good lines disagree on a field's kind inside one block (``1`` in one row, ``"x"`` in the next) is the
block built from Python values, with the disagreeing fields as strings.

pyarrow infers timestamps from date-like strings; Druid keeps strings as written (the timestampSpec parses
them), so such fields are re-read with an explicit string type, remembered for the following blocks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Optional

import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.types as pt

from druidflow.inputs.batch import ParseFailure, truncate_raw
from druidflow.inputs.schema import _json_text

Chunk = tuple[Optional[pa.Table], list[ParseFailure], Optional[int]]

_PARSE_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
_ARROW_BLOCK = 1 << 20


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_timestamp(t: pa.DataType) -> bool:
    if pt.is_timestamp(t) or pt.is_date(t) or pt.is_time(t):
        return True
    if pt.is_struct(t):
        return any(_has_timestamp(f.type) for f in t)
    if pt.is_list(t) or pt.is_large_list(t):
        return _has_timestamp(t.value_type)
    return False


def _timestamps_as_strings(t: pa.DataType) -> pa.DataType:
    if pt.is_timestamp(t) or pt.is_date(t) or pt.is_time(t):
        return pa.string()
    if pt.is_struct(t):
        return pa.struct([pa.field(f.name, _timestamps_as_strings(f.type)) for f in t])
    if pt.is_list(t) or pt.is_large_list(t):
        return pa.list_(_timestamps_as_strings(t.value_type))
    return t


class JsonLinesParser:
    """Parses blocks of JSON lines into Arrow tables; remembers which fields must stay strings."""

    def __init__(self) -> None:
        self.hints: dict[str, pa.DataType] = {}

    def read(self, stream: Any, uri: str, block_size: int) -> Iterator[Chunk]:
        """Tables (or None when a block held no good row) and the broken lines of one stream."""
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
            table, failures = self.parse_block(block, uri, line)
            if table is not None or failures:
                yield table, failures, None
            line += data.count(b"\n", 0, end)
            if not chunk:
                return

    def parse_block(
        self, block: bytes | memoryview, uri: str, first_line: int
    ) -> tuple[Optional[pa.Table], list[ParseFailure]]:
        table = self._vectorised(block)
        if table is not None:
            return table, []
        rows, failures = _split_lines(bytes(block), uri, first_line)
        if not rows:
            return None, failures
        table = self._vectorised(b"\n".join(raw for raw, _ in rows))
        if table is None:
            table = _table_from_python([obj for _, obj in rows])
        return table, failures

    def _vectorised(self, data: bytes | memoryview) -> Optional[pa.Table]:
        table = self._try(data, self.hints) if self.hints else None
        if table is None:
            table = self._try(data, None)
            if table is None:
                return None
            self.hints = {}
        new_hints = {f.name: _timestamps_as_strings(f.type) for f in table.schema if _has_timestamp(f.type)}
        if new_hints:
            self.hints = {**self.hints, **new_hints}
            table = self._try(data, self.hints)
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


def _split_lines(block: bytes, uri: str, first_line: int) -> tuple[list[tuple[bytes, dict]], list[ParseFailure]]:
    """The good lines (raw and parsed) of a block pyarrow rejected, and a failure for each broken one."""
    rows: list[tuple[bytes, dict]] = []
    failures: list[ParseFailure] = []
    for offset, raw in enumerate(block.split(b"\n")):
        text = raw.strip()
        if not text:
            continue
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:  # includes UnicodeDecodeError
            failures.append(ParseFailure(truncate_raw(raw), f"invalid JSON: {exc}", uri, first_line + offset))
            continue
        if not isinstance(obj, dict):
            failures.append(
                ParseFailure(truncate_raw(raw), f"expected a JSON object, found {type(obj).__name__}", uri, first_line + offset)
            )
            continue
        rows.append((text, obj))
    return rows, failures


def _table_from_python(objs: list[dict]) -> pa.Table:
    """A table from parsed rows whose fields disagree on their kind; disagreeing fields become strings."""
    names: dict[str, None] = {}
    for obj in objs:
        names.update(dict.fromkeys(obj))
    columns = {}
    for name in names:
        values = [obj.get(name) for obj in objs]
        try:
            arr = pa.array(values)
            if pt.is_timestamp(arr.type) or pt.is_date(arr.type):
                raise pa.ArrowTypeError("keep dates as written")
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arr = pa.array([None if v is None else _json_text(v) for v in values], pa.string())
        columns[name] = arr
    return pa.table(columns)
