"""Array values laid out for vectorised work: per-row offsets into one flat Arrow array of elements.

Every array function and apply function works on :class:`Lists`: the elements of all rows in one Arrow array
(``values``), where row ``r`` holds ``values[offsets[r]:offsets[r + 1]]``, and which rows are null. Kernels run
over the flat elements at once; numpy on the offsets maps results back to rows. Nothing loops over rows in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.expressions.tree import ctx_array
from druidflow.expressions.values import (
    ARRAY_OF,
    ARROW_TYPE,
    ELEMENT_OF,
    LONG,
    NULL,
    STRING,
    ScalarExpected,
    Val,
    as_kind,
    kind_of_arrow,
)


@dataclass(frozen=True)
class Lists:
    offsets: np.ndarray  # int64, one more than the rows
    values: pa.Array  # the elements of every row, in row order, of ARROW_TYPE[element]
    valid: np.ndarray  # bool per row: False where the array itself is null
    element: str  # LONG, DOUBLE or STRING

    @property
    def n(self) -> int:
        return len(self.valid)

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @cached_property
    def parents(self) -> np.ndarray:
        """The row of each element."""
        return np.repeat(np.arange(self.n, dtype=np.int64), self.lengths)

    @cached_property
    def local(self) -> np.ndarray:
        """Each element's 0-based position inside its row."""
        out: np.ndarray = np.arange(int(self.offsets[-1]), dtype=np.int64) - self.offsets[:-1][self.parents]
        return out

    def to_val(self) -> Val:
        if len(self.values) > 2**31 - 1:
            raise ValueError("an array result holds more than 2^31 - 1 elements in one batch")
        mask = None if self.valid.all() else pa.array(~self.valid)
        arr = pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), self.values, mask=mask)
        return Val(arr, ARRAY_OF[self.element])

    def cast(self, element: str) -> Lists:
        if element == self.element:
            return self
        values = ctx_array(Val(self.values, self.element), element, len(self.values))
        return Lists(self.offsets, values, self.valid, element)


def from_offsets(lengths: np.ndarray, values: pa.Array, valid: np.ndarray, element: str) -> Lists:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Lists(offsets, values, valid, element)


def lists(v: Val, n: int) -> Lists:
    """``v`` as arrays of ``n`` rows. A scalar is a one-element array in each row, and null stays null (Druid's
    cast of a scalar to an array)."""
    if v.kind in ELEMENT_OF:
        arr = v.data
        assert isinstance(arr, pa.Array)
        if isinstance(arr, pa.LargeListArray):
            arr = arr.cast(pa.list_(arr.type.value_type))
        lengths = np.asarray(pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return from_offsets(lengths, pc.list_flatten(arr), valid, ELEMENT_OF[v.kind])
    element = v.kind if v.kind != NULL else STRING
    values = ctx_array(v, element, n)
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return from_offsets(valid.astype(np.int64), values.filter(pa.array(valid)), valid, element)


def singletons(v: Val, n: int, element: str) -> Lists:
    """``v`` (a scalar) as a one-element array in every row, a null value being a null element."""
    values = ctx_array(v, element, n) if v.kind != NULL else pa.nulls(n, ARROW_TYPE[element])
    return from_offsets(np.ones(n, dtype=np.int64), values, np.ones(n, dtype=bool), element)


def concat_rows(parts: list[Lists]) -> Lists:
    """Row by row, the elements of each part one after another (the parts share the element kind)."""
    element = parts[0].element
    n = parts[0].n
    lengths = np.sum([p.lengths for p in parts], axis=0)
    out = from_offsets(lengths, pa.array([], ARROW_TYPE[element]), np.logical_and.reduce([p.valid for p in parts]), element)
    source = np.empty(int(lengths.sum()), dtype=np.int64)
    before = np.zeros(n, dtype=np.int64)  # elements of earlier parts already placed in each row
    base = 0
    for p in parts:
        dest = out.offsets[:-1][p.parents] + before[p.parents] + p.local
        source[dest] = base + np.arange(len(p.values), dtype=np.int64)
        before += p.lengths
        base += len(p.values)
    values = pa.concat_arrays([p.cast(element).values for p in parts]).take(pa.array(source))
    return Lists(out.offsets, values, out.valid, element)


def codes(*arrays: pa.Array) -> list[np.ndarray]:
    """Integer codes of the values of arrays of one type, equal where the values are equal; null is 0."""
    joined = pa.concat_arrays(list(arrays)) if len(arrays) > 1 else arrays[0]
    if pa.types.is_list(joined.type):
        raise ScalarExpected(ARRAY_OF[kind_of_arrow(joined.type)])  # elements that are arrays cannot be compared here
    distinct = pc.unique(joined.drop_null()) if joined.null_count else pc.unique(joined)
    out = []
    for a in arrays:
        idx = pc.index_in(a, value_set=distinct)
        out.append(np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64) + 1)
    return out


def row_keys(parents: np.ndarray, code: np.ndarray, ncodes: int) -> np.ndarray:
    """One int64 per (row, value) pair, to test membership within a row with :func:`isin`."""
    out: np.ndarray = parents * (ncodes + 1) + code
    return out


def isin(keys: np.ndarray, among: np.ndarray) -> np.ndarray:
    """``np.isin`` by a lookup table over the keys' range when it is small (row keys usually are), else through
    Arrow's hash set; numpy's default sorts both sides, an order of magnitude slower here."""
    if len(keys) == 0 or len(among) == 0:
        return np.zeros(len(keys), dtype=bool)
    span = int(max(keys.max(), among.max())) - int(min(keys.min(), among.min()))
    if span < 64 * (len(keys) + len(among)) + 1_000_000:
        out: np.ndarray = np.isin(keys, among, kind="table")
        return out
    hits = pc.is_in(pa.array(keys, pa.int64()), value_set=pa.array(among, pa.int64()))
    return np.asarray(hits.to_numpy(zero_copy_only=False), dtype=bool)


def per_row_any(n: int, parents: np.ndarray, flags: np.ndarray) -> np.ndarray:
    return np.bincount(parents[flags], minlength=n) > 0


def per_row_count(n: int, parents: np.ndarray, flags: np.ndarray) -> np.ndarray:
    return np.bincount(parents[flags], minlength=n)


def masked_long(values: np.ndarray, null: Optional[np.ndarray]) -> Val:
    """A LONG result per row (0/1 flags or counts), null where ``null`` says."""
    return Val(pa.array(values.astype(np.int64), pa.int64(), mask=null), LONG)


def as_element(v: Val, element: str, n: int) -> pa.Array:
    """A scalar argument as ``n`` values of an array's element kind (Druid casts it to the element type)."""
    if v.kind == NULL:
        return pa.nulls(n, ARROW_TYPE[element])
    return ctx_array(Val(as_kind(v, element), element), element, n)
