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
the key is built here from the raw columns (after transforms), not from the typed dimension columns.

Each dimension's JSON fragment is rendered with Arrow string kernels (escaping, quoting) once per distinct value;
the compiled :func:`druidflow.ingest.murmur.murmur3_32_joined` then hashes, per row, the bytes of its key joined
from those fragments without building the key. No Python runs per row. Java sorts strings by UTF-16 code unit and
Arrow by code point: the two differ only between supplementary characters and U+E000–U+FFFF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
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


def json_string_literals(values: pa.Array) -> pa.Array:
    """Each string as Jackson writes it: quoted, ``\\`` and ``"`` escaped, control characters as ``\\n`` or
    ``\\u001F`` (upper-case hex); null as ``null``."""
    escaped = pc.replace_substring(values, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    if pc.any(pc.match_substring_regex(values, "[\\x00-\\x1f]")).as_py():
        escaped = _escape_controls(values, escaped)
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
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


def _pieces(
    table: pa.Table, dimensions: Sequence[str], partition_dimensions: Sequence[str], list_delimiter: Optional[str]
) -> tuple[list[pa.Array], np.ndarray]:
    """The key's pieces: per dimension, its distinct JSON fragments (``"d":["v"]`` in a group key, ``["v"]`` for
    a partition dimension, rendered once per distinct value, per distinct list for arrays) and each row's index
    into them (``pieces[j]``). An empty fragment is a dimension left out of the row's group key."""
    n = table.num_rows
    grouped = not partition_dimensions
    names = sorted(set(dimensions)) if grouped else list(partition_dimensions)
    fragments: list[pa.Array] = []
    rows: list[np.ndarray] = []
    for d in names:
        prefix = json_string_literals(pa.array([d], pa.string()))[0].as_py() + ":" if grouped else ""
        if d not in table.column_names:
            if grouped:
                continue
            frag, idx = pa.array(["[]"], pa.string()), np.zeros(n, dtype=np.int32)
        else:
            frag, idx = _dimension_pieces(table.column(d), prefix, grouped, list_delimiter)
        fragments.append(frag)
        rows.append(idx)
    pieces = np.stack(rows) if rows else np.zeros((0, n), dtype=np.int32)
    return fragments, pieces


def _dimension_pieces(col: pa.Array | pa.ChunkedArray, prefix: str, grouped: bool, list_delimiter: Optional[str]) -> tuple[pa.Array, np.ndarray]:
    if isinstance(col, pa.ChunkedArray):
        if pa.types.is_dictionary(col.type) and col.num_chunks > 1:
            # Each input block brings its own dictionary: render each, rather than unify them (which costs more).
            frags, indexes, base = [], [], 0
            for chunk in col.chunks:
                frag, idx = _dimension_pieces(chunk, prefix, grouped, list_delimiter)
                frags.append(frag)
                indexes.append(idx + base)
                base += len(frag)
            return pa.concat_arrays(frags), np.concatenate(indexes).astype(np.int32)
        col = col.combine_chunks()
    t = col.type
    none = "" if grouped else "[]"  # a row without a value
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if not is_list:
        encoded = col if pa.types.is_dictionary(t) else pc.dictionary_encode(col)
        values = java_strings(encoded.dictionary)
        if not (list_delimiter and pc.any(pc.match_substring(values, list_delimiter)).as_py()):
            arrays = pc.binary_join_element_wise("[", json_string_literals(values), "]", "")
            frag = pc.fill_null(pc.binary_join_element_wise(prefix, arrays, ""), none)
            frag = pa.concat_arrays([frag, pa.array([none], pa.string())])
            indices = encoded.indices.cast(pa.int32())
            if indices.null_count:
                indices = pc.fill_null(indices, len(frag) - 1)
            return frag, indices.to_numpy(zero_copy_only=False)
    lists = raw_value_lists(col, list_delimiter)
    if grouped:
        lists = _sorted_sets(lists)
    per_row = pc.binary_join_element_wise(prefix, _json_arrays(lists), "")
    if grouped:
        per_row = pc.if_else(pc.equal(pc.list_value_length(lists), 0), "", per_row)
    encoded = pc.dictionary_encode(per_row)
    return encoded.dictionary, encoded.indices.cast(pa.int32()).to_numpy(zero_copy_only=False)


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
    fragments, pieces = _pieces(table, dimensions, partition_dimensions, list_delimiter)
    parts = []
    for frag, idx in zip(fragments, pieces):
        taken = frag.take(pa.array(idx))
        parts.append(pc.if_else(pc.equal(taken, ""), "", pc.binary_join_element_wise(",", taken, "")))
    n = table.num_rows
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
    from druidflow.ingest.murmur import murmur3_32_joined  # numba: imported only by the runs that hash

    fragments, pieces = _pieces(table, dimensions, partition_dimensions, list_delimiter)
    if partition_dimensions:
        return murmur3_32_joined(None, b"", b"]", fragments, pieces)
    return murmur3_32_joined(np.asarray(pc.cast(times, pa.int64())), b",{", b"}]", fragments, pieces)


def buckets_of(hashes: np.ndarray, num_buckets: int) -> np.ndarray:
    """``abs(hash % numBuckets)`` with Java's remainder (the sign of the dividend)."""
    if num_buckets <= 1:
        return np.zeros(len(hashes), dtype=np.int64)
    return np.abs(np.fmod(hashes.astype(np.int64), num_buckets))
