"""Druid's filter JSON (``transformSpec.filter``, compaction's transform filter), evaluated on Arrow batches.

Every filter is a pydantic model discriminated by ``type``; :func:`parse_filter` validates Druid's JSON and names
the field path of any problem. ``filter.mask(batch)`` gives a ``pyarrow.BooleanArray`` (one entry per row, never
null) over a ``RecordBatch`` or ``Table``, computed with ``pyarrow.compute``; ``filter.required_columns`` lists
the columns it reads.

Matching rules (Druid's SQL-compatible mode):

* Filters use three-valued logic. A row whose value is null neither matches ``x = 'a'`` nor its ``not``; ``and``
  and ``or`` combine the unknowns as SQL does; ``mask`` counts unknown as no match.
* ``selector`` with a null (or empty) ``value``, and an ``in`` list holding null, match null and empty values.
* String columns compare as strings. Numeric columns compare numerically when the filter's value parses as a
  number (and never match a value that does not); a ``bound`` compares numeric columns numerically under the
  ``numeric`` and ``alphanumeric`` orderings and as their string forms (``5``, ``5.0``) under ``lexicographic``
  and ``strlen``, as Druid does. ``like``, ``regex`` and ``interval`` read the same string / number forms.
* A multi-value (list) column matches when any of its values matches; an empty or null list is a single null.
* A column the batch does not have is all null.
* ``bound`` orderings: ``lexicographic`` (by UTF-8 bytes), ``numeric`` (values that are not numbers never
  match), ``alphanumeric`` (numerically when both sides are numbers, else lexicographically — an approximation
  of Druid's natural sort, exact for plain numbers and plain words), ``strlen`` (by length, then
  lexicographically). ``version`` is not supported.
* ``regex`` patterns use RE2 syntax (Java's without backreferences and look-around) and match anywhere in the
  value; ``like`` patterns use ``%`` and ``_`` with an optional one-character ``escape``.
* ``interval`` keeps rows whose value (epoch ms; ``__time`` in practice) lies in any of the half-open intervals.
* ``expression`` keeps rows where the expression is true (a number > 0, or the string ``true``).

``extractionFn`` is not supported and is rejected with a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.expressions import (
    Batch,
    Expression,
    check_regex,
    compile_expression,
    epoch_millis,
    java_strings,
    like_regex,
    parse_doubles,
    read_column,
)
from druidflow.intervals import Interval
from druidflow.specs.validation import SpecModel, validate_as

# ---------------------------------------------------------------------------------------------------------------
# Per-value evaluation over plain, dictionary and multi-value columns
# ---------------------------------------------------------------------------------------------------------------

Predicate = Callable[[pa.Array], pa.Array]  # values -> booleans, null where unknown


def _per_value(col: Optional[pa.Array], n: int, predicate: Predicate) -> pa.Array:
    """Apply a per-value predicate to a column; dictionaries are evaluated once per distinct value and
    multi-value rows match when any value does (an empty or null list counts as one null value)."""
    if col is None:
        return _broadcast(predicate(pa.nulls(1, pa.string()))[0], n)
    t = col.type
    if pa.types.is_dictionary(t):
        out = predicate(col.dictionary).take(col.indices)
        if col.indices.null_count:  # a null row holds no dictionary entry: evaluate the predicate on null itself
            on_null = predicate(pa.nulls(1, col.dictionary.type))[0]
            out = pc.if_else(pc.is_null(col.indices), on_null, out)
        return out
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _any_value(col, predicate)
    return predicate(col)


def _any_value(col: pa.Array, predicate: Predicate) -> pa.Array:
    n = len(col)
    flat = pc.list_flatten(col)
    parents = np.asarray(pc.list_parent_indices(col).to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_dictionary(flat.type):
        flat = flat.dictionary_decode()
    hits = predicate(flat)
    true_rows = np.zeros(n, dtype=bool)
    null_rows = np.zeros(n, dtype=bool)
    if len(flat):
        is_true = np.asarray(pc.fill_null(hits, False).to_numpy(zero_copy_only=False), dtype=bool)
        is_null = np.asarray(hits.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        true_rows[parents[is_true]] = True
        null_rows[parents[is_null]] = True
    lengths = np.asarray(pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False))
    empty = lengths == 0
    if empty.any():
        on_null = predicate(pa.nulls(1, flat.type if not pa.types.is_null(flat.type) else pa.string()))[0].as_py()
        true_rows |= empty & (on_null is True)
        null_rows |= empty & (on_null is None)
    unknown = null_rows & ~true_rows
    return pa.array(true_rows, type=pa.bool_(), mask=unknown if unknown.any() else None)


def _broadcast(value: pa.Scalar, n: int) -> pa.Array:
    return pa.repeat(value, n) if value.is_valid else pa.nulls(n, pa.bool_())


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_time(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t) or pa.types.is_date(t)


def _numbers(values: pa.Array) -> pa.Array:
    """A column's values as numbers (float64, or int64 for integer and time columns); strings are parsed."""
    t = values.type
    if _is_time(t):
        return epoch_millis(values)
    if pa.types.is_integer(t):
        return pc.cast(values, pa.int64())
    if _is_numeric(t):
        return pc.cast(values, pa.float64())
    if pa.types.is_boolean(t):
        return pc.cast(values, pa.int64())
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.float64())
    return parse_doubles(java_strings(values))


def _parse_number(text: str) -> Optional[Union[int, float]]:
    """A filter value as a number, Druid-style: an integer if it is one, else a double, else None."""
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s) if s.lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity") else None
    except ValueError:
        return None


def _numeric_scalar(value: Union[int, float], values: pa.Array) -> pa.Scalar:
    if pa.types.is_int64(values.type) and isinstance(value, int) and -(2**63) <= value < 2**63:
        return pa.scalar(value, pa.int64())
    return pa.scalar(float(value), pa.float64())


def _nullish(values: pa.Array) -> pa.Array:
    """True where a value is null or the empty string (what a null selector matches)."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pc.fill_null(pc.equal(values, ""), True)
    return pc.is_null(values)


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


class _Filter(SpecModel):
    """Common behaviour: ``mask`` (boolean, never null) built on ``evaluate`` (null where unknown)."""

    type: str  # narrowed to one Literal per filter; declared here so that it is dumped first

    def mask(self, batch: Batch) -> pa.BooleanArray:
        """Which rows the filter keeps; an unknown (null) result does not keep the row."""
        out = self.evaluate(batch)
        return out if out.null_count == 0 else pc.fill_null(out, False)

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        """Three-valued result per row: true, false, or null when the row's value is unknown (null)."""
        raise NotImplementedError

    @property
    def required_columns(self) -> frozenset[str]:
        """The columns the filter reads."""
        return frozenset()


def _no_extraction_fn(value: Any) -> Any:
    if value is not None:
        raise ValueError("extractionFn is not supported by Druidflow")
    return value


def _as_text(value: Any) -> Optional[str]:
    """Druid reads filter values as strings; JSON numbers and booleans become their text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueError(f"expected a string or a number, not {type(value).__name__}")


class _DimensionFilter(_Filter):
    dimension: str = Field(min_length=1)
    extraction_fn: Optional[Any] = None
    filter_tuning: Optional[dict[str, Any]] = None  # accepted and ignored: a query-time index hint

    _check_extraction_fn = field_validator("extraction_fn")(_no_extraction_fn)

    @property
    def required_columns(self) -> frozenset[str]:
        return frozenset({self.dimension})

    def _column(self, batch: Batch) -> Optional[pa.Array]:
        return read_column(batch, self.dimension)


class SelectorFilter(_DimensionFilter):
    """``{"type": "selector", "dimension", "value"}``: equality; a null value matches null and empty values."""

    type: Literal["selector"]
    value: Optional[str] = None

    _text = field_validator("value", mode="before")(_as_text)

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return _per_value(self._column(batch), batch.num_rows, _equals_any([self.value]))


class InFilter(_DimensionFilter):
    """``{"type": "in", "dimension", "values"}``: membership; a null in ``values`` matches null and empty values."""

    type: Literal["in"]
    values: list[Optional[str]]

    @field_validator("values", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return [_as_text(x) for x in v] if isinstance(v, (list, tuple)) else v

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return _per_value(self._column(batch), batch.num_rows, _equals_any(self.values))


def _equals_any(wanted: list[Optional[str]]) -> Predicate:
    texts = [w for w in wanted if w not in (None, "")]
    match_null = len(texts) != len(wanted)
    numbers = [x for x in (_parse_number(w) for w in texts) if x is not None]

    def predicate(values: pa.Array) -> pa.Array:
        t = values.type
        if _is_numeric(t) or _is_time(t):
            nums = _numbers(values)
            if not numbers:
                hit = pc.and_kleene(pc.is_valid(nums), pa.scalar(False))
            elif pa.types.is_int64(nums.type) and all(isinstance(x, int) for x in numbers):
                hit = pc.is_in(nums, value_set=pa.array(numbers, pa.int64()))
                hit = pc.if_else(pc.is_null(nums), pa.scalar(None, pa.bool_()), hit)
            else:
                hit = pc.is_in(pc.cast(nums, pa.float64()), value_set=pa.array([float(x) for x in numbers]))
                hit = pc.if_else(pc.is_null(nums), pa.scalar(None, pa.bool_()), hit)
        elif pa.types.is_null(t):
            hit = pa.nulls(len(values), pa.bool_())
        else:
            strings = java_strings(values)
            hit = pc.is_in(strings, value_set=pa.array(texts, pa.string()))
            hit = pc.if_else(pc.is_null(strings), pa.scalar(None, pa.bool_()), hit)
        if match_null:
            hit = pc.or_kleene(hit, _nullish(values))
        return hit

    return predicate


_ORDERINGS = ("lexicographic", "numeric", "alphanumeric", "strlen")


class BoundFilter(_DimensionFilter):
    """``{"type": "bound", "dimension", "lower", "upper", "lowerStrict", "upperStrict", "ordering"}``."""

    type: Literal["bound"]
    lower: Optional[str] = None
    upper: Optional[str] = None
    lower_strict: bool = False
    upper_strict: bool = False
    ordering: str = "lexicographic"
    alpha_numeric: Optional[bool] = None  # Druid's old spelling of ordering=alphanumeric

    _texts = field_validator("lower", "upper", mode="before")(_as_text)

    @field_validator("ordering", mode="before")
    @classmethod
    def _ordering(cls, v: Any) -> Any:
        if isinstance(v, dict):  # Druid also accepts {"type": "numeric"}
            v = v.get("type")
        if v is None:
            return "lexicographic"
        if not isinstance(v, str) or v.lower() not in _ORDERINGS:
            raise ValueError(f"unsupported ordering {v!r}; supported: {', '.join(_ORDERINGS)}")
        return v.lower()

    @model_validator(mode="before")
    @classmethod
    def _legacy_alpha_numeric(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("alphaNumeric", data.get("alpha_numeric")) is True:
            if data.get("ordering") is None:
                data = {**data, "ordering": "alphanumeric"}
        return data

    @model_validator(mode="after")
    def _bounds(self) -> BoundFilter:
        if self.lower is None and self.upper is None:
            raise SpecError("lower", None, "a bound filter needs 'lower' or 'upper' (or both)")
        if self.ordering == "numeric":
            for name in ("lower", "upper"):
                v = getattr(self, name)
                if v is not None and _parse_number(v) is None:
                    raise SpecError(name, v, "a numeric bound must be a number")
        return self

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return _per_value(self._column(batch), batch.num_rows, self._predicate)

    def _predicate(self, values: pa.Array) -> pa.Array:
        t = values.type
        numeric_col = _is_numeric(t) or _is_time(t)
        if self.ordering == "numeric" or (numeric_col and self.ordering == "alphanumeric"):
            return self._compare(_numbers(values), _parse_number)
        strings = java_strings(values)
        if self.ordering == "strlen":
            return self._strlen(strings)
        lexi = self._compare(strings, lambda s: s)
        if self.ordering == "lexicographic":
            return lexi
        # alphanumeric: numerically where both sides are numbers, else lexicographically
        return pc.if_else(self._numeric_rows(strings), self._compare(parse_doubles(strings), _parse_number), lexi)

    def _numeric_rows(self, strings: pa.Array) -> pa.Array:
        parsed = pc.is_valid(parse_doubles(strings))
        for bound in (self.lower, self.upper):
            if bound is not None and _parse_number(bound) is None:
                return pc.and_kleene(parsed, pa.scalar(False))
        return parsed

    def _compare(self, values: pa.Array, convert: Callable[[str], Any]) -> pa.Array:
        out: Optional[pa.Array] = None
        for bound, strict, below in ((self.lower, self.lower_strict, False), (self.upper, self.upper_strict, True)):
            if bound is None:
                continue
            b = convert(bound)
            if b is None:
                part = pc.and_kleene(pc.is_valid(values), pa.scalar(False))
            else:
                scalar = _numeric_scalar(b, values) if not isinstance(b, str) else pa.scalar(b, pa.string())
                op = (pc.less if strict else pc.less_equal) if below else (pc.greater if strict else pc.greater_equal)
                part = op(values if not isinstance(b, float) else pc.cast(values, pa.float64()), scalar)
            out = part if out is None else pc.and_kleene(out, part)
        assert out is not None
        return out

    def _strlen(self, strings: pa.Array) -> pa.Array:
        lengths = pc.utf8_length(strings)
        out: Optional[pa.Array] = None
        for bound, strict, below in ((self.lower, self.lower_strict, False), (self.upper, self.upper_strict, True)):
            if bound is None:
                continue
            blen = len(bound)
            shorter, same = (pc.less, pc.equal)
            if below:  # value < bound in (length, text) order
                tie = (pc.less if strict else pc.less_equal)(strings, bound)
                part = pc.or_kleene(shorter(lengths, blen), pc.and_kleene(same(lengths, blen), tie))
            else:
                tie = (pc.greater if strict else pc.greater_equal)(strings, bound)
                part = pc.or_kleene(pc.greater(lengths, blen), pc.and_kleene(same(lengths, blen), tie))
            out = part if out is None else pc.and_kleene(out, part)
        assert out is not None
        return out


class LikeFilter(_DimensionFilter):
    """``{"type": "like", "dimension", "pattern", "escape"}``: SQL LIKE with ``%`` and ``_``."""

    type: Literal["like"]
    pattern: str
    escape: Optional[str] = None

    @field_validator("escape")
    @classmethod
    def _one_char(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and len(v) != 1:
            raise ValueError("escape must be a single character")
        return v

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        regex = like_regex(self.pattern, self.escape)
        return _per_value(self._column(batch), batch.num_rows, lambda v: pc.match_substring_regex(java_strings(v), regex))


class RegexFilter(_DimensionFilter):
    """``{"type": "regex", "dimension", "pattern"}``: the regular expression matches somewhere in the value."""

    type: Literal["regex"]
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            check_regex(v)
        except SpecError as exc:
            raise ValueError(exc.reason) from None
        return v

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return _per_value(self._column(batch), batch.num_rows, lambda v: pc.match_substring_regex(java_strings(v), self.pattern))


class IntervalFilter(_DimensionFilter):
    """``{"type": "interval", "dimension", "intervals"}``: the value (epoch ms) lies in one of the intervals."""

    type: Literal["interval"]
    intervals: list[Interval] = Field(min_length=1)

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        def predicate(values: pa.Array) -> pa.Array:
            ms = _numbers(values)
            out: Optional[pa.Array] = None
            for iv in self.intervals:
                part = pc.and_kleene(pc.greater_equal(ms, iv.start), pc.less(ms, iv.end))
                out = part if out is None else pc.or_kleene(out, part)
            return out

        return _per_value(self._column(batch), batch.num_rows, predicate)


class ExpressionFilter(_Filter):
    """``{"type": "expression", "expression"}``: rows where the Druid expression is true."""

    type: Literal["expression"]
    expression: str
    filter_tuning: Optional[dict[str, Any]] = None

    @field_validator("expression")
    @classmethod
    def _compiles(cls, v: str) -> str:
        compile_expression(v)
        return v

    @cached_property
    def compiled(self) -> Expression:
        return compile_expression(self.expression, "filter.expression")

    @property
    def required_columns(self) -> frozenset[str]:
        return self.compiled.required_columns

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return self.compiled.evaluate_truth(batch)


class TrueFilter(_Filter):
    """``{"type": "true"}``: every row."""

    type: Literal["true"]

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return pa.repeat(pa.scalar(True), batch.num_rows)


class FalseFilter(_Filter):
    """``{"type": "false"}``: no row."""

    type: Literal["false"]

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return pa.repeat(pa.scalar(False), batch.num_rows)


class AndFilter(_Filter):
    """``{"type": "and", "fields": [...]}``: every field matches (SQL's three-valued AND)."""

    type: Literal["and"]
    fields: list[Filter] = Field(min_length=1)

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        out = self.fields[0].evaluate(batch)
        for f in self.fields[1:]:
            out = pc.and_kleene(out, f.evaluate(batch))
        return out

    @property
    def required_columns(self) -> frozenset[str]:
        return frozenset().union(*(f.required_columns for f in self.fields))


class OrFilter(_Filter):
    """``{"type": "or", "fields": [...]}``: some field matches (SQL's three-valued OR)."""

    type: Literal["or"]
    fields: list[Filter] = Field(min_length=1)

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        out = self.fields[0].evaluate(batch)
        for f in self.fields[1:]:
            out = pc.or_kleene(out, f.evaluate(batch))
        return out

    @property
    def required_columns(self) -> frozenset[str]:
        return frozenset().union(*(f.required_columns for f in self.fields))


class NotFilter(_Filter):
    """``{"type": "not", "field": {...}}``: the field does not match; unknown stays unknown (so no match)."""

    type: Literal["not"]
    field: Filter

    def evaluate(self, batch: Batch) -> pa.BooleanArray:
        return pc.invert(self.field.evaluate(batch))

    @property
    def required_columns(self) -> frozenset[str]:
        return self.field.required_columns


Filter = Annotated[
    Union[
        SelectorFilter, InFilter, BoundFilter, LikeFilter, RegexFilter, IntervalFilter, ExpressionFilter,
        TrueFilter, FalseFilter, AndFilter, OrFilter, NotFilter,
    ],
    Field(discriminator="type"),
]

for _model in (AndFilter, OrFilter, NotFilter):
    _model.model_rebuild()

FILTER_TYPES: tuple[str, ...] = ("selector", "in", "bound", "like", "regex", "interval", "expression", "true",
                                 "false", "and", "or", "not")


def parse_filter(data: Any, path: str = "filter") -> Filter:
    """Validate Druid filter JSON into a filter model; a SpecError names the field path and the bad value."""
    return validate_as(Filter, data, path)
