"""Druid's hash partitioning recipe, vectorised: the group key as Jackson's JSON, murmur3_32, ``abs(h % n)``.

Druid (``HashPartitioner.extractKeys`` → ``HashBasedNumberedShardSpec.serializeGroupKey`` →
``HashPartitionFunction.MURMUR3_32_ABS``) hashes each *input row* before any dimension typing:

* without ``partitionDimensions``: ``Rows.toGroupKey(t, row)`` = ``[t, {dim: [values]}]``, ``t`` the row's
  timestamp truncated to the queryGranularity (epoch ms), dimensions sorted by name, each dimension's values a
  sorted set of strings with nulls first, a dimension with no value left out;
* with ``partitionDimensions``: ``[row.getDimension(d1), row.getDimension(d2), ...]``, each in input order with
  duplicates (a multi-value row ``["b","a","b"]`` stays so), an absent value ``[]``.

``row.getDimension`` is ``Rows.objectToStrings`` of the raw value: a null is no value, a list element that is
null stays ``null``, anything else is ``String.valueOf``: JSON ``""`` is ``[""]``, a JSON integer ``2`` is
``"2"`` even in a double dimension, a double ``2.0`` is ``"2.0"`` even in a string dimension (Java's
``Double.toString``, so ``1.0E7`` and ``1.0E-4`` outside [10⁻³, 10⁷)). CSV values are the text as written. So
the key is built here from the raw columns (after transforms), not from the typed dimension columns. A JSON
column holding both ``1`` and ``2.5`` arrives as doubles; the reader says which rows were written as integers
(:mod:`druidflow.inputs.json_numbers`) and the parser hands such a column over as that text (``"1"``, ``"2.5"``).

Each dimension is a :class:`KeyPiece`: its distinct values (escaped only when one needs it, once per distinct
value; lists rendered whole), each row's index into them, and the JSON around a value (``"d":["`` … ``"]``). The
compiled :func:`druidflow.ingest.murmur.murmur3_32_keys` then lays out, per row, the bytes of its key from those
pieces and hashes them, without building the key as a string. No Python runs per row. Java sorts strings by UTF-16 code unit and
Arrow by code point: the two differ only between supplementary characters and U+E000–U+FFFF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CONTROL = re.compile(r"[\x00-\x1f]")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-f]{4})")
_NULL_TEXT = "null"


# ------------------------------------------------------------------------------------- Java string forms


def java_double_strings(col: pa.Array) -> pa.Array:
    """``String.valueOf(double)`` of each value: ``2.0``, ``0.001``, ``1.0E7``, ``1.0E-4``, ``NaN``, ``Infinity``."""
    arr = col.cast(pa.float64())
    text = arr.cast(pa.string())
    values = np.asarray(pc.fill_null(arr, 0.0))
    absolute = np.abs(values)
    plain = (absolute == 0) | ((absolute >= 1e-3) & (absolute < 1e7))
    whole = pc.invert(pc.match_substring(text, "."))
    out = pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
    odd = np.flatnonzero(~plain)
    if len(odd):
        distinct = np.unique(values[odd])
        rendered = {float(v): _java_double(float(v)) for v in distinct}
        replaced = pa.array([rendered[float(v)] for v in values[odd]], pa.string())
        positions = np.zeros(len(arr), dtype=np.int64)
        positions[odd] = np.arange(len(odd))
        mask = np.zeros(len(arr), dtype=bool)
        mask[odd] = True
        out = pc.if_else(pa.array(mask), replaced.take(pa.array(positions)) if len(replaced) else out, out)
    return pc.if_else(pc.is_null(arr), pa.scalar(None, pa.string()), out)


def _java_double(v: float) -> str:
    """Java's computerized scientific form, for magnitudes outside [10⁻³, 10⁷) (and the non-finite values)."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    sign, digits, exponent = Decimal(repr(v)).as_tuple()
    if len(digits) == 1:  # Java shows at least two significant digits here: 4.9E-324, not 5.0E-324
        sign, digits, exponent = Decimal(f"{v:.1e}").as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = int(exponent) + len(digits) - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


def java_strings(col: pa.Array) -> pa.Array:
    """``String.valueOf`` of each scalar value of an Arrow array (null stays null)."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.cast(pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(col), pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(col, "true", "false")
    if pa.types.is_floating(t):
        return java_double_strings(col)
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return pa.array([None if v is None else json.dumps(v, separators=(",", ":"), default=str) for v in col.to_pylist()], pa.string())
    return col.cast(pa.string())


_NEEDS_ESCAPE = "[\\\\\"\\x00-\\x1f]"


def json_string_bodies(values: pa.Array) -> pa.Array:
    """Each string's contents as Jackson writes them between the quotes (see :func:`json_string_literals`); null
    stays null. Strings that need no escape (the usual case) are returned as they are, after one scan."""
    if not len(values) or not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
        return values
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    if pc.any(pc.match_substring_regex(values, "[\\x00-\\x1f]")).as_py():
        escaped = _escape_controls(values, escaped)
    return escaped


def json_string_literals(values: pa.Array) -> pa.Array:
    """Each string as Jackson writes it: quoted, ``\\`` and ``"`` escaped, control characters as ``\\n`` or
    ``\\u001F`` (upper-case hex); null as ``null``."""
    quoted = pc.binary_join_element_wise('"', json_string_bodies(values), '"', "")
    return pc.fill_null(quoted, _NULL_TEXT)


def _escape_controls(values: pa.Array, escaped: pa.Array) -> pa.Array:
    # Rare: only the distinct values holding a control character go through json.dumps.
    has = pc.fill_null(pc.match_substring_regex(values, "[\\x00-\\x1f]"), False)
    rows = np.flatnonzero(np.asarray(has))
    raw = values.take(pa.array(rows)).to_pylist()
    cache: dict[str, str] = {}
    for v in raw:
        if v not in cache:
            body = json.dumps(v, ensure_ascii=False)[1:-1]
            cache[v] = _UNICODE_ESCAPE.sub(lambda m: "\\u" + m.group(1).upper(), body)
    fixed = pa.array([cache[v] for v in raw], pa.string())
    positions = np.zeros(len(values), dtype=np.int64)
    positions[rows] = np.arange(len(rows))
    return pc.if_else(has, fixed.take(pa.array(positions)), escaped)


# ------------------------------------------------------------------------------------- per-dimension lists


def raw_value_lists(col: pa.Array, list_delimiter: Optional[str] = None) -> pa.ListArray:
    """Each row's ``getDimension`` values as a list of Java strings: scalar null → ``[]``, a list keeps its order
    and its null elements; with a CSV/TSV ``listDelimiter``, text holding it is split (empty parts are null)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        col = col.cast(pa.list_(t.value_type)) if not pa.types.is_list(t) else col
        flat = java_strings(col.flatten())
        offsets = _list_offsets(col)
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat)
    values = java_strings(col)
    if list_delimiter and pc.any(pc.match_substring(values, list_delimiter)).as_py():
        split = pc.split_pattern(values, list_delimiter)
        parts = split.flatten()
        parts = pc.if_else(pc.equal(parts, ""), pa.scalar(None, pa.string()), parts)
        return pa.ListArray.from_arrays(pa.array(_list_offsets(split), pa.int32()), parts)
    present = np.asarray(pc.is_valid(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(present, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values.filter(pa.array(present)))


def _list_offsets(col: pa.Array) -> np.ndarray:
    """Offsets of a list array with null rows turned into empty lists (so ``flatten`` lines up)."""
    lengths = np.asarray(pc.fill_null(pc.list_value_length(col), 0)).astype(np.int64)
    offsets = np.zeros(len(col) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _sorted_sets(lists: pa.ListArray) -> pa.ListArray:
    """Per row, the distinct values in Java's natural order with null first (``TreeSet(naturalNullsFirst)``)."""
    values = lists.flatten()
    if not len(values):
        return lists
    parents = pc.list_parent_indices(lists)
    order = pc.sort_indices(
        pa.table({"p": parents, "v": values}), sort_keys=[("p", "ascending", "at_start"), ("v", "ascending", "at_start")]
    )
    v = values.take(order)
    p = np.asarray(parents.take(order))
    same_parent = np.zeros(len(p), dtype=bool)
    same_parent[1:] = p[1:] == p[:-1]
    v_null = np.asarray(pc.is_null(v))
    same_value = np.zeros(len(p), dtype=bool)
    if len(p) > 1:
        eq = np.asarray(pc.fill_null(pc.equal(v.slice(1), v.slice(0, len(v) - 1)), False))
        same_value[1:] = eq | (v_null[1:] & v_null[:-1])
    keep = ~(same_parent & same_value)
    v, p = v.filter(pa.array(keep)), p[keep]
    counts = np.bincount(p, minlength=len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), v)


def _json_arrays(lists: pa.ListArray) -> pa.Array:
    """``["a","b"]`` per row (``[]`` for an empty list)."""
    texts = json_string_literals(lists.flatten())
    joined = pc.binary_join(pa.ListArray.from_arrays(lists.offsets, texts), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


# ------------------------------------------------------------------------------------- the key and the hash


@dataclass(frozen=True)
class KeyPiece:
    """One dimension's part of every row's key: ``prefix + bodies[rows[i]] + suffix``, or where ``rows[i]`` is -1
    (no value) ``absent``, or nothing at all (the dimension left out of the row's group key) when that is None.
    ``bodies`` are the distinct values' JSON text (escaped string contents for a single value, whole arrays for
    lists), rendered once per distinct value; ``prefix``/``suffix`` are the JSON around them (``"d":["`` and
    ``"]``)."""

    bodies: pa.Array
    rows: np.ndarray
    prefix: bytes = b""
    suffix: bytes = b""
    absent: Optional[bytes] = None


def _pieces(
    table: pa.Table, dimensions: Sequence[str], partition_dimensions: Sequence[str], list_delimiter: Optional[str]
) -> list[KeyPiece]:
    """The key's pieces, one per dimension of the key, in key order."""
    n = table.num_rows
    grouped = not partition_dimensions
    names = sorted(set(dimensions)) if grouped else list(partition_dimensions)
    pieces: list[KeyPiece] = []
    for d in names:
        name = (json_string_literals(pa.array([d], pa.string()))[0].as_py() + ":").encode() if grouped else b""
        if d not in table.column_names:
            if not grouped:
                pieces.append(KeyPiece(pa.array([], pa.string()), np.full(n, -1, np.int32), absent=b"[]"))
            continue
        pieces.append(_dimension_piece(table.column(d), name, grouped, list_delimiter))
    return pieces


def _dimension_piece(col: pa.Array | pa.ChunkedArray, name: bytes, grouped: bool, list_delimiter: Optional[str]) -> KeyPiece:
    absent = None if grouped else b"[]"  # a row without a value: left out of a group key, [] in a partition key
    if isinstance(col, pa.ChunkedArray):
        if pa.types.is_dictionary(col.type) and col.num_chunks > 1:
            # Each input block brings its own dictionary: render each, rather than unify them (which costs more).
            parts = [_dimension_piece(chunk, name, grouped, list_delimiter) for chunk in col.chunks]
            if len({(p.prefix, p.suffix) for p in parts}) == 1:
                bases = np.cumsum([0] + [len(p.bodies) for p in parts[:-1]])
                rows = np.concatenate([np.where(p.rows >= 0, p.rows + b, -1) for p, b in zip(parts, bases)])
                first = parts[0]
                return KeyPiece(pa.concat_arrays([p.bodies for p in parts]), rows.astype(np.int32), first.prefix, first.suffix, absent)
        col = col.combine_chunks()
    t = col.type
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if not is_list:
        encoded = col if pa.types.is_dictionary(t) else pc.dictionary_encode(col)
        values = java_strings(encoded.dictionary)
        if not (list_delimiter and pc.any(pc.match_substring(values, list_delimiter)).as_py()):
            rows = _indices(encoded.indices)
            if values.null_count:  # a null in the dictionary itself is no value either
                remap = np.where(np.asarray(pc.is_valid(values)), np.arange(len(values), dtype=np.int32), -1)
                rows = np.where(rows >= 0, remap[np.maximum(rows, 0)], -1).astype(np.int32)
            return KeyPiece(json_string_bodies(values), rows, name + b'["', b'"]', absent)
    lists = raw_value_lists(col, list_delimiter)
    if grouped:
        lists = _sorted_sets(lists)
    encoded = pc.dictionary_encode(_json_arrays(lists))
    rows = _indices(encoded.indices)
    if grouped:  # a dimension with no value is left out of the group key
        rows = np.where(np.asarray(pc.list_value_length(lists)) == 0, -1, rows).astype(np.int32)
    return KeyPiece(encoded.dictionary, rows, name, b"", absent)


def _indices(indices: pa.Array) -> np.ndarray:
    """Dictionary indices as int32, -1 for a null."""
    if indices.null_count:
        indices = pc.fill_null(indices, -1)
    return np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int32)


def group_keys(
    table: pa.Table,
    times: pa.Array,
    dimensions: Sequence[str],
    partition_dimensions: Sequence[str] = (),
    list_delimiter: Optional[str] = None,
) -> pa.Array:
    """The JSON text Druid hashes for each row of ``table`` (raw columns after transforms); ``times`` is the
    queryGranularity-truncated timestamp of each row, used only without ``partitionDimensions``.
    (:func:`row_hashes` hashes the same bytes without building them.)"""
    n = table.num_rows
    parts = []
    for piece in _pieces(table, dimensions, partition_dimensions, list_delimiter):
        taken = piece.bodies.take(pa.array(piece.rows, mask=piece.rows < 0))
        text = pc.binary_join_element_wise(piece.prefix.decode(), taken, piece.suffix.decode(), "")
        text = pc.fill_null(text, "" if piece.absent is None else piece.absent.decode())
        parts.append(pc.if_else(pc.equal(text, ""), "", pc.binary_join_element_wise(",", text, "")))
    body = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*parts, ""), 1) if parts else pa.array([""] * n, pa.string())
    if partition_dimensions:
        return pc.binary_join_element_wise("[", body, "]", "")
    time_text = pc.cast(times, pa.int64()).cast(pa.string())
    return pc.binary_join_element_wise("[", time_text, ",{", body, "}]", "")


def row_hashes(
    table: pa.Table,
    times: pa.Array,
    dimensions: Sequence[str],
    partition_dimensions: Sequence[str] = (),
    list_delimiter: Optional[str] = None,
) -> np.ndarray:
    """``murmur3_32`` of each row's group key (signed int32), independent of the number of buckets."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.int32)
    from druidflow.ingest.murmur import murmur3_32_keys  # numba: imported only by the runs that hash

    pieces = _pieces(table, dimensions, partition_dimensions, list_delimiter)
    rows = np.stack([p.rows for p in pieces]) if pieces else np.zeros((0, table.num_rows), dtype=np.int32)
    args = ([p.bodies for p in pieces], rows, [p.prefix for p in pieces], [p.suffix for p in pieces], [p.absent for p in pieces])
    if partition_dimensions:
        return murmur3_32_keys(None, b"", b"]", *args)
    return murmur3_32_keys(np.asarray(pc.cast(times, pa.int64())), b",{", b"}]", *args)


def buckets_of(hashes: np.ndarray, num_buckets: int) -> np.ndarray:
    """``abs(hash % numBuckets)`` with Java's remainder (the sign of the dividend)."""
    if num_buckets <= 1:
        return np.zeros(len(hashes), dtype=np.int64)
    return np.abs(np.fmod(hashes.astype(np.int64), num_buckets))
