"""Reading Arrow columns as Druid sees them: Java's string forms, epoch millis, numbers parsed from text.

Shared with :mod:`druidflow.filters`."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.intervals import MS_DAY

Batch = Union[pa.RecordBatch, pa.Table]
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def read_column(batch: Batch, name: str) -> Optional[pa.Array]:
    """Column ``name`` of a RecordBatch or Table as one Array, or None when there is no such column."""
    if name not in batch.schema.names:
        return None
    col = batch.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col


def java_strings(arr: pa.Array) -> pa.Array:
    """The strings Druid would see for a column's values (Java's ``String.valueOf``); nulls stay null."""
    t = arr.type
    if pa.types.is_dictionary(t):
        return java_strings(arr.dictionary_decode())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "true", "false")
    if pa.types.is_integer(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(t):
        return java_float_strings(arr if not pa.types.is_float16(t) else pc.cast(arr, pa.float32()))
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return pc.cast(epoch_millis(arr), pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_decimal(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.cast(arr, pa.string())
    raise TypeError(f"cannot read a {t} column as strings")


def epoch_millis(arr: pa.Array) -> pa.Array:
    """A timestamp or date column as int64 epoch milliseconds."""
    t = arr.type
    if pa.types.is_timestamp(t):
        if t.unit != "ms":
            arr = pc.cast(arr, pa.timestamp("ms", tz=t.tz), safe=False)
        return pc.cast(arr, pa.int64())
    if pa.types.is_date32(t):
        return pc.multiply(pc.cast(arr.view(pa.int32()), pa.int64()), MS_DAY)
    if pa.types.is_date64(t):
        return arr.view(pa.int64())
    raise TypeError(f"{t} is not a time type")


# Guava's Doubles.tryParse accepts a sign, decimals, an exponent, NaN and Infinity; no spaces.
_DOUBLE_TEXT = r"^[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$"
_LONG_TEXT = r"^[+-]?\d{1,18}$"


def parse_doubles(strings: pa.Array) -> pa.Array:
    """Strings as float64 the way Druid reads a string as a number; null where it is not one."""
    ok = pc.match_substring_regex(strings, _DOUBLE_TEXT)
    return pc.cast(pc.if_else(ok, strings, pa.scalar(None, strings.type)), pa.float64())


def parse_longs(strings: pa.Array) -> pa.Array:
    """Strings as int64 the way Druid's ``asLong`` does: integers exactly, decimals truncated; else null."""
    is_int = pc.match_substring_regex(strings, _LONG_TEXT)
    exact = pc.cast(pc.if_else(is_int, strings, pa.scalar(None, strings.type)), pa.int64())
    if pc.all(pc.or_kleene(is_int, pc.is_null(strings))).as_py() is not False:
        return exact
    return pc.coalesce(exact, double_to_long(parse_doubles(strings)))


def double_to_long(values: pa.Array) -> pa.Array:
    """Java's ``(long) d``: towards zero, NaN to 0, saturating at the long range."""
    arr = np.asarray(pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.trunc(np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0))
        big = arr >= 2.0**63
        small = arr <= -(2.0**63)
        out = np.where(big | small, 0.0, out).astype(np.int64)
    out[big] = I64_MAX
    out[small] = I64_MIN
    return pa.array(out, type=pa.int64(), mask=null_mask(values))


def null_mask(arr: pa.Array) -> Optional[np.ndarray]:
    return arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None


def java_float_strings(arr: pa.Array) -> pa.Array:
    """Java's ``Double.toString`` / ``Float.toString`` of a float column, vectorised.

    Arrow prints the same shortest round-trip digits as Java; only the layout differs. Java writes plain decimals
    for magnitudes in [1e-3, 1e7) (always with a fractional digit: ``1.0``) and ``d.dddE±n`` otherwise. The rows
    are grouped by decimal exponent (there are few) and each group laid out with whole-column string kernels.
    """
    n = len(arr)
    if n == 0:
        return pa.array([], pa.string())
    values = np.asarray(pc.fill_null(arr, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    text = pc.cast(arr, pa.string())
    parts = pc.extract_regex(text, r"^(?P<sign>-?)(?P<int>\d+)(?:\.(?P<frac>\d+))?(?:e(?P<exp>[+-]\d+))?$")
    sign, whole, frac, exp = (parts.field(k) for k in ("sign", "int", "frac", "exp"))
    all_digits = pc.binary_join_element_wise(whole, frac, "")
    stripped = pc.utf8_ltrim(all_digits, "0")
    lead = pc.subtract(pc.utf8_length(all_digits), pc.utf8_length(stripped))
    digits = pc.utf8_rtrim(stripped, "0")
    exp_val = pc.cast(pc.utf8_ltrim(pc.if_else(pc.equal(exp, ""), "0", exp), "+"), pa.int64())
    e_arr = pc.add(pc.subtract(pc.subtract(pc.utf8_length(whole), 1), lead), exp_val)
    e_np = np.asarray(pc.fill_null(e_arr, 0).to_numpy(zero_copy_only=False), dtype=np.int64)

    finite = valid & np.isfinite(values)
    zero = finite & (values == 0.0)
    normal = finite & ~zero
    pieces: list[pa.Array] = []
    rows: list[np.ndarray] = []

    def put(idx: np.ndarray, strings: pa.Array) -> None:
        pieces.append(strings)
        rows.append(idx)

    for e in np.unique(e_np[normal]):
        idx = np.flatnonzero(normal & (e_np == e))
        d = digits.take(idx)
        s = sign.take(idx)
        if 0 <= e < 7:
            head = pc.utf8_rpad(pc.utf8_slice_codeunits(d, 0, int(e) + 1), int(e) + 1, "0")
            tail = pc.utf8_slice_codeunits(d, int(e) + 1)
            tail = pc.if_else(pc.equal(tail, ""), "0", tail)
            put(idx, pc.binary_join_element_wise(s, head, ".", tail, ""))
        elif -3 <= e < 0:
            put(idx, pc.binary_join_element_wise(s, "0." + "0" * (-int(e) - 1), d, ""))
        else:
            rest = pc.utf8_slice_codeunits(d, 1)
            rest = pc.if_else(pc.equal(rest, ""), "0", rest)
            put(idx, pc.binary_join_element_wise(s, pc.utf8_slice_codeunits(d, 0, 1), ".", rest, f"E{int(e)}", ""))
    for mask, literal in (
        (zero & ~np.signbit(values), "0.0"),
        (zero & np.signbit(values), "-0.0"),
        (valid & np.isnan(values), "NaN"),
        (valid & np.isposinf(values), "Infinity"),
        (valid & np.isneginf(values), "-Infinity"),
    ):
        idx = np.flatnonzero(mask)
        if idx.size:
            put(idx, pa.repeat(pa.scalar(literal), idx.size))
    idx = np.flatnonzero(~valid)
    if idx.size:
        put(idx, pa.nulls(idx.size, pa.string()))
    order = np.concatenate(rows)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n, dtype=np.int64)
    return pa.concat_arrays([p.cast(pa.string()) for p in pieces]).take(inverse)
