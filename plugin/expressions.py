"""Druid's native expression language, parsed once and evaluated column-at-a-time on Arrow data.

Used by ``transformSpec`` expression transforms, the ``expression`` filter and aggregators' ``expression``.
:func:`compile_expression` parses the text (raising :class:`~druidflow.exceptions.SpecError` naming the expression
and the position of a syntax error); :meth:`Expression.evaluate` computes it over a ``pyarrow.RecordBatch`` or
``Table`` with ``pyarrow.compute`` and numpy, never row by row.

Syntax
------
* Literals: longs ``42``, doubles ``1.5`` / ``2.`` / ``1e3`` / ``NaN`` / ``Infinity``, strings ``'it\\'s'`` (escapes
  ``\\' \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX``), and ``null``.
* Identifiers name columns: bare (``[_$a-zA-Z][_$a-zA-Z0-9]*``) or double-quoted (``"page views"``). ``__time`` is
  the row timestamp in epoch milliseconds. A column the batch lacks reads as null.
* Operators, tightest first (the precedence of Druid's grammar): unary ``-`` and ``!``; ``^`` (right-associative,
  so ``-2^2`` is 4 and ``2^3^2`` is 512); ``* / %``; ``+ -``; ``< <= > >= == !=``; ``&& ||`` (one level,
  left-associative, so ``a || b && c`` is ``(a || b) && c``). Parentheses group. ``name(args)`` calls a function.

Types and nulls (Druid's SQL-compatible mode)
---------------------------------------------
Values are LONG (int64), DOUBLE (float64) or STRING; integer, boolean and timestamp columns read as LONG,
floating columns as DOUBLE, string and dictionary columns as STRING. Multi-value (list) columns are not supported.

* Arithmetic on two LONGs is LONG (wrapping on overflow, as Java's ``long``); otherwise DOUBLE, with strings
  parsed as numbers (a string that is not a number is null). ``/`` on LONGs divides towards zero. ``%`` is Java's
  remainder (the sign of the dividend). ``^`` is a power (LONG when both are LONG).
* Division or remainder of LONGs by zero gives **null** (Druid's row evaluator throws and the row fails; a
  vectorised engine cannot fail one row, and null is what Druid's ``safe_divide`` gives). DOUBLE division by
  zero is IEEE: ``Infinity`` or ``NaN``. A negative LONG exponent gives null.
* ``+`` on two STRINGs concatenates; ``- * / % ^`` on two STRINGs is an error, as in Druid.
* Any operator with a null operand gives null, except ``&&`` / ``||``, which use three-valued logic
  (``null && false`` is false, ``null || true`` is true).
* Comparisons compare two STRINGs as strings and anything else as numbers; they and ``&& || !`` give LONG 1 or 0.
* Truth: a number is true when it is greater than zero; a string when it equals ``true`` ignoring case.
* A DOUBLE becomes a string the way Java prints it: ``1.0``, ``0.001``, ``1.0E7``, ``1.234E-5``, ``NaN``.
* A unary minus on a string negates it as a number (Druid raises instead).
* Functions whose result may come from several arguments (``if``, ``nvl``, ``case_*``, ``greatest``, ``least``)
  give STRING if any candidate is a STRING, else DOUBLE if any is a DOUBLE, else LONG.
* String positions and lengths count Unicode code points (Druid counts UTF-16 units; they differ only for
  characters outside the Basic Multilingual Plane, such as emoji).

Functions
---------
Arguments marked *literal* must be written as literals (they are compiled once). Unless stated otherwise a null
argument gives a null result.

Strings
  * ``concat(x, ...)``: the arguments as strings, joined; null if any is null.
  * ``upper(s)``, ``lower(s)``: case conversion.
  * ``strlen(s)``: length (LONG).
  * ``substring(s, index, length)``: from the 0-based *literal* ``index``, at most *literal* ``length``
    characters (a negative length: to the end); null when ``index`` is at or past the end.
  * ``replace(s, pattern, replacement)``: every occurrence of the *literal* text ``pattern`` replaced.
  * ``trim(s[, chars])``, ``ltrim(s[, chars])``, ``rtrim(s[, chars])``: strip the *literal* ``chars``
    (default: a space) from both ends, the start, the end.
  * ``left(s, n)``, ``right(s, n)``: the first / last *literal* ``n`` characters.
Numbers
  * ``abs(x)``: absolute value, same type. Math functions give null for a string argument, as Druid's do.
  * ``floor(x)``, ``ceil(x)``: DOUBLE floor / ceiling.
  * ``round(x[, scale])``: half away from zero at the *literal* ``scale`` (default 0; negative rounds to tens,
    hundreds...), on the decimal digits (``round(2.675, 2)`` is 2.68), same type; NaN gives 0.0 and the
    infinities the largest finite doubles, as in Druid.
  * ``sqrt(x)``, ``log(x)`` (natural), ``exp(x)``, ``pow(x, y)``: DOUBLE.
  * ``greatest(x, ...)``, ``least(x, ...)``: the largest / smallest, skipping nulls (null if all are null).
Conditionals
  * ``if(cond, a, b)``: ``a`` where ``cond`` is true, else ``b`` (a null ``cond`` is false).
  * ``nvl(x, y)``: ``x``, or ``y`` where ``x`` is null.
  * ``isnull(x)``, ``notnull(x)``: LONG 1 or 0.
  * ``case_searched(c1, v1, ..., [else])``: the ``v`` of the first true ``c``, else ``else`` (or null).
  * ``case_simple(x, k1, v1, ..., [else])``: the ``v`` of the first ``k`` equal to ``x`` (compared as ``==``).
  * ``cast(x, type)``: to the *literal* ``'LONG'``, ``'DOUBLE'`` or ``'STRING'``; a string that is not a number
    gives null; a DOUBLE becomes a LONG by truncation towards zero.
Time (``t`` is epoch milliseconds, such as ``__time``; time zones are IANA ids or offsets like ``'+05:30'``)
  * ``timestamp_floor(t, period[, origin[, tz]])``: start of the bucket of the *literal* ISO period (``'PT1H'``,
    ``'P1D'``) with the *literal* origin and time zone, as a period granularity (LONG).
  * ``timestamp_extract(t, unit[, tz])``: the *literal* unit EPOCH (seconds), MILLISECOND, SECOND, MINUTE, HOUR,
    DAY (of month), DOW / ISODOW (1 = Monday), DOY, WEEK (ISO), MONTH, QUARTER, YEAR, ISOYEAR, DECADE (LONG), or
    CENTURY, MILLENNIUM (DOUBLE), in the *literal* time zone.
  * ``timestamp_parse(s[, pattern[, tz]])``: epoch ms of ``s`` read with the *literal* Joda pattern, or as ISO-8601
    (``T`` or a space between date and time) when none; wall-clock times are in ``tz`` (default UTC) unless the
    text carries an offset. Unparseable text, impossible dates and times skipped by a DST change give null.
  * ``timestamp_format(t[, pattern[, tz]])``: ``t`` printed with the *literal* Joda pattern in ``tz``, or as
    ``2024-01-01T00:00:00.000Z`` when no pattern is given.
Matching (LONG 1 or 0; a null string gives 0)
  * ``like(s, pattern[, escape])``: SQL LIKE with the *literal* pattern (``%`` any run, ``_`` one character)
    and optional *literal* one-character escape.
  * ``regexp_like(s, pattern)``: the *literal* regular expression (RE2 syntax) matches somewhere in ``s``.
  * ``contains_string(s, text)``: ``s`` contains the *literal* ``text`` (case-sensitive).

Joda patterns supported by ``timestamp_parse`` / ``timestamp_format``: ``y``/``Y`` (year; ``yy`` two-digit),
``M`` (``MM``, ``MMM`` Jan, ``MMMM`` January), ``d``, ``H``, ``h``/``K``/``k`` with ``a`` (AM/PM), ``m``, ``s``,
``S`` (fraction), ``E`` (day name), ``Z``/``ZZ`` (offset) and ``ZZZ`` (zone id), literals in single quotes; for
formatting also ``D`` (day of year), ``e`` (day of week), ``w`` (week of week-year) and ``x`` (week-year).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import SpecError
from druidflow.granularity import UTC, Granularity, TimeZone, civil_from_days_array, days_from_civil_array, floor_div
from druidflow.intervals import MS_DAY, MS_HOUR, MS_MINUTE, MS_SECOND

LONG, DOUBLE, STRING, NULL = "LONG", "DOUBLE", "STRING", "NULL"
_ARROW_TYPE = {LONG: pa.int64(), DOUBLE: pa.float64(), STRING: pa.string(), NULL: pa.null()}
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

Batch = Union[pa.RecordBatch, pa.Table]
Data = Union[pa.Array, pa.Scalar]

# ===============================================================================================================
# Reading columns and Druid's conversions (shared with druidflow.filters)
# ===============================================================================================================


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
        return _java_float_strings(arr if not pa.types.is_float16(t) else pc.cast(arr, pa.float32()))
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
    return pc.coalesce(exact, _double_to_long(parse_doubles(strings)))


def _double_to_long(values: pa.Array) -> pa.Array:
    """Java's ``(long) d``: towards zero, NaN to 0, saturating at the long range."""
    arr = np.asarray(pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.trunc(np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0))
        big = arr >= 2.0**63
        small = arr <= -(2.0**63)
        out = np.where(big | small, 0.0, out).astype(np.int64)
    out[big] = _I64_MAX
    out[small] = _I64_MIN
    return pa.array(out, type=pa.int64(), mask=_null_mask(values))


def _null_mask(arr: pa.Array) -> Optional[np.ndarray]:
    return arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None


def _java_float_strings(arr: pa.Array) -> pa.Array:
    """Java's ``Double.toString`` / ``Float.toString`` of a float column, vectorised.

    Arrow prints the same shortest round-trip digits as Java; only the layout differs. Java writes plain decimals
    for magnitudes in [1e-3, 1e7) (always with a fractional digit: ``1.0``) and ``d.dddE±n`` otherwise. The rows
    are grouped by decimal exponent (there are few) and each group laid out with whole-column string kernels.
    """
    n = len(arr)
    if n == 0:
        return pa.array([], pa.string())
    values = np.asarray(pc.fill_null(arr, 0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
    valid = ~_null_mask(arr) if arr.null_count else np.ones(n, dtype=bool)
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


# ===============================================================================================================
# Values
# ===============================================================================================================


@dataclass(frozen=True)
class _Val:
    """A column (or a constant) with its Druid type."""

    data: Data
    kind: str


def _null(kind: str) -> _Val:
    return _Val(pa.scalar(None, _ARROW_TYPE[kind]), kind)


def _on_array(fn: Callable[[pa.Array], pa.Array], data: Data) -> Data:
    """Apply an array-only function to an array or a scalar (a scalar goes through a one-row array)."""
    if isinstance(data, pa.Scalar):
        return fn(pa.array([data.as_py()], type=data.type))[0]
    return fn(data)


def _from_arrow(arr: pa.Array, name: str, ctx: _Ctx) -> _Val:
    t = arr.type
    if pa.types.is_dictionary(t):
        return _from_arrow(arr.dictionary_decode(), name, ctx)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _Val(arr if pa.types.is_string(t) else pc.cast(arr, pa.string()), STRING)
    if pa.types.is_integer(t):
        return _Val(pc.cast(arr, pa.int64()) if t != pa.int64() else arr, LONG)
    if pa.types.is_boolean(t):
        return _Val(pc.cast(arr, pa.int64()), LONG)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _Val(pc.cast(arr, pa.float64()) if t != pa.float64() else arr, DOUBLE)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _Val(epoch_millis(arr), LONG)
    if pa.types.is_null(t):
        return _null(NULL)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return _Val(pc.cast(arr, pa.string()), STRING)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        raise ctx.error(None, f"column {name!r} is multi-value; expressions over multi-value columns are not supported")
    raise ctx.error(None, f"column {name!r} has type {t}, which expressions cannot read")


def _as_double(v: _Val) -> Data:
    if v.kind == DOUBLE:
        return v.data
    if v.kind == LONG:
        return pc.cast(v.data, pa.float64())
    if v.kind == STRING:
        return _on_array(parse_doubles, v.data)
    return pa.scalar(None, pa.float64())


def _as_long(v: _Val) -> Data:
    if v.kind == LONG:
        return v.data
    if v.kind == DOUBLE:
        return _on_array(_double_to_long, v.data)
    if v.kind == STRING:
        return _on_array(parse_longs, v.data)
    return pa.scalar(None, pa.int64())


def _as_string(v: _Val) -> Data:
    if v.kind == STRING:
        return v.data
    if v.kind == LONG:
        return pc.cast(v.data, pa.string())
    if v.kind == DOUBLE:
        return _on_array(_java_float_strings, v.data)
    return pa.scalar(None, pa.string())


def _as_kind(v: _Val, kind: str) -> Data:
    return {LONG: _as_long, DOUBLE: _as_double, STRING: _as_string}[kind](v) if kind != NULL else v.data


def _truth(v: _Val) -> Data:
    """Druid's ``asBoolean`` (numbers: > 0; strings: equal to 'true' ignoring case), keeping nulls."""
    if v.kind in (LONG, DOUBLE):
        return pc.greater(v.data, 0)
    if v.kind == STRING:
        return pc.equal(pc.utf8_lower(v.data), "true")
    return pa.scalar(None, pa.bool_())


def _bool_to_long(data: Data) -> _Val:
    return _Val(pc.cast(data, pa.int64()), LONG)


def _merge_kinds(kinds: list[str], start: Optional[str] = None) -> str:
    """Druid's ``ExpressionTypeConversion.function`` folded over candidate types; nulls have no type."""
    ks = [k for k in kinds if k != NULL] + ([start] if start else [])
    if not ks:
        return NULL
    if STRING in ks:
        return STRING
    return DOUBLE if DOUBLE in ks else LONG


def _numpy(data: Data, n: int, dtype: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(values, null_mask)`` of an array or broadcast scalar."""
    if isinstance(data, pa.Scalar):
        if not data.is_valid:
            return np.zeros(n, dtype=dtype), np.ones(n, dtype=bool)
        return np.full(n, data.as_py(), dtype=dtype), None
    fill = 0 if np.dtype(dtype).kind in "iu" else 0.0
    return np.asarray(pc.fill_null(data, fill).to_numpy(zero_copy_only=False), dtype=dtype), _null_mask(data)


def _or_masks(*masks: Optional[np.ndarray]) -> Optional[np.ndarray]:
    out = None
    for m in masks:
        if m is not None:
            out = m.copy() if out is None else out | m
    return out


# ===============================================================================================================
# Syntax: tokens, parser, tree
# ===============================================================================================================

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<qident>"(?:[^"\\]|\\.)*")
  | (?P<ident>[_$a-zA-Z][_$a-zA-Z0-9]*)
  | (?P<op><=|>=|==|!=|&&|\|\||[-+*/%^<>!(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

# Binary operators: (left binding power, right binding power); equal powers make ^ right-associative.
_BINARY = {
    "||": (10, 11), "&&": (10, 11),
    "<": (20, 21), "<=": (20, 21), ">": (20, 21), ">=": (20, 21), "==": (20, 21), "!=": (20, 21),
    "+": (30, 31), "-": (30, 31),
    "*": (40, 41), "/": (40, 41), "%": (40, 41),
    "^": (50, 50),
}
_UNARY_BP = 60
# How deep parentheses, unary operators, function arguments and right operands may nest. A chain of
# left-associative operators (``a + b + c + ...``, any length) does not nest: it is parsed and evaluated in a loop.
MAX_EXPRESSION_DEPTH = 100
_COMPARISONS = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal, "==": pc.equal, "!=": pc.not_equal}


@dataclass(frozen=True)
class _Token:
    kind: str  # number | string | ident | qident | op | end
    text: str
    pos: int
    value: Any = None


class _Syntax:
    """Turns expression text into a tree, raising SpecError at the first problem with its position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize()
        self.i = 0
        self.depth = 0

    def error(self, pos: int, reason: str) -> SpecError:
        return SpecError("", self.text, f"{reason} at position {pos}")

    def _tokenize(self) -> list[_Token]:
        out: list[_Token] = []
        pos, text = 0, self.text
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                ch = text[pos]
                if ch in "'\"":
                    raise self.error(pos, f"unterminated {'string literal' if ch == chr(39) else 'quoted identifier'}")
                if ch in "&|~[]":
                    raise self.error(pos, f"unsupported operator {ch!r} (bitwise operators and arrays are not supported)")
                raise self.error(pos, f"unexpected character {ch!r}")
            kind = m.lastgroup
            tok = m.group()
            if kind == "number":
                value: Any = float(tok) if any(c in tok for c in ".eE") else int(tok)
                out.append(_Token("number", tok, pos, value))
            elif kind == "string":
                out.append(_Token("string", tok, pos, self._unescape(tok[1:-1], pos + 1)))
            elif kind == "qident":
                out.append(_Token("ident", tok, pos, self._unescape(tok[1:-1], pos + 1)))
            elif kind == "ident":
                out.append(_Token("ident", tok, pos, tok))
            elif kind == "op":
                out.append(_Token("op", tok, pos))
            pos = m.end()
        out.append(_Token("end", "", len(text)))
        return out

    def _unescape(self, body: str, start: int) -> str:
        if "\\" not in body:
            return body
        out, i = [], 0
        while i < len(body):
            c = body[i]
            if c != "\\":
                out.append(c)
                i += 1
                continue
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
            else:
                raise self.error(start + i, f"invalid escape '\\{nxt}'")
        return "".join(out)

    # -- Pratt parser -----------------------------------------------------------------------------------------------

    def parse(self) -> _Node:
        node = self.expression(0)
        tok = self.tokens[self.i]
        if tok.kind != "end":
            raise self.error(tok.pos, f"unexpected {self.describe(tok)}")
        return node

    def describe(self, tok: _Token) -> str:
        return "end of expression" if tok.kind == "end" else repr(tok.text)

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Token:
        tok = self.take()
        if tok.kind != "op" or tok.text != text:
            raise self.error(tok.pos, f"expected {text!r} but found {self.describe(tok)}")
        return tok

    def expression(self, min_bp: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            tok = self.tokens[self.i]
            raise self.error(tok.pos, f"the expression nests deeper than {MAX_EXPRESSION_DEPTH} levels")
        try:
            left = self.prefix()
            while True:
                tok = self.tokens[self.i]
                if tok.kind != "op" or tok.text not in _BINARY:
                    return left
                lbp, rbp = _BINARY[tok.text]
                if lbp < min_bp:
                    return left
                self.i += 1
                left = _Binary(tok.pos, tok.text, left, self.expression(rbp))
        finally:
            self.depth -= 1

    def prefix(self) -> _Node:
        tok = self.take()
        if tok.kind == "number":
            if isinstance(tok.value, int):
                return _Literal(tok.pos, tok.value, LONG)
            return _Literal(tok.pos, tok.value, DOUBLE)
        if tok.kind == "string":
            return _Literal(tok.pos, tok.value, STRING)
        if tok.kind == "ident":
            bare = not tok.text.startswith('"')
            nxt = self.tokens[self.i]
            if bare and nxt.kind == "op" and nxt.text == "(":
                return self.call(tok)
            if bare and tok.text == "null":
                return _Literal(tok.pos, None, NULL)
            if bare and tok.text in ("NaN", "Infinity"):
                return _Literal(tok.pos, float(tok.text.lower().replace("infinity", "inf")), DOUBLE)
            return _Identifier(tok.pos, tok.value)
        if tok.kind == "op" and tok.text == "(":
            node = self.expression(0)
            self.expect(")")
            return node
        if tok.kind == "op" and tok.text in ("-", "!"):
            nxt = self.tokens[self.i]
            if tok.text == "-" and nxt.kind == "number" and nxt.value == 2**63:
                self.i += 1
                return _Literal(tok.pos, -(2**63), LONG)  # the one LONG literal written beyond the positive range
            operand = self.expression(_UNARY_BP)
            if tok.text == "-" and isinstance(operand, _Literal) and operand.kind in (LONG, DOUBLE):
                return _Literal(tok.pos, -operand.value, operand.kind)
            return _Unary(tok.pos, tok.text, operand)
        raise self.error(tok.pos, f"unexpected {self.describe(tok)}")

    def call(self, name_tok: _Token) -> _Node:
        self.expect("(")
        args: list[_Node] = []
        if not (self.tokens[self.i].kind == "op" and self.tokens[self.i].text == ")"):
            while True:
                args.append(self.expression(0))
                tok = self.take()
                if tok.kind == "op" and tok.text == ")":
                    break
                if not (tok.kind == "op" and tok.text == ","):
                    raise self.error(tok.pos, f"expected ',' or ')' but found {self.describe(tok)}")
        else:
            self.take()
        fn = _FUNCTIONS.get(name_tok.text.lower())
        if fn is None:
            raise self.error(name_tok.pos, f"unknown function {name_tok.text!r}")
        node = _Call(name_tok.pos, fn.name, tuple(args))
        fn.check(node, self)
        return node


class _Node:
    pos: int

    def evaluate(self, ctx: _Ctx) -> _Val:
        raise NotImplementedError

    def columns(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class _Literal(_Node):
    pos: int
    value: Any
    kind: str

    def __post_init__(self) -> None:
        if self.kind == LONG and not (_I64_MIN <= self.value <= _I64_MAX):
            raise SpecError("", self.value, f"number out of the LONG range at position {self.pos}")

    def evaluate(self, ctx: _Ctx) -> _Val:
        return _Val(pa.scalar(self.value, _ARROW_TYPE[self.kind]), self.kind)


@dataclass(frozen=True)
class _Identifier(_Node):
    pos: int
    name: str

    def evaluate(self, ctx: _Ctx) -> _Val:
        return ctx.column(self.name)

    def columns(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True)
class _Unary(_Node):
    pos: int
    op: str
    operand: _Node

    def columns(self) -> set[str]:
        return self.operand.columns()

    def evaluate(self, ctx: _Ctx) -> _Val:
        v = self.operand.evaluate(ctx)
        if v.kind == NULL:
            return _null(LONG) if self.op == "!" else v
        if self.op == "!":
            return _bool_to_long(pc.invert(_truth(v)))
        if v.kind == STRING:
            v = _Val(_as_double(v), DOUBLE)
        return _Val(pc.negate(v.data), v.kind)


@dataclass(frozen=True)
class _Binary(_Node):
    pos: int
    op: str
    left: _Node
    right: _Node

    def spine(self) -> tuple[_Node, list[_Binary]]:
        """The leftmost operand of a left-deep chain and the chain's operators, innermost first (no recursion)."""
        chain: list[_Binary] = []
        node: _Node = self
        while isinstance(node, _Binary):
            chain.append(node)
            node = node.left
        chain.reverse()
        return node, chain

    def columns(self) -> set[str]:
        first, chain = self.spine()
        out = set(first.columns())
        for b in chain:
            out |= b.right.columns()
        return out

    def evaluate(self, ctx: _Ctx) -> _Val:
        first, chain = self.spine()
        acc = first.evaluate(ctx)
        for b in chain:
            acc = b.combine(acc, b.right.evaluate(ctx), ctx)
        return acc

    def combine(self, a: _Val, b: _Val, ctx: _Ctx) -> _Val:
        if self.op in ("&&", "||"):
            logic = pc.and_kleene if self.op == "&&" else pc.or_kleene
            return _bool_to_long(logic(_truth(a), _truth(b)))
        if self.op in _COMPARISONS:
            return _compare(self.op, a, b)
        return self._arithmetic(a, b, ctx)

    def _arithmetic(self, a: _Val, b: _Val, ctx: _Ctx) -> _Val:
        op = self.op
        if a.kind == STRING and b.kind == STRING:
            if op == "+":
                return _Val(pc.binary_join_element_wise(a.data, b.data, ""), STRING)
            raise ctx.error(self, f"operator {op!r} is not supported on two strings")
        if NULL in (a.kind, b.kind):
            other = b.kind if a.kind == NULL else a.kind
            if other == NULL:
                return _null(NULL)
            return _null(STRING if (other == STRING and op == "+") else LONG if other == LONG else DOUBLE)
        if a.kind == LONG and b.kind == LONG:
            return _Val(_long_op(op, a.data, b.data, ctx.n), LONG)
        return _Val(_double_op(op, _as_double(a), _as_double(b), ctx.n), DOUBLE)


def _compare(op: str, a: _Val, b: _Val) -> _Val:
    if NULL in (a.kind, b.kind):
        return _null(LONG)
    if a.kind == STRING and b.kind == STRING:
        return _bool_to_long(_COMPARISONS[op](a.data, b.data))
    if a.kind == LONG and b.kind == LONG:
        return _bool_to_long(_COMPARISONS[op](a.data, b.data))
    return _bool_to_long(_COMPARISONS[op](_as_double(a), _as_double(b)))


def _long_op(op: str, x: Data, y: Data, n: int) -> Data:
    if op == "+":
        return pc.add(x, y)
    if op == "-":
        return pc.subtract(x, y)
    if op == "*":
        return pc.multiply(x, y)
    if op == "/":
        return pc.divide(x, _nonzero(y))
    if op == "^":
        ok = pc.greater_equal(y, 0)
        return pc.power(x, pc.if_else(ok, y, pa.scalar(None, pa.int64())))
    # % : Java's remainder has the dividend's sign, like C's fmod
    if isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar):
        n = 1
    xv, xm = _numpy(x, n, np.int64)
    yv, ym = _numpy(y, n, np.int64)
    zero = yv == 0
    out = np.fmod(xv, np.where(zero, 1, yv))
    result = pa.array(out, type=pa.int64(), mask=_or_masks(xm, ym, zero))
    return result[0] if n == 1 and isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar) else result


def _nonzero(y: Data) -> Data:
    return pc.if_else(pc.equal(y, 0), pa.scalar(None, pa.int64()), y)


def _double_op(op: str, x: Data, y: Data, n: int) -> Data:
    if op == "+":
        return pc.add(x, y)
    if op == "-":
        return pc.subtract(x, y)
    if op == "*":
        return pc.multiply(x, y)
    if op == "/":
        return pc.divide(x, y)
    if op == "^":
        return pc.power(x, y)
    scalar = isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar)
    m = 1 if scalar else n
    xv, xm = _numpy(x, m, np.float64)
    yv, ym = _numpy(y, m, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.fmod(xv, yv)
    result = pa.array(out, type=pa.float64(), mask=_or_masks(xm, ym))
    return result[0] if scalar else result


@dataclass(frozen=True)
class _Call(_Node):
    pos: int
    name: str
    args: tuple

    def columns(self) -> set[str]:
        out: set[str] = set()
        for a in self.args:
            out |= a.columns()
        return out

    def evaluate(self, ctx: _Ctx) -> _Val:
        return _FUNCTIONS[self.name].impl(self, ctx)

    def literal(self, i: int) -> Any:
        return self.args[i].value  # checked at compile time to be a _Literal


# ===============================================================================================================
# Evaluation context and the compiled expression
# ===============================================================================================================


class _Ctx:
    def __init__(self, batch: Batch, expression: Expression) -> None:
        self.batch = batch
        self.n = batch.num_rows
        self.expression = expression
        self._columns: dict[str, _Val] = {}

    def column(self, name: str) -> _Val:
        v = self._columns.get(name)
        if v is None:
            arr = read_column(self.batch, name)
            v = _null(NULL) if arr is None else _from_arrow(arr, name, self)
            self._columns[name] = v
        return v

    def error(self, node: Optional[_Node], reason: str) -> SpecError:
        where = f" at position {node.pos}" if node is not None else ""
        return SpecError(self.expression.path, self.expression.text, reason + where)

    def array(self, v: _Val, kind: Optional[str] = None) -> pa.Array:
        """``v`` as a full-length Arrow array of ``kind`` (default its own)."""
        kind = kind or v.kind
        data = _as_kind(v, kind) if kind != v.kind else v.data
        if kind == NULL:
            return pa.nulls(self.n, pa.string())
        if isinstance(data, pa.Scalar):
            return pa.repeat(data, self.n) if data.is_valid else pa.nulls(self.n, _ARROW_TYPE[kind])
        return data


@dataclass(frozen=True)
class Expression:
    """A compiled Druid expression. ``evaluate`` is safe to call from several threads."""

    text: str
    tree: _Node
    path: str = ""

    @property
    def required_columns(self) -> frozenset[str]:
        """The columns the expression reads."""
        return frozenset(self.tree.columns())

    def evaluate(self, batch: Batch) -> pa.Array:
        """The expression's value for every row: int64, float64 or string (all-null string if untyped)."""
        ctx = _Ctx(batch, self)
        try:
            return ctx.array(self.tree.evaluate(ctx))
        except pa.ArrowInvalid as exc:
            raise SpecError(self.path, self.text, f"cannot be evaluated: {exc}") from None

    def evaluate_truth(self, batch: Batch) -> pa.Array:
        """The value as Druid's truth (numbers > 0, strings equal to 'true'); null where the value is null."""
        ctx = _Ctx(batch, self)
        data = _truth(self.tree.evaluate(ctx))
        if isinstance(data, pa.Scalar):
            return pa.repeat(data, ctx.n) if data.is_valid else pa.nulls(ctx.n, pa.bool_())
        return data

    def __str__(self) -> str:
        return self.text


def compile_expression(text: str, path: str = "") -> Expression:
    """Parse a Druid expression; a SpecError at ``path`` names the expression and the position of any problem."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(path, text, "an expression must be a non-empty string")
    try:
        tree = _parse(text)
    except SpecError as exc:
        raise SpecError(path, text, exc.reason) from None
    return Expression(text, tree, path)


@lru_cache(maxsize=1024)
def _parse(text: str) -> _Node:
    return _Syntax(text).parse()


# ===============================================================================================================
# Functions
# ===============================================================================================================


@dataclass(frozen=True)
class _Function:
    name: str
    impl: Callable[[_Call, _Ctx], _Val]
    min_args: int
    max_args: Optional[int]
    literals: tuple[int, ...]
    validate: Optional[Callable[[_Call], None]]

    def check(self, call: _Call, syntax: _Syntax) -> None:
        n = len(call.args)
        if n < self.min_args or (self.max_args is not None and n > self.max_args):
            want = (
                f"{self.min_args}" if self.min_args == self.max_args
                else f"at least {self.min_args}" if self.max_args is None
                else f"{self.min_args} to {self.max_args}"
            )
            raise syntax.error(call.pos, f"function {self.name!r} takes {want} argument{'s' if want != '1' else ''}, not {n}")
        for i in self.literals:
            if i < n and not isinstance(call.args[i], _Literal):
                raise syntax.error(call.args[i].pos, f"argument {i + 1} of {self.name!r} must be a literal")
        if self.validate is not None:
            try:
                self.validate(call)
            except SpecError as exc:
                raise syntax.error(call.pos, f"{self.name}: {exc.reason}") from None


_FUNCTIONS: dict[str, _Function] = {}


def _function(name: str, min_args: int, max_args: Optional[int] = -1, literals: tuple[int, ...] = (),
              validate: Optional[Callable[[_Call], None]] = None):
    def register(impl: Callable[[_Call, _Ctx], _Val]) -> Callable[[_Call, _Ctx], _Val]:
        _FUNCTIONS[name] = _Function(name, impl, min_args, min_args if max_args == -1 else max_args, literals, validate)
        return impl

    return register


def _literal_check(i: int, kinds: tuple[str, ...], what: str, optional: bool = True) -> Callable[[_Call], None]:
    def check(call: _Call) -> None:
        if i < len(call.args):
            lit = call.args[i]
            if lit.kind not in kinds and not (optional and lit.kind == NULL):
                raise SpecError("", lit.value, f"argument {i + 1} must be {what}")

    return check


def _checks(*checks: Callable[[_Call], None]) -> Callable[[_Call], None]:
    def check(call: _Call) -> None:
        for c in checks:
            c(call)

    return check


# -- strings ------------------------------------------------------------------------------------------------------


@_function("concat", 0, None)
def _concat(call: _Call, ctx: _Ctx) -> _Val:
    if not call.args:
        return _null(STRING)
    parts = [_as_string(a.evaluate(ctx)) for a in call.args]
    if len(parts) == 1:
        return _Val(parts[0], STRING)
    return _Val(pc.binary_join_element_wise(*parts, ""), STRING)


@_function("upper", 1)
def _upper(call: _Call, ctx: _Ctx) -> _Val:
    return _Val(pc.utf8_upper(_as_string(call.args[0].evaluate(ctx))), STRING)


@_function("lower", 1)
def _lower(call: _Call, ctx: _Ctx) -> _Val:
    return _Val(pc.utf8_lower(_as_string(call.args[0].evaluate(ctx))), STRING)


@_function("strlen", 1)
def _strlen(call: _Call, ctx: _Ctx) -> _Val:
    return _Val(pc.cast(pc.utf8_length(_as_string(call.args[0].evaluate(ctx))), pa.int64()), LONG)


def _check_substring(call: _Call) -> None:
    _literal_check(1, (LONG,), "a literal integer index", optional=False)(call)
    _literal_check(2, (LONG,), "a literal integer length", optional=False)(call)
    if call.args[1].value < 0:
        raise SpecError("", call.args[1].value, "the index must not be negative")


@_function("substring", 3, literals=(1, 2), validate=_check_substring)
def _substring(call: _Call, ctx: _Ctx) -> _Val:
    s = _as_string(call.args[0].evaluate(ctx))
    index, length = call.literal(1), call.literal(2)
    stop = None if length < 0 else index + length
    out = pc.utf8_slice_codeunits(s, index, stop) if stop is not None else pc.utf8_slice_codeunits(s, index)
    past_end = pc.less_equal(pc.utf8_length(s), index)  # Druid: an index at or past the end gives null
    return _Val(pc.if_else(past_end, pa.scalar(None, pa.string()), out), STRING)


@_function("replace", 3, literals=(1, 2), validate=_checks(_literal_check(1, (STRING,), "a literal string"),
                                                          _literal_check(2, (STRING,), "a literal string")))
def _replace(call: _Call, ctx: _Ctx) -> _Val:
    s = _as_string(call.args[0].evaluate(ctx))
    pattern, replacement = call.literal(1) or "", call.literal(2) or ""
    if not pattern:
        return _Val(s, STRING)
    return _Val(pc.replace_substring(s, pattern, replacement), STRING)


def _trim_function(name: str, kernel: Callable) -> None:
    @_function(name, 1, 2, literals=(1,), validate=_literal_check(1, (STRING,), "a literal string of characters"))
    def _trim(call: _Call, ctx: _Ctx) -> _Val:
        chars = call.literal(1) if len(call.args) > 1 and call.literal(1) is not None else " "
        s = _as_string(call.args[0].evaluate(ctx))
        return _Val(kernel(s, chars) if chars else s, STRING)


_trim_function("trim", pc.utf8_trim)
_trim_function("ltrim", pc.utf8_ltrim)
_trim_function("rtrim", pc.utf8_rtrim)


def _check_count(call: _Call) -> None:
    _literal_check(1, (LONG,), "a literal integer", optional=False)(call)
    if call.args[1].value < 0:
        raise SpecError("", call.args[1].value, "needs a non-negative integer as the second argument")


@_function("left", 2, literals=(1,), validate=_check_count)
def _left(call: _Call, ctx: _Ctx) -> _Val:
    return _Val(pc.utf8_slice_codeunits(_as_string(call.args[0].evaluate(ctx)), 0, call.literal(1)), STRING)


@_function("right", 2, literals=(1,), validate=_check_count)
def _right(call: _Call, ctx: _Ctx) -> _Val:
    s = _as_string(call.args[0].evaluate(ctx))
    n = call.literal(1)
    if n == 0:
        return _Val(pc.if_else(pc.is_null(s), pa.scalar(None, pa.string()), ""), STRING)
    return _Val(pc.utf8_slice_codeunits(s, -n), STRING)


# -- maths --------------------------------------------------------------------------------------------------------


@_function("abs", 1)
def _abs(call: _Call, ctx: _Ctx) -> _Val:
    v = call.args[0].evaluate(ctx)
    if v.kind in (LONG, DOUBLE):
        return _Val(pc.abs(v.data), v.kind)
    return _null(LONG if v.kind == NULL else DOUBLE)  # Druid's math functions give null for strings


def _double_function(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    @_function(name, 1)
    def _impl(call: _Call, ctx: _Ctx) -> _Val:
        v = call.args[0].evaluate(ctx)
        if v.kind not in (LONG, DOUBLE):
            return _null(DOUBLE)
        return _Val(_numpy_unary(_as_double(v), fn), DOUBLE)


def _numpy_unary(data: Data, fn: Callable[[np.ndarray], np.ndarray]) -> Data:
    def apply(arr: pa.Array) -> pa.Array:
        values, mask = _numpy(arr, len(arr), np.float64)
        with np.errstate(all="ignore"):
            return pa.array(fn(values), type=pa.float64(), mask=mask)

    return _on_array(apply, data)


_double_function("floor", np.floor)
_double_function("ceil", np.ceil)
_double_function("sqrt", np.sqrt)
_double_function("log", np.log)
_double_function("exp", np.exp)


@_function("pow", 2)
def _pow(call: _Call, ctx: _Ctx) -> _Val:
    x, y = call.args[0].evaluate(ctx), call.args[1].evaluate(ctx)
    if NULL in (x.kind, y.kind) or (x.kind == STRING and y.kind == STRING):
        return _null(DOUBLE)
    return _Val(pc.power(_as_double(x), _as_double(y)), DOUBLE)


@_function("round", 1, 2, literals=(1,), validate=_literal_check(1, (LONG,), "a literal integer scale", optional=False))
def _round(call: _Call, ctx: _Ctx) -> _Val:
    v = call.args[0].evaluate(ctx)
    scale = call.literal(1) if len(call.args) > 1 else 0
    if v.kind == LONG:
        return _Val(_on_array(lambda a: _round_longs(a, scale), v.data), LONG) if scale < 0 else v
    if v.kind == DOUBLE:
        return _Val(_on_array(lambda a: _round_doubles(a, scale), v.data), DOUBLE)
    return _null(DOUBLE if v.kind == STRING else LONG)


def _round_longs(arr: pa.Array, scale: int) -> pa.Array:
    """``BigDecimal.setScale(scale, HALF_UP)`` of longs for a negative scale: to a multiple of 10^-scale."""
    values, mask = _numpy(arr, len(arr), np.int64)
    if -scale > 18:
        return pa.array(np.zeros_like(values), type=pa.int64(), mask=mask)
    unit = 10 ** (-scale)
    mag = np.abs(values)
    rounded = (mag + unit // 2) // unit * unit
    return pa.array(np.where(values < 0, -rounded, rounded), type=pa.int64(), mask=mask)


def _round_doubles(arr: pa.Array, scale: int) -> pa.Array:
    """``BigDecimal.valueOf(d).setScale(scale, HALF_UP).doubleValue()``, i.e. half away from zero on the decimal
    digits Java prints (so 2.675 rounds to 2.68, although its binary value is a hair below)."""
    values, mask = _numpy(arr, len(arr), np.float64)
    with np.errstate(all="ignore"):
        factor = 10.0**scale
        scaled = values * factor
        out = np.trunc(scaled + np.copysign(0.5, scaled)) / factor
        # Near a tie the binary product can land on the wrong side; settle those rows on the decimal digits.
        frac = np.abs(scaled - np.trunc(scaled))
        near_tie = np.isfinite(scaled) & (np.abs(frac - 0.5) < 1e-6) & (np.abs(scaled) < 2.0**52)
        big = ~np.isfinite(scaled) | (np.abs(scaled) >= 2.0**52)
        out = np.where(big & np.isfinite(values), values, out)
    if near_tie.any():
        from decimal import ROUND_HALF_UP, Decimal

        quantum = Decimal(1).scaleb(-scale)
        for i in np.flatnonzero(near_tie):  # a handful of rows at most: exact ties in decimal are rare
            out[i] = float(Decimal(repr(float(values[i]))).quantize(quantum, rounding=ROUND_HALF_UP))
    out = np.where(np.isnan(values), 0.0, out)
    out = np.where(np.isposinf(values), np.finfo(np.float64).max, out)
    out = np.where(np.isneginf(values), -np.finfo(np.float64).max, out)
    return pa.array(out, type=pa.float64(), mask=mask)


def _reduce_function(name: str, kernel: Callable) -> None:
    @_function(name, 0, None)
    def _impl(call: _Call, ctx: _Ctx) -> _Val:
        values = [a.evaluate(ctx) for a in call.args]
        kind = _merge_kinds([v.kind for v in values], start=LONG)
        present = [_as_kind(v, kind) for v in values if v.kind != NULL]
        if not present:
            return _null(kind)
        if len(present) == 1:
            return _Val(present[0], kind)
        return _Val(kernel(*present, skip_nulls=True), kind)


_reduce_function("greatest", pc.max_element_wise)
_reduce_function("least", pc.min_element_wise)


# -- conditionals -------------------------------------------------------------------------------------------------


def _choose(ctx: _Ctx, conditions: list[Data], results: list[_Val], otherwise: Optional[_Val]) -> _Val:
    candidates = results + ([otherwise] if otherwise is not None else [])
    kind = _merge_kinds([v.kind for v in candidates])
    if kind == NULL:
        return _null(NULL)
    values = [_as_kind(v, kind) if v.kind != NULL else pa.scalar(None, _ARROW_TYPE[kind]) for v in candidates]
    if otherwise is None:
        values.append(pa.scalar(None, _ARROW_TYPE[kind]))
    if len(conditions) == 1:
        return _Val(pc.if_else(pc.fill_null(conditions[0], False), values[0], values[1]), kind)
    conds = [c if isinstance(c, pa.Array) else pa.repeat(c, ctx.n) for c in conditions]
    struct = pa.StructArray.from_arrays(conds, names=[f"c{i}" for i in range(len(conds))])
    return _Val(pc.case_when(struct, *values), kind)


@_function("if", 3)
def _if(call: _Call, ctx: _Ctx) -> _Val:
    cond = _truth(call.args[0].evaluate(ctx))
    return _choose(ctx, [cond], [call.args[1].evaluate(ctx)], call.args[2].evaluate(ctx))


@_function("nvl", 2)
def _nvl(call: _Call, ctx: _Ctx) -> _Val:
    x, y = call.args[0].evaluate(ctx), call.args[1].evaluate(ctx)
    kind = _merge_kinds([x.kind, y.kind])
    if kind == NULL:
        return _null(NULL)
    if x.kind == NULL:
        return _Val(_as_kind(y, kind), kind)
    if y.kind == NULL:
        return _Val(_as_kind(x, kind), kind)
    return _Val(pc.coalesce(_as_kind(x, kind), _as_kind(y, kind)), kind)


@_function("isnull", 1)
def _isnull(call: _Call, ctx: _Ctx) -> _Val:
    v = call.args[0].evaluate(ctx)
    return _bool_to_long(pc.is_null(v.data) if v.kind != NULL else pa.scalar(True))


@_function("notnull", 1)
def _notnull(call: _Call, ctx: _Ctx) -> _Val:
    v = call.args[0].evaluate(ctx)
    return _bool_to_long(pc.is_valid(v.data) if v.kind != NULL else pa.scalar(False))


@_function("case_searched", 2, None)
def _case_searched(call: _Call, ctx: _Ctx) -> _Val:
    args = call.args
    pairs = len(args) // 2
    conds = [_truth(args[2 * i].evaluate(ctx)) for i in range(pairs)]
    results = [args[2 * i + 1].evaluate(ctx) for i in range(pairs)]
    otherwise = args[-1].evaluate(ctx) if len(args) % 2 else None
    return _choose(ctx, conds, results, otherwise)


@_function("case_simple", 3, None)
def _case_simple(call: _Call, ctx: _Ctx) -> _Val:
    args = call.args
    subject = args[0].evaluate(ctx)
    pairs = (len(args) - 1) // 2
    conds = [_truth(_compare("==", subject, args[1 + 2 * i].evaluate(ctx))) for i in range(pairs)]
    results = [args[2 + 2 * i].evaluate(ctx) for i in range(pairs)]
    otherwise = args[-1].evaluate(ctx) if (len(args) - 1) % 2 else None
    return _choose(ctx, conds, results, otherwise)


def _check_cast(call: _Call) -> None:
    target = call.args[1].value
    if not isinstance(target, str) or target.upper() not in (LONG, DOUBLE, STRING):
        raise SpecError("", target, "the type must be 'LONG', 'DOUBLE' or 'STRING'")


@_function("cast", 2, literals=(1,), validate=_check_cast)
def _cast(call: _Call, ctx: _Ctx) -> _Val:
    v = call.args[0].evaluate(ctx)
    kind = call.literal(1).upper()
    if v.kind == NULL:
        return _null(kind)
    return _Val(_as_kind(v, kind), kind)


# -- time ---------------------------------------------------------------------------------------------------------


def _zone_arg(call: _Call, i: int) -> TimeZone:
    if i >= len(call.args) or call.args[i].value is None:
        return UTC
    return TimeZone.parse(call.args[i].value, "")


def _check_zone(i: int) -> Callable[[_Call], None]:
    def check(call: _Call) -> None:
        _literal_check(i, (STRING,), "a literal time zone")(call)
        _zone_arg(call, i)

    return check


def _floor_granularity(call: _Call) -> Granularity:
    origin = call.args[2].value if len(call.args) > 2 else None
    if origin == "":
        origin = None
    tz = _zone_arg(call, 3)
    return Granularity.period_granularity(call.args[1].value, None if tz.is_utc else tz, origin)


def _check_floor(call: _Call) -> None:
    _literal_check(1, (STRING,), "a literal ISO-8601 period such as 'PT1H'", optional=False)(call)
    _literal_check(2, (STRING, LONG), "a literal origin (ISO-8601 or epoch ms)")(call)
    _check_zone(3)(call)
    _floor_granularity(call)


@_function("timestamp_floor", 2, 4, literals=(1, 2, 3), validate=_check_floor)
def _timestamp_floor(call: _Call, ctx: _Ctx) -> _Val:
    t = _as_long(call.args[0].evaluate(ctx))
    g = _floor_granularity(call)
    return _Val(_on_array(g.truncate, t), LONG)


_EXTRACT_UNITS = ("EPOCH", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "DOW", "ISODOW", "DOY", "WEEK", "MONTH",
                  "QUARTER", "YEAR", "ISOYEAR", "DECADE", "CENTURY", "MILLENNIUM")


def _check_extract(call: _Call) -> None:
    unit = call.args[1].value
    if not isinstance(unit, str) or unit.upper() not in _EXTRACT_UNITS:
        raise SpecError("", unit, f"unknown unit; expected one of {', '.join(_EXTRACT_UNITS)}")
    _check_zone(2)(call)


@_function("timestamp_extract", 2, 3, literals=(1, 2), validate=_check_extract)
def _timestamp_extract(call: _Call, ctx: _Ctx) -> _Val:
    unit = call.literal(1).upper()
    zone = _zone_arg(call, 2)
    t = ctx.array(_Val(_as_long(call.args[0].evaluate(ctx)), LONG))
    values, mask = _numpy(t, len(t), np.int64)
    if unit == "EPOCH":
        return _Val(pc.divide(t, 1000), LONG)  # Java's long division: towards zero
    f = _LocalFields(values, zone)
    if unit in ("CENTURY", "MILLENNIUM"):
        size = 100.0 if unit == "CENTURY" else 1000.0
        return _Val(pa.array(np.ceil(f.year / size), type=pa.float64(), mask=mask), DOUBLE)
    out = {
        "MILLISECOND": lambda: f.millisecond,
        "SECOND": lambda: f.second,
        "MINUTE": lambda: f.minute,
        "HOUR": lambda: f.hour,
        "DAY": lambda: f.day,
        "DOW": lambda: f.day_of_week,
        "ISODOW": lambda: f.day_of_week,
        "DOY": lambda: f.day_of_year,
        "WEEK": lambda: f.iso_week,
        "MONTH": lambda: f.month,
        "QUARTER": lambda: (f.month - 1) // 3 + 1,
        "YEAR": lambda: f.year,
        "ISOYEAR": lambda: f.iso_year,
        "DECADE": lambda: np.trunc(f.year / 10).astype(np.int64),  # Java's int division
    }[unit]()
    return _Val(pa.array(out, type=pa.int64(), mask=mask), LONG)


def _check_joda(i: int, parse: bool) -> Callable[[_Call], None]:
    def check(call: _Call) -> None:
        _literal_check(i, (STRING,), "a literal Joda-Time pattern")(call)
        if i < len(call.args) and call.args[i].value is not None:
            pattern = _JodaPattern.of(call.args[i].value, parse)
            if parse:
                try:
                    pc.extract_regex(pa.array([""]), pattern.regex())
                except pa.ArrowInvalid:
                    raise SpecError("", pattern.text, "each field may appear only once in a parse pattern") from None

    return check


@_function("timestamp_parse", 1, 3, literals=(1, 2), validate=_checks(_check_joda(1, True), _check_zone(2)))
def _timestamp_parse(call: _Call, ctx: _Ctx) -> _Val:
    s = ctx.array(_Val(_as_string(call.args[0].evaluate(ctx)), STRING))
    pattern = call.literal(1) if len(call.args) > 1 else None
    return _Val(parse_timestamps(s, pattern, _zone_arg(call, 2)), LONG)


@_function("timestamp_format", 1, 3, literals=(1, 2), validate=_checks(_check_joda(1, False), _check_zone(2)))
def _timestamp_format(call: _Call, ctx: _Ctx) -> _Val:
    t = ctx.array(_Val(_as_long(call.args[0].evaluate(ctx)), LONG))
    pattern = call.literal(1) if len(call.args) > 1 else None
    return _Val(format_timestamps(t, pattern, _zone_arg(call, 2)), STRING)


# -- matching -----------------------------------------------------------------------------------------------------


def like_regex(pattern: str, escape: Optional[str] = None) -> str:
    """An RE2 regular expression matching exactly what SQL ``LIKE pattern [ESCAPE escape]`` matches."""
    out = ["(?s)^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)


def _matches(s: Data, regex: str) -> Data:
    return pc.fill_null(pc.match_substring_regex(s, regex), False)


def _check_like(call: _Call) -> None:
    _literal_check(1, (STRING,), "a literal pattern", optional=False)(call)
    _literal_check(2, (STRING,), "a literal escape character")(call)
    if len(call.args) > 2 and call.args[2].value is not None and len(call.args[2].value) != 1:
        raise SpecError("", call.args[2].value, "the escape must be a single character")


@_function("like", 2, 3, literals=(1, 2), validate=_check_like)
def _like(call: _Call, ctx: _Ctx) -> _Val:
    escape = call.literal(2) if len(call.args) > 2 else None
    regex = like_regex(call.literal(1), escape)
    return _bool_to_long(_matches(_as_string(call.args[0].evaluate(ctx)), regex))


def check_regex(pattern: str) -> None:
    """Raise SpecError unless ``pattern`` compiles as an RE2 regular expression (Arrow's regex engine)."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except pa.ArrowInvalid as exc:
        raise SpecError("", pattern, f"not a valid regular expression: {str(exc).split(': ', 1)[-1]}") from None


def _check_regexp(call: _Call) -> None:
    _literal_check(1, (STRING,), "a literal pattern", optional=False)(call)
    check_regex(call.args[1].value)


@_function("regexp_like", 2, literals=(1,), validate=_check_regexp)
def _regexp_like(call: _Call, ctx: _Ctx) -> _Val:
    return _bool_to_long(_matches(_as_string(call.args[0].evaluate(ctx)), call.literal(1)))


@_function("contains_string", 2, literals=(1,), validate=_literal_check(1, (STRING,), "a literal string", optional=False))
def _contains_string(call: _Call, ctx: _Ctx) -> _Val:
    s = _as_string(call.args[0].evaluate(ctx))
    return _bool_to_long(pc.fill_null(pc.match_substring(s, call.literal(1)), False))


FUNCTION_NAMES: tuple[str, ...] = tuple(sorted(_FUNCTIONS))

# ===============================================================================================================
# Calendar fields, Joda-Time patterns, parsing and formatting timestamps
# ===============================================================================================================


class _LocalFields:
    """Wall-clock fields of epoch-ms instants in a time zone, computed lazily and vectorised."""

    def __init__(self, ms: np.ndarray, zone: TimeZone) -> None:
        self.offsets = zone.offsets(ms)
        self.local = ms + self.offsets
        self.days = floor_div(self.local, MS_DAY)
        self.ms_of_day = self.local - self.days * MS_DAY
        self.year, self.month, self.day = civil_from_days_array(self.days)

    @property
    def hour(self) -> np.ndarray:
        return self.ms_of_day // MS_HOUR

    @property
    def minute(self) -> np.ndarray:
        return self.ms_of_day // MS_MINUTE % 60

    @property
    def second(self) -> np.ndarray:
        return self.ms_of_day // MS_SECOND % 60

    @property
    def millisecond(self) -> np.ndarray:
        return self.ms_of_day % MS_SECOND

    @property
    def day_of_week(self) -> np.ndarray:
        return np.mod(self.days + 3, 7) + 1  # 1970-01-01 was a Thursday; Monday is 1

    @property
    def day_of_year(self) -> np.ndarray:
        return self.days - days_from_civil_array(self.year, np.ones_like(self.year), np.ones_like(self.year)) + 1

    def _iso(self) -> tuple[np.ndarray, np.ndarray]:
        thursday = self.days - np.mod(self.days + 3, 7) + 3
        year = civil_from_days_array(thursday)[0]
        jan1 = days_from_civil_array(year, np.ones_like(year), np.ones_like(year))
        return year, (thursday - jan1) // 7 + 1

    @property
    def iso_week(self) -> np.ndarray:
        return self._iso()[1]

    @property
    def iso_year(self) -> np.ndarray:
        return self._iso()[0]


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_NUMERIC_LETTERS = set("yYxMdDHhKkmsSwe")
_FORMAT_LETTERS = set("yYxMdDHhKkmsSaEewZ")
_PARSE_LETTERS = set("yYMdHhKkmsSaEZ")


@dataclass(frozen=True)
class _JodaPattern:
    """A Joda-Time ``DateTimeFormat`` pattern split into literal text and (letter, count) fields."""

    text: str
    tokens: tuple[tuple[str, Any], ...]

    @staticmethod
    @lru_cache(maxsize=256)
    def of(text: str, parse: bool) -> _JodaPattern:
        tokens: list[tuple[str, Any]] = []
        i = 0
        allowed = _PARSE_LETTERS if parse else _FORMAT_LETTERS
        while i < len(text):
            c = text[i]
            if c == "'":
                j = i + 1
                lit = []
                while True:
                    if j >= len(text):
                        raise SpecError("", text, f"unterminated quote in the pattern at position {i}")
                    if text[j] == "'":
                        if j + 1 < len(text) and text[j + 1] == "'":
                            lit.append("'")
                            j += 2
                            continue
                        break
                    lit.append(text[j])
                    j += 1
                tokens.append(("lit", "'" if j == i + 1 else "".join(lit)))
                i = j + 1
                continue
            if c.isascii() and c.isalpha():
                j = i
                while j < len(text) and text[j] == c:
                    j += 1
                if c not in allowed:
                    raise SpecError("", text, f"pattern letter {c!r} is not supported for {'parsing' if parse else 'formatting'}")
                tokens.append(("field", (c, j - i)))
                i = j
                continue
            tokens.append(("lit", c))
            i += 1
        return _JodaPattern(text, tuple(tokens))

    # -- parsing --------------------------------------------------------------------------------------------------

    def regex(self) -> str:
        out = ["(?i)^"]
        fields = self.tokens
        for k, (kind, value) in enumerate(fields):
            if kind == "lit":
                out.append(re.escape(value))
                continue
            c, count = value
            nxt = fields[k + 1] if k + 1 < len(fields) else None
            adjacent = nxt is not None and nxt[0] == "field" and nxt[1][0] in _NUMERIC_LETTERS
            if c in "yY":
                out.append(r"(?P<yy>\d{2})" if count == 2 else (rf"(?P<y>[+-]?\d{{{count}}})" if adjacent else r"(?P<y>[+-]?\d{1,9})"))
            elif c == "M" and count >= 3:
                out.append(r"(?P<mon>[a-z]{3})" if count == 3 else r"(?P<mon>[a-z]+)")
            elif c == "S":
                out.append(rf"(?P<S>\d{{{count}}})" if adjacent else r"(?P<S>\d{1,9})")
            elif c == "a":
                out.append(r"(?P<a>am|pm)")
            elif c == "E":
                out.append(r"[a-z]+")
            elif c == "Z":
                out.append(r"(?P<Z>z|[+-]\d{2}:?\d{2})" if count < 3 else r"(?P<zid>[a-z_]+(?:/[a-z_+\-0-9]+)*)")
            else:
                group = {"M": "M", "d": "d", "H": "H", "h": "h", "K": "K", "k": "k", "m": "m", "s": "s"}[c]
                out.append(rf"(?P<{group}>\d{{{count}}})" if adjacent else rf"(?P<{group}>\d{{1,2}})")
        out.append("$")
        return "".join(out)

    # -- formatting -----------------------------------------------------------------------------------------------

    def format(self, f: _LocalFields, zone: TimeZone, n: int) -> list[Data]:
        parts: list[Data] = []
        for kind, value in self.tokens:
            if kind == "lit":
                parts.append(pa.scalar(value))
                continue
            c, count = value
            parts.append(_format_field(c, count, f, zone))
        return parts


def _padded(values: np.ndarray, width: int) -> pa.Array:
    text = pc.cast(pa.array(np.abs(values)), pa.string())
    text = pc.utf8_lpad(text, width, "0") if width > 1 else text
    if (values < 0).any():
        text = pc.if_else(pa.array(values < 0), pc.binary_join_element_wise("-", text, ""), text)
    return text


def _names(table: list[str], index: np.ndarray, count: int) -> pa.Array:
    names = pa.array([s[:3] if count <= 3 else s for s in table])
    return names.take(pa.array(index))


def _format_field(c: str, count: int, f: _LocalFields, zone: TimeZone) -> pa.Array:
    if c in "yYx":
        year = f.year if c != "x" else f.iso_year
        return _padded(np.mod(year, 100), 2) if count == 2 else _padded(year, count)
    if c == "M":
        return _padded(f.month, count) if count <= 2 else _names(_MONTHS, f.month - 1, count)
    if c == "d":
        return _padded(f.day, count)
    if c == "D":
        return _padded(f.day_of_year, count)
    if c == "H":
        return _padded(f.hour, count)
    if c == "h":
        return _padded((f.hour + 11) % 12 + 1, count)
    if c == "K":
        return _padded(f.hour % 12, count)
    if c == "k":
        return _padded(np.where(f.hour == 0, 24, f.hour), count)
    if c == "m":
        return _padded(f.minute, count)
    if c == "s":
        return _padded(f.second, count)
    if c == "S":
        millis = _padded(f.millisecond, 3)
        return pc.utf8_slice_codeunits(millis, 0, count) if count <= 3 else pc.utf8_rpad(millis, count, "0")
    if c == "a":
        return pc.if_else(pa.array(f.hour < 12), "AM", "PM")
    if c == "E":
        return _names(_DAYS, f.day_of_week - 1, count)
    if c == "e":
        return _padded(f.day_of_week, count)
    if c == "w":
        return _padded(f.iso_week, count)
    # Z: offsets
    if count >= 3:
        return pa.repeat(pa.scalar(zone.id), len(f.offsets))
    return _offset_text(f.offsets, count == 2, zero_as_z=False)


def _offset_text(offsets: np.ndarray, colon: bool, zero_as_z: bool) -> pa.Array:
    sign = np.where(offsets < 0, "-", "+")
    mag = np.abs(offsets) // MS_MINUTE
    hh = _padded(mag // 60, 2)
    mm = _padded(mag % 60, 2)
    text = pc.binary_join_element_wise(pa.array(sign), hh, ":" if colon else "", mm, "")
    if zero_as_z:
        text = pc.if_else(pa.array(offsets == 0), "Z", text)
    return text


def format_timestamps(times: pa.Array, pattern: Optional[str] = None, zone: TimeZone = UTC) -> pa.Array:
    """Epoch-ms instants as strings: with a Joda pattern in ``zone``, else ISO ``2024-01-01T00:00:00.000Z`` (UTC)."""
    n = len(times)
    if n == 0:
        return pa.array([], pa.string())
    values, mask = _numpy(times, n, np.int64)
    if pattern is None:
        joda, zone = _ISO_FORMAT, UTC
    else:
        joda = _JodaPattern.of(pattern, False)
    f = _LocalFields(values, zone)
    if pattern is None:
        parts = joda.format(f, zone, n)
        parts[-1] = _offset_text(f.offsets, True, zero_as_z=True)
    else:
        parts = joda.format(f, zone, n)
    out = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    if isinstance(out, pa.Scalar):
        out = pa.repeat(out, n)
    if mask is not None:
        out = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), out)
    return out


_ISO_FORMAT = _JodaPattern.of("yyyy-MM-dd'T'HH:mm:ss.SSSZZ", False)
_ISO_PARSE = (
    r"^(?P<y>[+-]?\d{4,9})(?:-(?P<M>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:[T ](?:(?P<H>\d{2})(?::?(?P<m>\d{2})(?::?(?P<s>\d{2})(?:[.,](?P<S>\d{1,9}))?)?)?)?"
    r"(?P<Z>Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_timestamps(strings: pa.Array, pattern: Optional[str] = None, zone: TimeZone = UTC) -> pa.Array:
    """Strings as epoch ms (int64): with a Joda pattern, or ISO-8601 with ``T`` or a space when none.

    Wall-clock times are in ``zone`` unless the text carries an offset. Unparseable text, impossible dates and
    wall-clock times skipped by a DST change give null, as Druid's ``timestamp_parse`` does.
    """
    n = len(strings)
    if n == 0:
        return pa.array([], pa.int64())
    regex = _ISO_PARSE if pattern is None else _JodaPattern.of(pattern, True).regex()
    parts = pc.extract_regex(strings, regex)
    names = [parts.type.field(i).name for i in range(parts.type.num_fields)]
    matched = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)

    def number(name: str, default: int) -> np.ndarray:
        if name not in names:
            return np.full(n, default, dtype=np.int64)
        col = parts.field(name)
        col = pc.if_else(pc.or_kleene(pc.is_null(col), pc.equal(col, "")), str(default), col)
        return np.asarray(pc.cast(pc.utf8_ltrim(col, "+"), pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)

    year = number("y", 1970)
    if "yy" in names:
        two = number("yy", 70)
        pivot = _dt.date.today().year - 30  # Joda's two-digit years: within 50 years of (now - 30)
        base = pivot - 50
        year = np.where(parts.field("yy").is_valid().to_numpy(zero_copy_only=False), base + np.mod(two - base, 100), year)
    month = number("M", 1)
    if "mon" in names:
        text = pc.utf8_lower(pc.fill_null(parts.field("mon"), ""))
        full = pc.index_in(text, value_set=pa.array([m.lower() for m in _MONTHS]))
        short = pc.index_in(text, value_set=pa.array([m[:3].lower() for m in _MONTHS]))
        idx = pc.coalesce(full, short)
        month = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64) + 1
    day = number("d", 1)
    hour = number("H", 0)
    valid = matched & (month >= 1) & (month <= 12) & (day >= 1) & (hour <= 23)
    for clock, lo, hi in (("h", 1, 12), ("K", 0, 11), ("k", 1, 24)):
        if clock in names:
            h = number(clock, lo)
            valid &= (h >= lo) & (h <= hi)
            hour = np.mod(h, 12) if clock != "k" else np.mod(h, 24)
    if "a" in names:
        pm = np.asarray(pc.equal(pc.utf8_lower(pc.fill_null(parts.field("a"), "")), "pm").to_numpy(zero_copy_only=False), dtype=bool)
        hour = np.where(pm, np.mod(hour, 12) + 12, np.mod(hour, 12)) if ("h" in names or "K" in names) else hour
    minute = number("m", 0)
    second = number("s", 0)
    millis = np.zeros(n, dtype=np.int64)
    if "S" in names:
        frac = pc.fill_null(parts.field("S"), "")
        frac3 = pc.utf8_slice_codeunits(pc.utf8_rpad(frac, 3, "0"), 0, 3)
        millis = np.asarray(pc.cast(frac3, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    valid &= (minute <= 59) & (second <= 59)
    month_c = np.clip(month, 1, 12)
    days = days_from_civil_array(year, month_c, np.ones(n, dtype=np.int64))
    next_month = days_from_civil_array(year + (month_c == 12), np.where(month_c == 12, 1, month_c + 1), np.ones(n, dtype=np.int64))
    valid &= day <= next_month - days
    local = (days + day - 1) * MS_DAY + hour * MS_HOUR + minute * MS_MINUTE + second * MS_SECOND + millis

    out = np.zeros(n, dtype=np.int64)
    has_offset = np.zeros(n, dtype=bool)
    if "Z" in names:
        z = pc.fill_null(parts.field("Z"), "")
        has_offset = np.asarray(pc.not_equal(z, "").to_numpy(zero_copy_only=False), dtype=bool) & matched
        offset = _offset_millis(z)
        out = np.where(has_offset, local - offset, out)
    by_zone = valid & ~has_offset
    if "zid" in names:
        ids = pc.fill_null(parts.field("zid"), "")
        for zone_id in pc.unique(pc.filter(ids, pa.array(by_zone))).to_pylist():
            rows = by_zone & np.asarray(pc.equal(ids, zone_id).to_numpy(zero_copy_only=False), dtype=bool)
            try:
                z_rows = TimeZone.parse(zone_id, "")
            except SpecError:
                valid &= ~rows
                continue
            out[rows], ok = _from_local_strict(local[rows], z_rows)
            valid[np.flatnonzero(rows)[~ok]] = False
    elif by_zone.any():
        out[by_zone], ok = _from_local_strict(local[by_zone], zone)
        valid[np.flatnonzero(by_zone)[~ok]] = False
    return pa.array(out, type=pa.int64(), mask=~valid)


def _from_local_strict(local: np.ndarray, zone: TimeZone) -> tuple[np.ndarray, np.ndarray]:
    """Instants of local times, and which ones exist (Joda's parser rejects a time inside a DST gap)."""
    if zone.is_fixed:
        return local - zone.fixed_offset_ms, np.ones(local.shape, dtype=bool)
    instants = zone.from_local(local)
    return instants, instants + zone.offsets(instants) == local


def _offset_millis(text: pa.Array) -> np.ndarray:
    parts = pc.extract_regex(text, r"^(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})?$")
    sign = np.asarray(pc.equal(pc.fill_null(parts.field("sign"), "+"), "-").to_numpy(zero_copy_only=False), dtype=bool)

    def num(field: str) -> np.ndarray:
        col = pc.fill_null(parts.field(field), "0")
        col = pc.if_else(pc.equal(col, ""), "0", col)
        return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)

    mag = num("h") * MS_HOUR + num("m") * MS_MINUTE
    return np.where(sign, -mag, mag)
