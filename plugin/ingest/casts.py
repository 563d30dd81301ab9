"""Vectorised, failure-tolerant conversions of input columns: timestamps and numbers.

Each function returns the converted array plus a boolean mask of the values that were present but could not
be converted (they become null). The fast path is one Arrow cast over the whole column; only when Arrow
rejects the column do we fall back to masks that isolate the bad values, still vectorised.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.intervals import parse_instant

_INT_RE = r"^\s*[+-]?\d+\s*$"
_FLOAT_RE = r"^\s*[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[Nn]a[Nn]|[Ii]nf(inity)?)\s*$"
_DIGITS_RE = r"^\s*-?\d+\s*$"
_ZONED_RE = r"(Z|[+-]\d\d(:?\d\d)?)$"

_TS_MS_UTC = pa.timestamp("ms", tz="UTC")
_TS_US_UTC = pa.timestamp("us", tz="UTC")
_TS_US = pa.timestamp("us")


def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _failed(original: pa.Array, result: pa.Array) -> pa.Array:
    return pc.and_(pc.is_valid(original), pc.is_null(result))


def _is_stringish(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def to_number(col: pa.Array | pa.ChunkedArray, target: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Convert to int64/float64/float32; unconvertible values become null and are flagged in the mask."""
    arr = _as_array(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), target), pa.array(np.zeros(len(arr), dtype=bool))
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.int8())
    if not _is_stringish(arr.type) and not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        arr = arr.cast(pa.string()) if not pa.types.is_timestamp(arr.type) else arr.cast(pa.int64())
    if pa.types.is_integer(target) and pa.types.is_floating(arr.type):
        out = _float_to_long(arr)
        return out.cast(target), _failed(arr, out)
    try:
        if _is_stringish(arr.type):
            # Arrow's cast rejects surrounding whitespace, so a column it accepts untrimmed has none: trimming
            # (a copy of every string) is only needed when that first cast fails.
            try:
                out = pc.cast(arr, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                out = pc.cast(pc.utf8_trim_whitespace(arr), target)
        else:
            out = pc.cast(arr, target)
        return out, pa.array(np.zeros(len(arr), dtype=bool))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if not _is_stringish(arr.type):
        out = pc.cast(arr, target, safe=False)
        return out, _failed(arr, out)
    trimmed = pc.utf8_trim_whitespace(arr)
    if pa.types.is_integer(target):
        ok_int = pc.match_substring_regex(trimmed, _INT_RE)
        ok_float = pc.match_substring_regex(trimmed, _FLOAT_RE)
        as_int = _parse_longs(pc.if_else(ok_int, trimmed, None))
        as_float = pc.cast(pc.if_else(pc.and_not(ok_float, ok_int), trimmed, None), pa.float64())
        # Druid parses "1.5" in a long column as a double and truncates it.
        out = pc.coalesce(as_int, _float_to_long(as_float)).cast(target)
    else:
        ok = pc.match_substring_regex(trimmed, _FLOAT_RE)
        out = pc.cast(pc.if_else(ok, trimmed, None), target)
    return out, _failed(arr, out)


_LONG_LIMIT = 9.223372036854775808e18  # 2**63: the first double outside a long


def _float_to_long(arr: pa.Array) -> pa.Array:
    """Doubles truncated to longs; NaN, infinities and values outside the long range become null."""
    arr = arr.cast(pa.float64())
    fits = pc.and_(pc.is_finite(arr), pc.and_(pc.greater_equal(arr, -_LONG_LIMIT), pc.less(arr, _LONG_LIMIT)))
    return pc.cast(pc.if_else(fits, arr, None), pa.int64(), safe=False)


def _parse_longs(arr: pa.Array) -> pa.Array:
    """Integer text as longs; a value outside the long range (``9223372036854775808``) becomes null."""
    try:
        return pc.cast(arr, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Only integers of 19 or more digits can overflow; Python checks just those (rare), Arrow casts the rest.
    digits = pc.utf8_length(pc.utf8_ltrim(pc.utf8_trim_whitespace(arr), characters="+-0"))
    long_text = pc.fill_null(pc.greater_equal(digits, 19), False)
    short = pc.cast(pc.if_else(long_text, None, arr), pa.int64())
    idx = np.flatnonzero(long_text.to_numpy(zero_copy_only=False))
    values = np.zeros(len(arr), dtype=np.int64)
    valid = np.zeros(len(arr), dtype=bool)
    for i in idx:
        v = int(arr[int(i)].as_py())
        if -(2**63) <= v < 2**63:
            values[i], valid[i] = v, True
    return pc.coalesce(short, pa.array(values, mask=~valid))


def parse_timestamps(col: pa.Array | pa.ChunkedArray, fmt: str) -> pa.Array:
    """Epoch milliseconds (int64) for a timestamp column in Druid's ``timestampSpec.format``; failures are null."""
    arr = _as_array(col)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    fmt_l = (fmt or "auto").lower()
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        if pa.types.is_date(arr.type):
            arr = arr.cast(pa.timestamp("ms"))
        return _ts_to_ms(arr)
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.int64())
    if not _is_stringish(arr.type):
        num = arr.cast(pa.float64()) if pa.types.is_floating(arr.type) else arr.cast(pa.int64())
        return _scale_numeric(num, fmt_l)
    if fmt_l in ("posix", "millis", "micro", "nano", "ruby"):
        target = pa.float64() if fmt_l in ("posix", "ruby") else pa.int64()
        num, _ = to_number(arr, target)
        return _scale_numeric(num, fmt_l)
    if fmt_l == "auto":
        digits = pc.match_substring_regex(arr, _DIGITS_RE)
        if pc.any(digits).as_py():
            millis, _ = to_number(pc.if_else(digits, arr, None), pa.int64())
            iso = _parse_iso(pc.if_else(digits, None, arr))
            return pc.coalesce(millis, iso)
        return _parse_iso(arr)
    if fmt_l == "iso":
        return _parse_iso(arr)
    # A Joda-Time pattern: parsed by the spec module, which also handles fractions of a second.
    from druidflow.specs.timestamp import parse_joda

    return parse_joda(arr, fmt)


def _scale_numeric(num: pa.Array, fmt: str) -> pa.Array:
    if fmt in ("posix", "ruby"):
        return pc.cast(pc.floor(pc.multiply(num.cast(pa.float64()), 1000.0)), pa.int64(), safe=False)
    if fmt == "micro":
        return pc.cast(pc.floor(pc.divide(num.cast(pa.float64()), 1000.0)), pa.int64(), safe=False)
    if fmt == "nano":
        return pc.cast(pc.floor(pc.divide(num.cast(pa.float64()), 1_000_000.0)), pa.int64(), safe=False)
    return pc.cast(num, pa.int64(), safe=False)


def _ts_to_ms(arr: pa.Array) -> pa.Array:
    unit = arr.type.unit
    raw = arr.cast(pa.timestamp(unit, tz=arr.type.tz)).view(pa.int64()) if arr.type.tz else arr.view(pa.int64())
    if unit == "ms":
        return raw
    if unit == "s":
        return pc.multiply(raw, 1000)
    factor = {"us": 1000, "ns": 1_000_000}[unit]
    values = raw.to_numpy(zero_copy_only=False)
    mask = pc.is_null(raw).to_numpy(zero_copy_only=False)
    return pa.array(np.floor_divide(np.nan_to_num(values, nan=0).astype(np.int64), factor), mask=mask)


def _parse_iso(arr: pa.Array) -> pa.Array:
    """ISO-8601 strings to epoch ms; naive values are UTC. Vectorised, with a per-value fallback for oddities."""
    for target in (_TS_MS_UTC, _TS_US_UTC):
        # Millisecond precision first (Druid's own rendering): the cast result is the answer, no rescaling.
        try:
            return _ts_to_ms(pc.cast(arr, target))
        except pa.ArrowInvalid:
            continue
    zoned = pc.fill_null(pc.match_substring_regex(arr, _ZONED_RE), False)
    out_zoned = _try_cast(pc.if_else(zoned, arr, None), _TS_US_UTC)
    out_naive = _try_cast(pc.if_else(zoned, None, arr), _TS_US)
    if out_zoned is not None and out_naive is not None:
        return pc.coalesce(_ts_to_ms(out_zoned), _ts_to_ms(out_naive))
    return _parse_iso_slow(arr)


def _try_cast(arr: pa.Array, target: pa.DataType) -> Optional[pa.Array]:
    try:
        return pc.cast(arr, target)
    except pa.ArrowInvalid:
        return None


def _parse_iso_slow(arr: pa.Array) -> pa.Array:
    # Only reached when a column mixes forms Arrow's ISO parser rejects (e.g. "2024-01-01 10:00Z");
    # the bad rows this finds are reported as unparseable, so the per-value loop is bounded by the batch.
    out: list[Optional[int]] = []
    for v in arr.to_pylist():
        if v is None:
            out.append(None)
            continue
        try:
            out.append(parse_instant(v))
        except Exception:
            out.append(None)
    return pa.array(out, pa.int64())
