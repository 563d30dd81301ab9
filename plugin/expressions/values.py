"""Druid's expression types (LONG, DOUBLE, STRING) and the conversions between them, on Arrow arrays or scalars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.expressions.columns import (
    double_to_long,
    java_float_strings,
    null_mask,
    parse_doubles,
    parse_longs,
)

LONG, DOUBLE, STRING, NULL = "LONG", "DOUBLE", "STRING", "NULL"
LONG_ARRAY, DOUBLE_ARRAY, STRING_ARRAY = "ARRAY<LONG>", "ARRAY<DOUBLE>", "ARRAY<STRING>"
ARRAY_OF = {LONG: LONG_ARRAY, DOUBLE: DOUBLE_ARRAY, STRING: STRING_ARRAY}
ELEMENT_OF = {v: k for k, v in ARRAY_OF.items()}
ARROW_TYPE = {LONG: pa.int64(), DOUBLE: pa.float64(), STRING: pa.string(), NULL: pa.null()}
ARROW_TYPE.update({ARRAY_OF[k]: pa.list_(ARROW_TYPE[k]) for k in (LONG, DOUBLE, STRING)})
Data = Union[pa.Array, pa.Scalar]


class ScalarExpected(Exception):
    """An array reached an operator or function that takes scalars; the caller names itself in the error."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def is_array(kind: str) -> bool:
    return kind in ELEMENT_OF


@dataclass(frozen=True)
class Val:
    """A column (or a constant) with its Druid type."""

    data: Data
    kind: str


def null_of(kind: str) -> Val:
    return Val(pa.scalar(None, ARROW_TYPE[kind]), kind)


def on_array(fn: Callable[[pa.Array], pa.Array], data: Data) -> Data:
    """Apply an array-only function to an array or a scalar (a scalar goes through a one-row array)."""
    if isinstance(data, pa.Scalar):
        return fn(pa.array([data.as_py()], type=data.type))[0]
    return fn(data)


def as_double(v: Val) -> Data:
    if v.kind in ELEMENT_OF:
        raise ScalarExpected(v.kind)
    if v.kind == DOUBLE:
        return v.data
    if v.kind == LONG:
        return pc.cast(v.data, pa.float64())
    if v.kind == STRING:
        return on_array(parse_doubles, v.data)
    return pa.scalar(None, pa.float64())


def as_long(v: Val) -> Data:
    if v.kind in ELEMENT_OF:
        raise ScalarExpected(v.kind)
    if v.kind == LONG:
        return v.data
    if v.kind == DOUBLE:
        return on_array(double_to_long, v.data)
    if v.kind == STRING:
        return on_array(parse_longs, v.data)
    return pa.scalar(None, pa.int64())


def as_string(v: Val) -> Data:
    if v.kind in ELEMENT_OF:
        raise ScalarExpected(v.kind)
    if v.kind == STRING:
        return v.data
    if v.kind == LONG:
        return pc.cast(v.data, pa.string())
    if v.kind == DOUBLE:
        return on_array(java_float_strings, v.data)
    return pa.scalar(None, pa.string())


def as_kind(v: Val, kind: str) -> Data:
    if kind == v.kind or kind == NULL:
        return v.data
    if kind in ELEMENT_OF:
        raise ScalarExpected(v.kind if v.kind in ELEMENT_OF else kind)
    converters: dict[str, Callable[[Val], Data]] = {LONG: as_long, DOUBLE: as_double, STRING: as_string}
    return converters[kind](v)


def truth(v: Val) -> Data:
    """Druid's ``asBoolean`` (numbers: > 0; strings: equal to 'true' ignoring case), keeping nulls."""
    if v.kind in ELEMENT_OF:
        raise ScalarExpected(v.kind)
    if v.kind in (LONG, DOUBLE):
        return pc.greater(v.data, 0)
    if v.kind == STRING:
        return pc.equal(pc.utf8_lower(v.data), "true")
    return pa.scalar(None, pa.bool_())


def bool_to_long(data: Data) -> Val:
    return Val(pc.cast(data, pa.int64()), LONG)


def merge_kinds(kinds: list[str], start: Optional[str] = None) -> str:
    """Druid's ``ExpressionTypeConversion.function`` folded over candidate types; nulls have no type."""
    ks = [k for k in kinds if k != NULL] + ([start] if start else [])
    if not ks:
        return NULL
    arrays = [k for k in ks if k in ELEMENT_OF]
    if arrays:
        if len(set(ks)) > 1:
            raise ScalarExpected(arrays[0])
        return arrays[0]
    if STRING in ks:
        return STRING
    return DOUBLE if DOUBLE in ks else LONG


def to_numpy(data: Data, n: int, dtype: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(values, null_mask)`` of an array or broadcast scalar."""
    if isinstance(data, pa.Scalar):
        if not data.is_valid:
            return np.zeros(n, dtype=dtype), np.ones(n, dtype=bool)
        return np.full(n, data.as_py(), dtype=dtype), None
    fill = 0 if np.dtype(dtype).kind in "iu" else 0.0
    return np.asarray(pc.fill_null(data, fill).to_numpy(zero_copy_only=False), dtype=dtype), null_mask(data)


def or_masks(*masks: Optional[np.ndarray]) -> Optional[np.ndarray]:
    out = None
    for m in masks:
        if m is not None:
            out = m.copy() if out is None else out | m
    return out
