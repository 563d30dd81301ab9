"""Which JSON numbers were written as integers, for the columns Arrow reads as doubles.

Druid's JSON reader (Jackson, then ``JSONFlattenerMaker.convertJsonNode``) keeps a number's kind: ``1`` is a
``Long``, ``2.5`` and ``3.0`` are ``Double``. Wherever a value becomes text — a string dimension, a hash
partitioning key (``Rows.objectToStrings``) — that shows: ``"1"``, ``"2.5"``, ``"3.0"``. pyarrow reads a field
holding both kinds as one double column, and ``1`` and ``1.0`` become the same value. For such a column this
module finds, vectorised, which rows' values were written as integers: only rows whose value is whole need a
look, and for those the number's text is found after the field's key in the row's line with one RE2 pass
(``"name"`` then ``:``, an unescaped quote before it). A line where the key appears other than exactly once
(a nested object with the same key, a key written with ``\\u`` escapes) is decided by Python's ``json``.

The answer travels with the rows as a boolean companion column (:func:`companion_name`) from the JSON parser
to the reader, which hands it out as :attr:`~druidflow.inputs.batch.InputBatch.integral_numbers`.

Jackson reads an integer literal beyond the long range as a ``BigInteger``, which Druid turns into a double:
such literals count as doubles here. Integers between 2^53 and 2^63 are exact longs in Druid but arrive here as
the nearest double.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

_COMPANION = "\x00integral\x00"
_LONG_LIMIT = 2.0**63


def companion_name(name: str) -> str:
    """The hidden column that says, per row, whether field ``name``'s number was written as an integer."""
    return _COMPANION + name


def is_companion(name: str) -> bool:
    return name.startswith(_COMPANION)


def split_companions(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, dict[str, pa.Array]]:
    """``batch`` without its companion columns, and those columns by the field they describe."""
    names = batch.schema.names
    if not any(n.startswith(_COMPANION) for n in names):
        return batch, {}
    found = {n[len(_COMPANION) :]: batch.column(i) for i, n in enumerate(names) if n.startswith(_COMPANION)}
    keep = [i for i, n in enumerate(names) if not n.startswith(_COMPANION)]
    return pa.RecordBatch.from_arrays([batch.column(i) for i in keep], schema=pa.schema([batch.schema.field(i) for i in keep])), found


def with_companions(table: pa.Table, data: bytes | memoryview, fields: Optional[AbstractSet[str]] = None) -> pa.Table:
    """``table`` (parsed by pyarrow from ``data``, one row per non-blank line) with a companion column for every
    root double column, or column of arrays of doubles, (of ``fields``; None: any) holding a whole value, when the
    lines can be matched to the rows."""
    doubles = [f.name for f in table.schema if pt.is_floating(f.type) and (fields is None or f.name in fields)]
    double_lists = [f.name for f in table.schema if _is_double_list(f.type) and (fields is None or f.name in fields)]
    if not doubles and not double_lists:
        return table
    lines: Optional[pa.Array] = None
    raw: Optional[bytes] = None
    for name in doubles:
        col = table.column(name)
        values = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        whole = _whole(values)
        if not whole.any():
            continue
        if lines is None:
            lines = _lines(data, table.num_rows)
            if lines is None:
                return table
        mask = np.zeros(table.num_rows, dtype=bool)
        rows = np.flatnonzero(whole)
        if 2 * len(rows) > len(whole):  # most rows: look at every line rather than copy most of them
            if raw is None:
                raw = bytes(data)
            occurrences = raw.count(json.dumps(name, ensure_ascii=False).encode())
            mask[rows] = integer_literals(lines, name, whole, occurrences)[rows]
        else:
            mask[rows] = integer_literals(lines.take(pa.array(rows)), name)
        table = table.append_column(companion_name(name), pa.array(mask))
    for name in double_lists:
        col = table.column(name)
        lists = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if not _whole(pc.list_flatten(lists)).any():
            continue
        if lines is None:
            lines = _lines(data, table.num_rows)
            if lines is None:
                return table
        table = table.append_column(companion_name(name), _element_literals(lines, name, lists))
    return table


def _is_double_list(t: pa.DataType) -> bool:
    return (pt.is_list(t) or pt.is_large_list(t)) and pt.is_float64(t.value_type)


def _element_literals(lines: pa.Array, name: str, lists: pa.Array) -> pa.Array:
    """For a root field holding arrays of numbers: per row, whether each element was written as an integer (a
    ``list<bool>`` shaped like the rows' lists, null rows empty). The array's text after the key is split at its
    commas; a line where that does not give one token per element, or where the key is not found exactly once,
    is decided by Python's json."""
    n = len(lists)
    lengths = np.asarray(pc.fill_null(pc.list_value_length(lists), 0), dtype=np.int64)
    key = re.escape(json.dumps(name, ensure_ascii=False))
    found = pc.extract_regex(lines, key + r"\s*:\s*\[(?P<v>[^\[\]]*)\]").field("v")
    tokens = pc.split_pattern(pc.if_else(pc.equal(pc.utf8_trim_whitespace(found), ""), pa.scalar(None, pa.string()), found), ",")
    counts = np.asarray(pc.fill_null(pc.list_value_length(tokens), 0), dtype=np.int64)
    once = np.asarray(pc.count_substring(lines, json.dumps(name, ensure_ascii=False)), dtype=np.int64) == 1
    ok = once & (counts == lengths)
    flat_tokens = pc.utf8_trim_whitespace(pc.list_flatten(tokens))
    token_integral = ~np.asarray(pc.fill_null(pc.match_substring_regex(flat_tokens, "[.eE]|null"), True), dtype=bool)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    token_starts = np.concatenate(([0], np.cumsum(counts)))
    mask = np.zeros(int(starts[-1]), dtype=bool)
    token_rows = np.repeat(np.arange(n), counts)
    good = ok[token_rows]
    position = starts[token_rows] + (np.arange(len(token_rows)) - token_starts[token_rows])
    mask[position[good]] = token_integral[good]
    for i in np.flatnonzero(~ok & (lengths > 0)).tolist():  # rare: Python's json decides
        value = json.loads(lines[i].as_py()).get(name)
        if isinstance(value, list) and len(value) == lengths[i]:
            mask[starts[i] : starts[i + 1]] = [isinstance(v, int) and not isinstance(v, bool) for v in value]
    flat = pc.list_flatten(lists)
    mask &= _whole(flat)
    return pa.ListArray.from_arrays(pa.array(starts, pa.int32()), pa.array(mask))


def list_text(lists: pa.Array, integral: Optional[pa.Array] = None) -> pa.Array:
    """A ``list<double>`` column as ``list<string>`` of ``String.valueOf`` of each element (``integral``: a
    companion saying which elements were written as integers; without it every element is a Java double)."""
    from druidflow.ingest.hashing import java_double_strings

    lengths = np.asarray(pc.fill_null(pc.list_value_length(lists), 0), dtype=np.int64)
    flat = pc.list_flatten(lists)
    flags = pc.list_flatten(integral) if integral is not None else None
    text = integral_text(flat, flags) if flags is not None and len(flags) == len(flat) else None
    offsets = pa.array(np.concatenate(([0], np.cumsum(lengths))), pa.int32())
    return pa.ListArray.from_arrays(offsets, text if text is not None else java_double_strings(flat), mask=pc.is_null(lists))


def companions_from_python(objs: list[dict[str, Any]], table: pa.Table, fields: Optional[AbstractSet[str]] = None) -> pa.Table:
    """Companions for a table built from Python-parsed rows (``int`` is Jackson's integer, ``float`` its double)."""
    for f in table.schema:
        if pt.is_floating(f.type) and (fields is None or f.name in fields):
            mask = [isinstance(o.get(f.name), int) and not isinstance(o.get(f.name), bool) for o in objs]
            values = table.column(f.name)
            whole = _whole(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
            if any(mask):
                table = table.append_column(companion_name(f.name), pa.array(np.asarray(mask, dtype=bool) & whole))
    return table


def integer_literals(
    lines: pa.Array, name: str, wanted: Optional[np.ndarray] = None, occurrences: Optional[int] = None
) -> np.ndarray:
    """For each JSON line, whether root field ``name`` holds a number written as an integer (``-?digits``); with
    ``wanted``, only those lines' answers count (the others are not sent to Python's json when unsure).
    ``occurrences``, when known, is how often the quoted name occurs in all the lines together."""
    key = re.escape(json.dumps(name, ensure_ascii=False))
    # The key as a literal prefix, so that RE2 skips to it. Its quote could be an escaped one inside another key
    # ("x\\"name":) only if the quoted name appears twice in the line, which the count below catches.
    pattern = key + r'\s*:\s*(?P<v>-?[0-9][0-9.eE+\-]*)'
    found = pc.extract_regex(lines, pattern).field("v")
    integral = ~np.asarray(pc.fill_null(pc.match_substring_regex(found, "[.eE]"), True), dtype=bool)
    # The quoted name appearing once in the line: the key found is the root one. (A string value equal to the name
    # counts too, and sends its line to Python's json as well.) When the name occurs in all the lines just as often
    # as a key was found, every line has it once at most: no line is unsure.
    if occurrences is not None and occurrences == len(found) - found.null_count:
        return integral
    count = np.asarray(pc.count_substring(lines, json.dumps(name, ensure_ascii=False)), dtype=np.int64)
    unsure = np.flatnonzero((count != 1) if wanted is None else ((count != 1) & wanted))
    for i in unsure.tolist():  # rare: Python's json decides
        value = json.loads(lines[i].as_py()).get(name)
        integral[i] = isinstance(value, int) and not isinstance(value, bool)
    return integral


def _whole(values: pa.Array) -> np.ndarray:
    """Rows holding a finite whole double within the long range (the only ones that can be integer literals)."""
    v = np.asarray(pc.fill_null(values.cast(pa.float64()), 0.5).to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(v) & (v == np.floor(v)) & (np.abs(v) < _LONG_LIMIT)


def _lines(data: bytes | memoryview, rows: int) -> Optional[pa.Array]:
    """The lines of ``data`` that hold an object (pyarrow skips the blank ones), as a string array over the buffer
    itself (no copy; each line keeps its newline), if there are exactly ``rows`` of them."""
    buf = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(buf == 10) + 1))
    if starts[-1] == len(buf):
        starts = starts[:-1]
    offsets = np.append(starts, len(buf)).astype(np.int32)
    lines = pa.Array.from_buffers(pa.string(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    if len(starts) == rows:  # the usual case: no blank line
        return lines
    # A line with an object has a "{" in it; a blank line has none.
    holding = np.unique(np.searchsorted(starts, np.flatnonzero(buf == 123), side="right") - 1)
    return lines.take(pa.array(holding)) if len(holding) == rows else None


def integral_text(values: pa.Array, integral: Optional[pa.Array | np.ndarray]) -> Optional[pa.Array]:
    """``String.valueOf`` of the numbers of a double column whose integer-written rows are ``integral``: those rows
    as integers (``"3"``), the others as Java doubles (``"3.0"``). None without an ``integral`` mask."""
    if integral is None:
        return None
    from druidflow.ingest.hashing import java_double_strings

    mask = pa.array(np.asarray(integral, dtype=bool)) if isinstance(integral, np.ndarray) else integral
    as_long = pc.cast(pc.if_else(mask, values, pa.scalar(None, values.type)), pa.int64(), safe=False).cast(pa.string())
    return pc.if_else(mask, as_long, java_double_strings(values))


def merge_companions(found: Mapping[str, pa.Array], before: pa.Schema, after: pa.RecordBatch) -> dict[str, pa.Array]:
    """The companions of a conformed batch: those the parser found, plus an all-true one for every column that
    was read as integers and has been widened to double to match the columns' earlier type."""
    out = dict(found)
    for f in after.schema:
        i = before.get_field_index(f.name)
        if f.name in out or i < 0:
            continue
        was = before.field(i).type
        column = after.column(after.schema.get_field_index(f.name))
        if pt.is_floating(f.type) and pt.is_integer(was):
            out[f.name] = pc.is_valid(column)
        elif _is_double_list(f.type) and (pt.is_list(was) or pt.is_large_list(was)) and pt.is_integer(was.value_type):
            lengths = np.asarray(pc.fill_null(pc.list_value_length(column), 0), dtype=np.int64)
            offsets = pa.array(np.concatenate(([0], np.cumsum(lengths))), pa.int32())
            out[f.name] = pa.ListArray.from_arrays(offsets, pc.is_valid(pc.list_flatten(column)))
    return out


def java_text_columns(
    batch: pa.RecordBatch, column_types: Mapping[str, pa.DataType], integral: Mapping[str, pa.Array]
) -> pa.RecordBatch:
    """``batch`` with each double column the caller wants as text turned into ``String.valueOf`` of its values, as
    Druid's string dimensions hold them: ``"1"`` where ``integral`` says the number was written as an integer,
    Java's ``Double.toString`` otherwise (``"2.0"``, ``"1.0E7"``), where Arrow's cast would print ``2`` and ``1e+07``."""
    if not column_types:
        return batch
    from druidflow.ingest.hashing import java_double_strings
    from druidflow.inputs.schema import is_string_like

    arrays = list(batch.columns)
    changed = False
    for i, f in enumerate(batch.schema):
        target = column_types.get(f.name)
        if target is None or not is_string_like(target):
            continue
        if _is_double_list(f.type):
            arrays[i] = list_text(arrays[i], integral.get(f.name))
            changed = True
            continue
        if not pt.is_float64(f.type):
            continue
        text = integral_text(arrays[i], integral.get(f.name))
        arrays[i] = text if text is not None else java_double_strings(arrays[i])
        changed = True
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
