"""Conditional functions: if, nvl, isnull, notnull, case_searched, case_simple, cast."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import SpecError
from druidflow.expressions.arrays import cast_array
from druidflow.expressions.registry import function
from druidflow.expressions.tree import Call, Ctx, compare
from druidflow.expressions.values import (
    ARROW_TYPE,
    DOUBLE,
    DOUBLE_ARRAY,
    LONG,
    LONG_ARRAY,
    NULL,
    STRING,
    STRING_ARRAY,
    Data,
    Val,
    as_kind,
    bool_to_long,
    is_array,
    merge_kinds,
    null_of,
    truth,
)

# -- conditionals -------------------------------------------------------------------------------------------------


def _choose(ctx: Ctx, conditions: list[Data], results: list[Val], otherwise: Optional[Val]) -> Val:
    candidates = results + ([otherwise] if otherwise is not None else [])
    kind = merge_kinds([v.kind for v in candidates])
    if kind == NULL:
        return null_of(NULL)
    values = [as_kind(v, kind) if v.kind != NULL else pa.scalar(None, ARROW_TYPE[kind]) for v in candidates]
    if otherwise is None:
        values.append(pa.scalar(None, ARROW_TYPE[kind]))
    if len(conditions) == 1:
        return Val(pc.if_else(pc.fill_null(conditions[0], False), values[0], values[1]), kind)
    conds = [c if isinstance(c, pa.Array) else pa.repeat(c, ctx.n) for c in conditions]
    struct = pa.StructArray.from_arrays(conds, names=[f"c{i}" for i in range(len(conds))])
    return Val(pc.case_when(struct, *values), kind)


@function("if", 3)
def _if(call: Call, ctx: Ctx) -> Val:
    cond = truth(call.args[0].evaluate(ctx))
    return _choose(ctx, [cond], [call.args[1].evaluate(ctx)], call.args[2].evaluate(ctx))


@function("nvl", 2)
def _nvl(call: Call, ctx: Ctx) -> Val:
    x, y = call.args[0].evaluate(ctx), call.args[1].evaluate(ctx)
    kind = merge_kinds([x.kind, y.kind])
    if kind == NULL:
        return null_of(NULL)
    if x.kind == NULL:
        return Val(as_kind(y, kind), kind)
    if y.kind == NULL:
        return Val(as_kind(x, kind), kind)
    return Val(pc.coalesce(as_kind(x, kind), as_kind(y, kind)), kind)


@function("isnull", 1)
def _isnull(call: Call, ctx: Ctx) -> Val:
    v = call.args[0].evaluate(ctx)
    return bool_to_long(pc.is_null(v.data) if v.kind != NULL else pa.scalar(True))


@function("notnull", 1)
def _notnull(call: Call, ctx: Ctx) -> Val:
    v = call.args[0].evaluate(ctx)
    return bool_to_long(pc.is_valid(v.data) if v.kind != NULL else pa.scalar(False))


@function("case_searched", 2, None)
def _case_searched(call: Call, ctx: Ctx) -> Val:
    args = call.args
    pairs = len(args) // 2
    conds = [truth(args[2 * i].evaluate(ctx)) for i in range(pairs)]
    results = [args[2 * i + 1].evaluate(ctx) for i in range(pairs)]
    otherwise = args[-1].evaluate(ctx) if len(args) % 2 else None
    return _choose(ctx, conds, results, otherwise)


@function("case_simple", 3, None)
def _case_simple(call: Call, ctx: Ctx) -> Val:
    args = call.args
    subject = args[0].evaluate(ctx)
    pairs = (len(args) - 1) // 2
    conds = [truth(compare("==", subject, args[1 + 2 * i].evaluate(ctx))) for i in range(pairs)]
    results = [args[2 + 2 * i].evaluate(ctx) for i in range(pairs)]
    otherwise = args[-1].evaluate(ctx) if (len(args) - 1) % 2 else None
    return _choose(ctx, conds, results, otherwise)


# Druid's names for the cast types, with the legacy array names it still accepts
CAST_TYPES = {LONG: LONG, DOUBLE: DOUBLE, STRING: STRING, LONG_ARRAY: LONG_ARRAY, DOUBLE_ARRAY: DOUBLE_ARRAY,
              STRING_ARRAY: STRING_ARRAY, "LONG_ARRAY": LONG_ARRAY, "DOUBLE_ARRAY": DOUBLE_ARRAY,
              "STRING_ARRAY": STRING_ARRAY}


def _check_cast(call: Call) -> None:
    target = call.literal(1)
    if not isinstance(target, str) or target.upper() not in CAST_TYPES:
        raise SpecError("", target, "the type must be 'LONG', 'DOUBLE', 'STRING', 'ARRAY<LONG>', 'ARRAY<DOUBLE>' or "
                                    "'ARRAY<STRING>'")


@function("cast", 2, literals=(1,), validate=_check_cast)
def _cast(call: Call, ctx: Ctx) -> Val:
    v = call.args[0].evaluate(ctx)
    kind = CAST_TYPES[call.literal(1).upper()]
    if is_array(kind):
        return cast_array(v, kind, ctx.n)
    if v.kind == NULL:
        return null_of(kind)
    return Val(as_kind(v, kind), kind)
