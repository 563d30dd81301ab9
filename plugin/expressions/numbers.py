"""Math functions: abs, floor, ceil, round, sqrt, log, exp, pow, greatest, least."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.expressions.registry import function, literal_check
from druidflow.expressions.tree import Call, Ctx
from druidflow.expressions.values import (
    DOUBLE,
    LONG,
    NULL,
    STRING,
    Data,
    Val,
    as_double,
    as_kind,
    merge_kinds,
    null_of,
    on_array,
    to_numpy,
)

# -- maths --------------------------------------------------------------------------------------------------------


@function("abs", 1)
def _abs(call: Call, ctx: Ctx) -> Val:
    v = call.args[0].evaluate(ctx)
    if v.kind in (LONG, DOUBLE):
        return Val(pc.abs(v.data), v.kind)
    return null_of(LONG if v.kind == NULL else DOUBLE)  # Druid's math functions give null for strings


def _double_function(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    @function(name, 1)
    def _impl(call: Call, ctx: Ctx) -> Val:
        v = call.args[0].evaluate(ctx)
        if v.kind not in (LONG, DOUBLE):
            return null_of(DOUBLE)
        return Val(_numpy_unary(as_double(v), fn), DOUBLE)


def _numpy_unary(data: Data, fn: Callable[[np.ndarray], np.ndarray]) -> Data:
    def apply(arr: pa.Array) -> pa.Array:
        values, mask = to_numpy(arr, len(arr), np.float64)
        with np.errstate(all="ignore"):
            return pa.array(fn(values), type=pa.float64(), mask=mask)

    return on_array(apply, data)


_double_function("floor", np.floor)
_double_function("ceil", np.ceil)
_double_function("sqrt", np.sqrt)
_double_function("log", np.log)
_double_function("exp", np.exp)


@function("pow", 2)
def _pow(call: Call, ctx: Ctx) -> Val:
    x, y = call.args[0].evaluate(ctx), call.args[1].evaluate(ctx)
    if NULL in (x.kind, y.kind) or (x.kind == STRING and y.kind == STRING):
        return null_of(DOUBLE)
    return Val(pc.power(as_double(x), as_double(y)), DOUBLE)


@function("round", 1, 2, literals=(1,), validate=literal_check(1, (LONG,), "a literal integer scale", optional=False))
def _round(call: Call, ctx: Ctx) -> Val:
    v = call.args[0].evaluate(ctx)
    scale = call.literal(1) if len(call.args) > 1 else 0
    if v.kind == LONG:
        return Val(on_array(lambda a: _round_longs(a, scale), v.data), LONG) if scale < 0 else v
    if v.kind == DOUBLE:
        return Val(on_array(lambda a: _round_doubles(a, scale), v.data), DOUBLE)
    return null_of(DOUBLE if v.kind == STRING else LONG)


def _round_longs(arr: pa.Array, scale: int) -> pa.Array:
    """``BigDecimal.setScale(scale, HALF_UP)`` of longs for a negative scale: to a multiple of 10^-scale."""
    values, mask = to_numpy(arr, len(arr), np.int64)
    if -scale > 18:
        return pa.array(np.zeros_like(values), type=pa.int64(), mask=mask)
    unit = 10 ** (-scale)
    mag = np.abs(values)
    rounded = (mag + unit // 2) // unit * unit
    return pa.array(np.where(values < 0, -rounded, rounded), type=pa.int64(), mask=mask)


def _round_doubles(arr: pa.Array, scale: int) -> pa.Array:
    """``BigDecimal.valueOf(d).setScale(scale, HALF_UP).doubleValue()``, i.e. half away from zero on the decimal
    digits Java prints (so 2.675 rounds to 2.68, although its binary value is a hair below)."""
    values, mask = to_numpy(arr, len(arr), np.float64)
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


def _reduce_function(name: str, kernel: Callable[..., Data]) -> None:
    @function(name, 0, None)
    def _impl(call: Call, ctx: Ctx) -> Val:
        values = [a.evaluate(ctx) for a in call.args]
        kind = merge_kinds([v.kind for v in values], start=LONG)
        present = [as_kind(v, kind) for v in values if v.kind != NULL]
        if not present:
            return null_of(kind)
        if len(present) == 1:
            return Val(present[0], kind)
        return Val(kernel(*present, skip_nulls=True), kind)


_reduce_function("greatest", pc.max_element_wise)
_reduce_function("least", pc.min_element_wise)

