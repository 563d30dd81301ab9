"""Apply functions (Druid's ``math-expr.md``, "Apply functions"): a lambda applied to the elements of arrays.

The lambda's body is evaluated once over the flat elements of every row (a :class:`LambdaCtx` binds the
parameters to the elements, and any other column to its value in the element's row), never row by row in Python.
``fold`` and ``cartesian_fold`` carry an accumulator from one element to the next, so they evaluate the body once
per element *position* (as many passes as the longest array), each pass over all the rows that long.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.expressions.lists import (
    Lists,
    from_offsets,
    lists,
    masked_long,
    per_row_count,
)
from druidflow.expressions.registry import function
from druidflow.expressions.tree import Call, Ctx, Lambda, ctx_array
from druidflow.expressions.values import (
    ELEMENT_OF,
    NULL,
    STRING,
    Val,
    is_nested,
    merge_kinds,
    null_of,
    truth,
)


class LambdaCtx(Ctx):
    """Evaluation over array elements: the lambda's parameters are bound to them (hiding columns of the same
    name, as in Druid), and every other identifier reads the outer value of the element's row."""

    def __init__(self, outer: Ctx, rows: np.ndarray, bindings: dict[str, Val]) -> None:
        self.batch = outer.batch
        self.expression = outer.expression
        self.n = len(rows)
        self.outer = outer
        self.rows = pa.array(rows, pa.int64())
        self._columns = dict(bindings)

    def column(self, name: str) -> Val:
        v = self._columns.get(name)
        if v is None:
            o = self.outer.column(name)
            v = o if isinstance(o.data, pa.Scalar) else Val(o.data.take(self.rows), o.kind)
            self._columns[name] = v
        return v


def _lambda(call: Call) -> Lambda:
    lam = call.args[0]
    assert isinstance(lam, Lambda)  # checked by the parser
    return lam


#: functions whose lambda may give an array: each element maps to an array, the result is an array of arrays
ARRAY_VALUED_LAMBDAS = frozenset({"map", "cartesian_map"})


def _body(call: Call, ctx: Ctx, rows: np.ndarray, elements: list[Val], extra: Optional[Val] = None) -> Val:
    """The lambda's body over elements (one per parameter, ``extra`` for the last one), as a full array."""
    lam = _lambda(call)
    args = elements + ([extra] if extra is not None else [])
    child = LambdaCtx(ctx, rows, dict(zip(lam.params, args)))
    out = lam.body.evaluate(child)
    if out.kind in ELEMENT_OF and extra is None and (is_nested(out.kind) or call.name not in ARRAY_VALUED_LAMBDAS):
        raise ctx.error(call, f"the lambda of {call.name!r} must give a scalar, not {out.kind}")
    kind = out.kind if out.kind != NULL else STRING
    return Val(ctx_array(out, kind, len(rows)), kind)


def _one_array(call: Call, ctx: Ctx) -> tuple[Lists, Val]:
    a = lists(call.args[1].evaluate(ctx), ctx.n)
    return a, _body(call, ctx, a.parents, [Val(a.values, a.element)])


def _matches(call: Call, ctx: Ctx) -> tuple[Lists, np.ndarray]:
    a, body = _one_array(call, ctx)
    flags = np.asarray(pc.fill_null(truth(body), False).to_numpy(zero_copy_only=False), dtype=bool) \
        if len(body.data) else np.zeros(0, dtype=bool)
    return a, flags


def _one(n: int) -> int:
    return 1


@function("map", 2, lambda_params=_one)
def _map(call: Call, ctx: Ctx) -> Val:
    a, body = _one_array(call, ctx)
    return Lists(a.offsets, body.data, a.valid, body.kind).to_val()


@function("filter", 2, lambda_params=_one)
def _filter(call: Call, ctx: Ctx) -> Val:
    a, keep = _matches(call, ctx)
    lengths = per_row_count(ctx.n, a.parents, keep)
    # Druid's docs: "returning a new array with all matching elements, or null if no elements match"
    return from_offsets(lengths, a.values.filter(pa.array(keep)), a.valid & (lengths > 0), a.element).to_val()


@function("any", 2, lambda_params=_one)
def _any(call: Call, ctx: Ctx) -> Val:
    a, hit = _matches(call, ctx)
    return masked_long(per_row_count(ctx.n, a.parents, hit) > 0, ~a.valid)


@function("all", 2, lambda_params=_one)
def _all(call: Call, ctx: Ctx) -> Val:
    a, hit = _matches(call, ctx)
    return masked_long(per_row_count(ctx.n, a.parents, hit) == a.lengths, ~a.valid)


def _product(arrays: list[Lists], n: int) -> tuple[Lists, list[Val]]:
    """The Cartesian product of the arrays of each row, the first array varying slowest (Druid's order): the
    combinations as rows of elements, and for each array its element in each combination."""
    lengths = np.stack([a.lengths for a in arrays])
    valid = np.logical_and.reduce([a.valid for a in arrays])
    count = np.where(valid, np.prod(lengths, axis=0), 0)
    out = from_offsets(count, pa.array([], pa.null()), valid, STRING)
    rows = out.parents
    stride = np.ones(n, dtype=np.int64)
    elements: list[Val] = []
    for i in range(len(arrays) - 1, -1, -1):
        a = arrays[i]
        local = (out.local // stride[rows]) % np.maximum(a.lengths[rows], 1)
        elements.append(Val(a.values.take(pa.array(a.offsets[:-1][rows] + local)), a.element))
        stride = stride * a.lengths
    elements.reverse()
    return out, elements


@function("cartesian_map", 3, None, lambda_params=lambda n: n - 1)
def _cartesian_map(call: Call, ctx: Ctx) -> Val:
    arrays = [lists(a.evaluate(ctx), ctx.n) for a in call.args[1:]]
    combos, elements = _product(arrays, ctx.n)
    body = _body(call, ctx, combos.parents, elements)
    return Lists(combos.offsets, body.data, combos.valid, body.kind).to_val()


def _fold(call: Call, ctx: Ctx, combos: Lists, elements: list[Val]) -> Val:
    acc = call.args[-1].evaluate(ctx)
    kind = acc.kind
    acc_arr = ctx_array(acc, kind if kind != NULL else STRING, ctx.n)
    for k in range(int(combos.lengths.max(initial=0))):
        rows = np.flatnonzero(combos.valid & (combos.lengths > k))
        at = pa.array(combos.offsets[:-1][rows] + k)
        current = null_of(NULL) if kind == NULL else Val(acc_arr.take(pa.array(rows)), kind)
        out = _body(call, ctx, rows, [Val(e.data.take(at), e.kind) for e in elements], current)
        new_kind = kind if out.kind == kind else merge_kinds([kind, out.kind])
        whole = ctx_array(Val(acc_arr, kind) if kind != NULL else null_of(NULL), new_kind, ctx.n)
        source = np.arange(ctx.n, dtype=np.int64)
        source[rows] = ctx.n + np.arange(len(rows), dtype=np.int64)
        acc_arr = pa.concat_arrays([whole, ctx_array(out, new_kind, len(rows))]).take(pa.array(source))
        kind = new_kind
    if kind == NULL:
        return null_of(NULL)
    keep = pa.array(np.arange(ctx.n, dtype=np.int64), mask=~combos.valid)  # a null array folds to null
    return Val(acc_arr.take(keep), kind)


@function("fold", 3, lambda_params=lambda n: 2)
def _fold_one(call: Call, ctx: Ctx) -> Val:
    a = lists(call.args[1].evaluate(ctx), ctx.n)
    return _fold(call, ctx, a, [Val(a.values, a.element)])


@function("cartesian_fold", 3, None, lambda_params=lambda n: n - 1)
def _cartesian_fold(call: Call, ctx: Ctx) -> Val:
    arrays = [lists(a.evaluate(ctx), ctx.n) for a in call.args[1:-1]]
    combos, elements = _product(arrays, ctx.n)
    return _fold(call, ctx, combos, elements)
