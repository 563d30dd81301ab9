"""Array functions (Druid's ``math-expr.md``, "Array functions"), vectorised over the flat elements of all rows.

Where Druid takes an array, a scalar is a one-element array (null stays null), as in Druid. Unless stated
otherwise a null array gives null.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.expressions.lists import (
    Lists,
    as_element,
    codes,
    concat_rows,
    from_offsets,
    isin,
    lists,
    masked_long,
    per_row_any,
    per_row_count,
    row_keys,
    singletons,
)
from druidflow.expressions.registry import function, literal_check
from druidflow.expressions.strings import check_regex
from druidflow.expressions.tree import Call, Ctx
from druidflow.expressions.values import (
    ARRAY_OF,
    ARROW_TYPE,
    ELEMENT_OF,
    NULL,
    STRING,
    ScalarExpected,
    Val,
    as_long,
    as_string,
    is_nested,
    merge_kinds,
    null_of,
)


def _arg_lists(call: Call, ctx: Ctx, i: int) -> Lists:
    return lists(call.args[i].evaluate(ctx), ctx.n)


def _longs(v: Val, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A LONG argument as (values, null mask) for ``n`` rows."""
    arr = pa.array(np.zeros(n, dtype=np.int64)) if v.kind == NULL else None
    if arr is None:
        data = as_long(v)
        arr = pa.repeat(data, n) if isinstance(data, pa.Scalar) else data
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool) if v.kind != NULL else np.ones(n, dtype=bool)
    return np.asarray(pc.fill_null(arr, 0).to_numpy(zero_copy_only=False), dtype=np.int64), null


@function("array", 1, None)
def _array(call: Call, ctx: Ctx) -> Val:
    values = [a.evaluate(ctx) for a in call.args]
    if any(v.kind in ELEMENT_OF for v in values):
        return _array_of_arrays(values, ctx.n)
    element = values[0].kind if values[0].kind != NULL else STRING
    return concat_rows([singletons(v, ctx.n, element) for v in values]).to_val()


def _array_of_arrays(values: list[Val], n: int) -> Val:
    """``array(array(1, 2), [3])``: each row an array of the arguments' arrays, their elements cast to the least
    restrictive element kind (Druid's FunctionTest: ``array(a, b)`` of a STRING and a LONG array gives
    ARRAY<ARRAY<STRING>>). A null argument is a null element."""
    for v in values:
        if v.kind != NULL and (v.kind not in ELEMENT_OF or is_nested(v.kind)):
            raise ScalarExpected(v.kind)  # arrays and scalars do not mix; arrays nest two levels at most
    element = merge_kinds([ELEMENT_OF[v.kind] for v in values if v.kind != NULL])
    inner = ARRAY_OF[element]
    columns = [pa.nulls(n, ARROW_TYPE[inner]) if v.kind == NULL else lists(v, n).cast(element).to_val().data for v in values]
    k = len(columns)
    # row r holds argument j's row r: element r * k + j of the result is row r of column j
    take = (np.arange(n, dtype=np.int64)[:, None] + n * np.arange(k, dtype=np.int64)[None, :]).ravel()
    children = pa.concat_arrays(columns).take(pa.array(take))
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int64).astype(np.int32))
    return Val(pa.ListArray.from_arrays(offsets, children), ARRAY_OF[inner])


@function("array_length", 1)
def _array_length(call: Call, ctx: Ctx) -> Val:
    a = _arg_lists(call, ctx, 0)
    return masked_long(a.lengths, ~a.valid)


def _element_at(call: Call, ctx: Ctx, base: int) -> Val:
    a = _arg_lists(call, ctx, 0)
    index, null = _longs(call.args[1].evaluate(ctx), ctx.n)
    index = index - base
    ok = a.valid & ~null & (index >= 0) & (index < a.lengths)
    take = pa.array(np.where(ok, a.offsets[:-1] + index, 0), mask=~ok)
    return Val(a.values.take(take) if len(a.values) else pa.nulls(ctx.n, ARROW_TYPE[a.element]), a.element)


@function("array_offset", 2)
def _array_offset(call: Call, ctx: Ctx) -> Val:
    return _element_at(call, ctx, 0)


@function("array_ordinal", 2)
def _array_ordinal(call: Call, ctx: Ctx) -> Val:
    return _element_at(call, ctx, 1)


def _needles(v: Val, n: int, element: str) -> Lists:
    """array_contains' second argument: an array, or a scalar as one element (a null scalar is a null element)."""
    if v.kind in ELEMENT_OF:
        return lists(v, n).cast(element)
    return singletons(v, n, element)


@function("array_contains", 2)
def _array_contains(call: Call, ctx: Ctx) -> Val:
    a = _arg_lists(call, ctx, 0)
    b = _needles(call.args[1].evaluate(ctx), ctx.n, a.element)
    ca, cb = codes(a.values, b.values)
    if b.lengths.max(initial=0) <= 1:  # one needle per row (the usual case): compare each element with its row's
        needle = np.zeros(ctx.n, dtype=np.int64)
        needle[b.parents] = cb
        hit = per_row_any(ctx.n, a.parents, ca == needle[a.parents])
        return masked_long(hit | (b.lengths == 0), ~a.valid)
    k = int(max(ca.max(initial=0), cb.max(initial=0)))
    found = isin(row_keys(b.parents, cb, k), row_keys(a.parents, ca, k))
    every = per_row_count(ctx.n, b.parents, found) == b.lengths
    return masked_long(every, ~a.valid)


@function("array_overlap", 2)
def _array_overlap(call: Call, ctx: Ctx) -> Val:
    a = _arg_lists(call, ctx, 0)
    b = _arg_lists(call, ctx, 1).cast(a.element)
    ca, cb = codes(a.values, b.values)
    k = int(max(ca.max(initial=0), cb.max(initial=0)))
    shared = isin(row_keys(a.parents, ca, k), row_keys(b.parents[b.valid[b.parents]], cb[b.valid[b.parents]], k))
    return masked_long(per_row_any(ctx.n, a.parents, shared), ~a.valid)


@function("scalar_in_array", 2)
def _scalar_in_array(call: Call, ctx: Ctx) -> Val:
    x = call.args[0].evaluate(ctx)
    if x.kind in ELEMENT_OF:
        raise ScalarExpected(x.kind)
    a = _arg_lists(call, ctx, 1)
    needle = as_element(x, a.element, ctx.n)
    cv, cx = codes(a.values, needle)
    hit = per_row_any(ctx.n, a.parents, cv == cx[a.parents])
    return masked_long(hit, np.asarray(needle.is_null().to_numpy(zero_copy_only=False), dtype=bool))


def _first_match(call: Call, ctx: Ctx, base: int) -> Val:
    a = _arg_lists(call, ctx, 0)
    needle = as_element(call.args[1].evaluate(ctx), a.element, ctx.n)
    cv, cx = codes(a.values, needle)
    match = cv == cx[a.parents]
    first = np.full(ctx.n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, a.parents[match], a.local[match])
    found = first != np.iinfo(np.int64).max
    return masked_long(np.where(found, first + base, 0), ~(found & a.valid))


@function("array_offset_of", 2)
def _array_offset_of(call: Call, ctx: Ctx) -> Val:
    return _first_match(call, ctx, 0)


@function("array_ordinal_of", 2)
def _array_ordinal_of(call: Call, ctx: Ctx) -> Val:
    return _first_match(call, ctx, 1)


def _add_element(call: Call, ctx: Ctx, array_arg: int) -> Lists:
    a = _arg_lists(call, ctx, array_arg)
    x = call.args[1 - array_arg].evaluate(ctx)
    if x.kind in ELEMENT_OF:
        raise ScalarExpected(x.kind)
    # one element in each row whose array is not null (a null array gives null)
    one = from_offsets(a.valid.astype(np.int64), as_element(x, a.element, ctx.n).filter(pa.array(a.valid)), a.valid, a.element)
    return concat_rows([a, one] if array_arg == 0 else [one, a])


@function("array_append", 2)
def _array_append(call: Call, ctx: Ctx) -> Val:
    return _add_element(call, ctx, 0).to_val()


@function("array_prepend", 2)
def _array_prepend(call: Call, ctx: Ctx) -> Val:
    return _add_element(call, ctx, 1).to_val()


def _both(call: Call, ctx: Ctx) -> Lists:
    a = _arg_lists(call, ctx, 0)
    b = _arg_lists(call, ctx, 1).cast(a.element)
    return concat_rows([a, b])  # null when either is null, as Druid's two-array functions


@function("array_concat", 2)
def _array_concat(call: Call, ctx: Ctx) -> Val:
    return _both(call, ctx).to_val()


def _as_set(a: Lists) -> Lists:
    """Each row's distinct elements in ascending order, null first (Druid builds a sorted set)."""
    order = pc.sort_indices(pa.table({"p": pa.array(a.parents), "v": a.values}),
                            sort_keys=[("p", "ascending", "at_start"), ("v", "ascending", "at_start")])
    values = a.values.take(order)
    parents = a.parents[np.asarray(order)]
    (code,) = codes(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = (parents[1:] != parents[:-1]) | (code[1:] != code[:-1])
    lengths = np.bincount(parents[keep], minlength=a.n)
    return from_offsets(lengths, values.filter(pa.array(keep)), a.valid, a.element)


@function("array_set_add", 2)
def _array_set_add(call: Call, ctx: Ctx) -> Val:
    return _as_set(_add_element(call, ctx, 0)).to_val()


@function("array_set_add_all", 2)
def _array_set_add_all(call: Call, ctx: Ctx) -> Val:
    return _as_set(_both(call, ctx)).to_val()


@function("array_slice", 2, 3)
def _array_slice(call: Call, ctx: Ctx) -> Val:
    a = _arg_lists(call, ctx, 0)
    start, start_null = _longs(call.args[1].evaluate(ctx), ctx.n)
    if len(call.args) > 2:
        end, end_null = _longs(call.args[2].evaluate(ctx), ctx.n)
    else:
        end, end_null = a.lengths, np.zeros(ctx.n, dtype=bool)
    ok = a.valid & ~start_null & ~end_null & (start >= 0) & (start <= a.lengths) & (end >= start)
    lengths = np.where(ok, end - start, 0)
    out = from_offsets(lengths, pa.array([], ARROW_TYPE[a.element]), ok, a.element)
    # positions past the end of the input give null elements (array_slice(['a','b','c','d'], 4, 6) is [null, null])
    source = a.offsets[:-1][out.parents] + start[out.parents] + out.local
    inside = start[out.parents] + out.local < a.lengths[out.parents]
    take = pa.array(np.where(inside, source, 0), mask=~inside)
    values = a.values.take(take) if len(a.values) else pa.nulls(len(source), ARROW_TYPE[a.element])
    return Lists(out.offsets, values, ok, a.element).to_val()


@function("array_to_string", 2)
def _array_to_string(call: Call, ctx: Ctx) -> Val:
    a = _arg_lists(call, ctx, 0)
    delim = call.args[1].evaluate(ctx)
    text = pc.fill_null(as_string(Val(a.values, a.element)), "null")  # Java's String.valueOf(null)
    joined = pc.binary_join(Lists(a.offsets, text, a.valid, STRING).to_val().data, as_string(delim))
    return Val(joined, STRING)


def _check_split(call: Call) -> None:
    literal_check(1, (STRING,), "a literal regular expression", optional=False)(call)
    check_regex(call.literal(1))


@function("string_to_array", 2, literals=(1,), validate=_check_split)
def _string_to_array(call: Call, ctx: Ctx) -> Val:
    s = ctx.array(Val(as_string(call.args[0].evaluate(ctx)), STRING))
    pattern = call.literal(1)
    parts = lists(Val(pc.split_pattern_regex(s, pattern), "ARRAY<STRING>"), ctx.n)
    # Java's String.split drops trailing empty strings, except that "" splits into [""]
    empty = np.asarray(pc.equal(parts.values, "").to_numpy(zero_copy_only=False), dtype=bool)
    last = np.full(ctx.n, -1, dtype=np.int64)
    np.maximum.at(last, parts.parents[~empty], parts.local[~empty])
    whole_empty = np.asarray(pc.fill_null(pc.equal(s, ""), False).to_numpy(zero_copy_only=False), dtype=bool)
    keep = (parts.local <= last[parts.parents]) | whole_empty[parts.parents]
    lengths = np.bincount(parts.parents[keep], minlength=ctx.n)
    return from_offsets(lengths, parts.values.filter(pa.array(keep)), parts.valid, STRING).to_val()


def cast_array(v: Val, target: str, n: int) -> Val:
    """``cast(x, 'ARRAY<...>')``: elements cast to the element type; a scalar becomes a one-element array."""
    if v.kind == NULL:
        return null_of(target)
    return lists(v, n).cast(ELEMENT_OF[target]).to_val()

