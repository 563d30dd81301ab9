"""Rollup: combine rows with equal (truncated time, dimensions) through the aggregators, vectorised.

Every table handled here carries, for each aggregator, a column named after the aggregator holding its
per-row value (``count`` is a column of ones), and for ``first``/``last`` a companion column with the time
that orders them. Ingest-time aggregation and the combining aggregation of rolled-up data (intermediate
persists, compaction) are therefore one operation: sum the sums and counts, min the mins, max the maxes, and
pick the first/last value by its companion time. That is Druid's combining-factory rule.

How it is fast: each dimension becomes integer ranks (its dictionary, sorted), the time and the ranks are
packed into one int64 key in mixed radix with time most significant, and one stable ``argsort`` of that key
both groups the rows and puts them in Druid's order (time, then dimensions). Aggregates are ``reduceat``
over the sorted runs. When the key space does not fit in 63 bits, a lexicographic sort over the separate
rank columns does the same job more slowly. No Python loop runs per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TIME = "__time"


def companion_time_column(metric: str) -> str:
    """The column holding the time that orders a first/last metric (Druid stores (time, value) pairs)."""
    return f"__time_{metric}"


@dataclass(frozen=True)
class MetricColumn:
    """How one metric column combines: kind is sum, min, max, first, last, any (count is a sum of ones) or sketch
    (``sketch`` says which: its rows are built into, or unioned as, serialized sketches by :mod:`druidflow.sketches`)."""

    name: str
    kind: str
    arrow_type: pa.DataType
    sketch: Optional[Any] = None

    @property
    def companion(self) -> Optional[str]:
        return companion_time_column(self.name) if self.kind in ("first", "last") else None

    @property
    def columns(self) -> list[str]:
        return [self.name, self.companion] if self.companion else [self.name]


_VALUE_TYPES = {"long": pa.int64(), "double": pa.float64(), "float": pa.float32(), "string": pa.string()}


def metric_columns(aggregators: Sequence[Any]) -> list[MetricColumn]:
    """Metric columns for aggregator specs (objects with ``name``, ``kind`` and ``value_type``)."""
    out = []
    for agg in aggregators:
        if agg.kind == "count":
            out.append(MetricColumn(agg.name, "sum", pa.int64()))
        elif agg.kind == "sketch":
            out.append(MetricColumn(agg.name, "sketch", pa.binary(), sketch=agg.sketch))
        else:
            out.append(MetricColumn(agg.name, agg.kind, _VALUE_TYPES[agg.value_type]))
    return out


@dataclass
class _Key:
    """A dimension (or time) as integer ranks 0..card-1 (0 is null when ``has_null``) plus its sorted values."""

    ranks: np.ndarray
    card: int
    values: Optional[pa.Array]  # sorted distinct non-null values; None for time


def _dictionary(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Per-row dictionary indices (int32, -1 for null) and the dictionary, unifying per-batch dictionaries."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            col = col.chunk(0)
        else:
            return _unify_shared(col.chunks)
    return _indices(col), col.dictionary


def _indices(arr: pa.DictionaryArray) -> np.ndarray:
    indices = arr.indices if arr.null_count == 0 else pc.fill_null(arr.indices, -1)
    return indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def _unify_shared(chunks: list[pa.DictionaryArray]) -> tuple[np.ndarray, pa.Array]:
    """Unify the dictionaries of many chunks that mostly share a few dictionaries (the batches of one persist
    all point at that persist's dictionary): each distinct dictionary is hashed once, not once per chunk."""
    distinct: dict[tuple[Any, ...], int] = {}
    dictionaries: list[pa.Array] = []
    owner = []
    for c in chunks:
        d = c.dictionary
        bufs = d.buffers()
        key = (len(d), d.offset, tuple(b.address if b is not None else 0 for b in bufs))
        if key not in distinct:
            distinct[key] = len(dictionaries)
            dictionaries.append(d)
        owner.append(distinct[key])
    if len(dictionaries) == 1:
        unified = dictionaries[0]
        remaps: list[Optional[np.ndarray]] = [None]
    else:
        # One hash pass over all the dictionaries' entries: each entry's position in the unified dictionary (in order
        # of first appearance, a null entry a value of its own). Looking each dictionary up in the unified one
        # would hash the whole unified dictionary once per dictionary.
        encoded = pc.dictionary_encode(pa.concat_arrays(dictionaries), null_encoding="encode")
        unified = encoded.dictionary
        positions = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        bounds = np.cumsum([0] + [len(d) for d in dictionaries])
        remaps = [positions[bounds[i] : bounds[i + 1]] for i in range(len(dictionaries))]
    parts = []
    for c, o in zip(chunks, owner):
        idx = _indices(c)
        remap = remaps[o]
        if remap is not None:
            idx = np.where(idx >= 0, remap[np.maximum(idx, 0)], -1).astype(np.int32) if len(remap) else np.full(len(idx), -1, np.int32)
        parts.append(idx)
    return (np.concatenate(parts) if parts else np.zeros(0, np.int32)), unified


def _dimension_key(col: pa.ChunkedArray) -> _Key:
    indices, dictionary = _dictionary(col)
    nulls = bool(len(indices)) and int(indices.min()) < 0
    if len(dictionary):
        # Slices of persisted batches carry their whole batch's dictionary: keep only the values in use, so that
        # ranking sorts fewer strings and the segments written from these rows carry only their own values.
        used = np.bincount(indices[indices >= 0] if nulls else indices, minlength=len(dictionary)) > 0
        if not used.all():
            # The extra last entry maps index -1 (null) to itself through numpy's negative indexing.
            remap = np.append(np.cumsum(used, dtype=np.int32) - 1, np.int32(-1))
            indices = remap[indices]
            dictionary = dictionary.filter(pa.array(used))
    if dictionary.null_count:
        # A null inside the dictionary (possible after unification): treat it as a null row.
        null_entries = np.flatnonzero(pc.is_null(dictionary).to_numpy(zero_copy_only=False))
        indices = np.where(np.isin(indices, null_entries), -1, indices).astype(np.int32)
    order = pc.array_sort_indices(dictionary, null_placement="at_end").to_numpy(zero_copy_only=False)
    # rank_of[i] is the 1-based rank of dictionary entry i; its extra last entry, 0, is what index -1 (a null row)
    # reads through numpy's negative indexing.
    rank_of = np.zeros(len(dictionary) + 1, dtype=np.int32)
    rank_of[order] = np.arange(1, len(dictionary) + 1, dtype=np.int32)
    return _Key(rank_of[indices], len(dictionary) + 1, dictionary.take(pa.array(order)))


def _time_key(col: pa.ChunkedArray, step: Optional[int]) -> _Key:
    times = _combined(col).to_numpy(zero_copy_only=False)
    if step and len(times):
        # Truncated to a fixed-width granularity: the bucket number is the rank, no hashing needed.
        lo = times.min()
        ranks = (times - lo) // step
        card = int(ranks.max()) + 1
        if card <= 4 * len(times) + 1024:
            return _Key(ranks, card, None)
    key = _dimension_key(col)
    return _Key(key.ranks - 1, key.card - 1, None)


class _Groups(NamedTuple):
    """Rows grouped by key, groups in ascending key order: ``first_rows`` holds one row of each group.

    Either ``ids`` (the group of every row; found without sorting when the packed key space is small) or
    ``order``/``starts`` (the rows sorted by key, and where each group starts) describes the grouping.
    """

    first_rows: np.ndarray
    ids: Optional[np.ndarray] = None
    order: Optional[np.ndarray] = None
    starts: Optional[np.ndarray] = None

    @property
    def num_groups(self) -> int:
        return len(self.first_rows)


def _packed(keys: list[_Key], n: int) -> tuple[Optional[np.ndarray], int]:
    """Every row's key packed into one int64 (rank by rank), and the size of that key space; (None, 0) when the
    space does not fit in 63 bits."""
    capacity = 1
    for k in keys:
        capacity *= max(k.card, 1)
    if capacity >= 2**63:
        return None, 0
    packed = np.zeros(n, dtype=np.int64)
    for k in keys:
        packed *= max(k.card, 1)
        packed += k.ranks.astype(np.int64, copy=False)
    return packed, capacity


#: The key space (product of the key columns' cardinalities) up to which rows are grouped by a presence table
#: instead of a sort: ``DENSE_KEYS_PER_ROW * rows + DENSE_KEYS_SLACK`` (a bool and an int64 per possible key).
DENSE_KEYS_PER_ROW = 4
DENSE_KEYS_SLACK = 1024


def _group(keys: list[_Key], n: int, *, sort_rows: bool, sorted_runs: bool = False) -> _Groups:
    """Group the rows by key. When the rows need not come back sorted and the key space is at most a few times the
    row count (few groups: heavy rollup), each row's group is read off a presence table of the whole key space in
    linear time; otherwise the rows are sorted by key."""
    packed, capacity = _packed(keys, n)
    if packed is not None and not sort_rows and capacity <= DENSE_KEYS_PER_ROW * n + DENSE_KEYS_SLACK:
        present = np.zeros(capacity, dtype=bool)
        present[packed] = True
        group_of_key = np.cumsum(present, dtype=np.int64) - 1
        ids = group_of_key[packed]
        first_rows = np.full(int(group_of_key[-1]) + 1, n, dtype=np.int64)
        np.minimum.at(first_rows, ids, np.arange(n, dtype=np.int64))
        return _Groups(first_rows, ids=ids)
    if packed is not None:
        # Any row of a group may represent it (all its key columns are equal), so the sort need not be stable;
        # but rows that are already a few sorted runs (merging persists) sort in near-linear time with timsort.
        order = np.argsort(packed, kind="stable" if sorted_runs else "quicksort")
        s = packed[order]
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(s[1:], s[:-1], out=change[1:])
    else:
        order = np.lexsort([k.ranks for k in reversed(keys)])
        change = np.zeros(n, dtype=bool)
        change[0] = True
        for k in keys:
            r = k.ranks[order]
            change[1:] |= r[1:] != r[:-1]
    starts = np.flatnonzero(change)
    return _Groups(order[starts], order=order, starts=starts)


def _combined(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _numpy(col: pa.ChunkedArray) -> tuple[np.ndarray, Optional[np.ndarray]]:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count == 0:
        return arr.to_numpy(zero_copy_only=False), None
    valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
    return pc.fill_null(arr, 0).to_numpy(zero_copy_only=False), valid


def _reduce(
    values: np.ndarray, valid: Optional[np.ndarray], kind: str, groups: _Groups
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Each group's sum, min or max of ``values`` (rows where ``valid`` is False left out), and the mask of groups
    that had no valid value."""
    if valid is not None and kind != "sum":
        values = np.where(valid, values, _extreme(values.dtype, high=kind == "min"))
    if groups.ids is not None:
        ids = groups.ids
        if kind == "sum":
            out = np.zeros(groups.num_groups, dtype=values.dtype)
            np.add.at(out, ids, values)
        elif kind == "min":
            out = np.full(groups.num_groups, _extreme(values.dtype, high=True), dtype=values.dtype)
            np.minimum.at(out, ids, values)
        else:
            out = np.full(groups.num_groups, _extreme(values.dtype, high=False), dtype=values.dtype)
            np.maximum.at(out, ids, values)
        mask = None if valid is None else np.bincount(ids, weights=valid, minlength=groups.num_groups) == 0
        return out, mask
    assert groups.order is not None and groups.starts is not None
    v = values[groups.order]
    ufunc = {"sum": np.add, "min": np.minimum, "max": np.maximum}[kind]
    out = ufunc.reduceat(v, groups.starts)
    mask = None
    if valid is not None:
        mask = np.add.reduceat(valid[groups.order].astype(np.int64), groups.starts) == 0
    return out, mask


def _extreme(dtype: np.dtype[Any], high: bool) -> float:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return info.max if high else info.min
    return np.inf if high else -np.inf


def rollup(
    table: pa.Table,
    dimensions: Sequence[str],
    metrics: Sequence[MetricColumn],
    *,
    combine: bool = True,
    time_step: Optional[int] = None,
    leading: Sequence[str] = (),
    sorted_runs: bool = False,
) -> pa.Table:
    """Rows sorted by (time, dimensions); with ``combine`` one row per distinct key with every metric combined.

    Dimension columns come back dictionary-encoded (strings) or as their own type (numbers). ``time_step``
    (the query granularity's fixed width in ms, when it has one) lets time be ranked without hashing.
    ``leading`` are integer key columns that sort before time (the builder's time-chunk column).
    ``sorted_runs`` says the rows are a concatenation of tables this function returned (persists being merged).
    """
    n = table.num_rows
    if n == 0:
        return table
    if combine and _few_groups(table, [*leading, TIME, *dimensions], metrics):
        # Many rows per group: Arrow's hash aggregation folds the rows into their groups in one pass, and the few
        # groups left are ordered and encoded below like any rolled-up rows (each its own group there).
        table = _hash_aggregate(table, [*leading, TIME, *dimensions], metrics)
        n = table.num_rows
    lead = [_time_key(table.column(c), None) for c in leading]
    keys = lead + [_time_key(table.column(TIME), time_step)] + [_dimension_key(table.column(d)) for d in dimensions]
    groups = _group(keys, n, sort_rows=not combine, sorted_runs=sorted_runs)
    order = groups.order
    first_rows = groups.first_rows if combine else order
    assert first_rows is not None  # without combine, the rows come back sorted (``order``)
    columns: dict[str, pa.Array] = {}
    for c in list(leading) + [TIME]:
        columns[c] = pa.array(_combined(table.column(c)).to_numpy(zero_copy_only=False)[first_rows], pa.int64())
    for name, key in zip(dimensions, keys[len(lead) + 1 :]):
        columns[name] = _decode_dimension(key, first_rows, table.column(name).type)
    for m in metrics:
        col = _combined(table.column(m.name))
        if m.kind == "sketch":
            columns[m.name] = _sketches(m, col, groups, combine)
            continue
        if not combine:
            columns[m.name] = col.take(pa.array(order)).cast(m.arrow_type)
            if m.companion:
                columns[m.companion] = _combined(table.column(m.companion)).take(pa.array(order)).cast(pa.int64())
            continue
        if m.kind in ("sum", "min", "max"):
            values, valid = _numpy(col)
            out, mask = _reduce(values, valid, m.kind, groups)
            columns[m.name] = pa.array(out, mask=mask).cast(m.arrow_type)
        elif m.kind == "any":
            columns[m.name] = col.take(pa.array(first_rows)).cast(m.arrow_type)
        else:
            columns.update(_ordered(m, table, keys, n))
    return pa.table(columns)


#: Rows from which the hash path is considered, the rows it samples to decide, and the fewest input rows per group
#: (in that sample) for which it is taken: below that, the sort or dense path, which groups and orders in one go,
#: costs less than a hash pass followed by ordering nearly as many groups.
HASH_MIN_ROWS = 1 << 16
HASH_SAMPLE_ROWS = 1 << 16
HASH_ROWS_PER_GROUP = 8


def _hashable(table: pa.Table, keys: Sequence[str], metrics: Sequence[MetricColumn]) -> bool:
    """Whether Arrow's hash aggregation gives exactly what the numpy paths give: sums of longs and doubles and the
    min/max of longs (floats' NaN and float32 accumulation would differ), keyed by strings and numbers."""
    for m in metrics:
        t = table.schema.field(m.name).type
        if m.kind == "sum" and (pa.types.is_integer(t) or pa.types.is_float64(t)):
            continue
        if m.kind in ("min", "max") and pa.types.is_integer(t):
            continue
        return False
    for k in keys:
        t = table.schema.field(k).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not (pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_floating(t)):
            return False
    return True


def _few_groups(table: pa.Table, keys: Sequence[str], metrics: Sequence[MetricColumn]) -> bool:
    """Whether the rows fold into few groups, judged on a sample: the table's first rows."""
    n = table.num_rows
    if n < HASH_MIN_ROWS or not _hashable(table, keys, metrics):
        return False
    sample = table.slice(0, HASH_SAMPLE_ROWS).select(list(keys)).unify_dictionaries()
    groups = sample.group_by(list(keys), use_threads=False).aggregate([]).num_rows
    return groups * HASH_ROWS_PER_GROUP <= sample.num_rows


def _hash_aggregate(table: pa.Table, keys: Sequence[str], metrics: Sequence[MetricColumn]) -> pa.Table:
    """One row per distinct key with every metric combined (single-threaded: float sums add in row order)."""
    columns = list(keys) + [m.name for m in metrics]
    grouped = (
        table.select(columns)
        .unify_dictionaries()
        .group_by(list(keys), use_threads=False)
        .aggregate([(m.name, m.kind) for m in metrics])
    )
    out = {k: grouped.column(k) for k in keys}
    for m in metrics:
        out[m.name] = grouped.column(f"{m.name}_{m.kind}").cast(table.schema.field(m.name).type)
    return pa.table(out)


def _sketches(m: MetricColumn, col: pa.Array, groups: _Groups, combine: bool) -> pa.Array:
    """Each group's sketch (each row's, without ``combine``): built from raw values, or the union of sketches."""
    from druidflow.sketches import aggregate

    if groups.ids is not None:
        order = np.argsort(groups.ids, kind="stable")
        counts = np.bincount(groups.ids, minlength=groups.num_groups)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    else:
        assert groups.order is not None and groups.starts is not None
        order = groups.order
        starts = groups.starts if combine else np.arange(len(order), dtype=np.int64)
    assert m.sketch is not None  # a sketch metric always names its sketch
    return aggregate(m.sketch, col, order, starts)


def _ordered(m: MetricColumn, table: pa.Table, keys: list[_Key], n: int) -> dict[str, pa.Array]:
    """first/last: order rows by (key, companion time) and take each group's first or last row."""
    companion = m.companion
    assert companion is not None  # first/last metrics always have one
    comp = _combined(table.column(companion))
    comp_values = comp.to_numpy(zero_copy_only=False)
    ranks = [k.ranks for k in keys]
    # lexsort's last key is the primary one.
    order = np.lexsort([comp_values] + list(reversed(ranks)))
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for r in ranks:
        s = r[order]
        change[1:] |= s[1:] != s[:-1]
    starts = np.flatnonzero(change)
    pick = pa.array(order[starts] if m.kind == "first" else order[np.append(starts[1:], n) - 1])
    return {m.name: _combined(table.column(m.name)).take(pick).cast(m.arrow_type), companion: comp.take(pick).cast(pa.int64())}


def _decode_dimension(key: _Key, rows: np.ndarray, original_type: pa.DataType) -> pa.Array:
    assert key.values is not None
    indices = key.ranks[rows] - 1
    nulls = indices < 0
    indices = pa.array(indices, pa.int32(), mask=nulls) if nulls.any() else pa.array(indices, pa.int32())
    values = key.values
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pa.DictionaryArray.from_arrays(indices, values)
    return values.take(indices)


def compact_dictionaries(table: pa.Table) -> pa.Table:
    """Drop dictionary entries a (sliced) table no longer uses, so each segment file carries only its own values."""
    for i, field in enumerate(table.schema):
        if not pa.types.is_dictionary(field.type):
            continue
        idx, dictionary = _dictionary(table.column(i))
        used = np.bincount(idx[idx >= 0], minlength=len(dictionary)) > 0 if len(dictionary) else np.zeros(0, bool)
        nulls = idx < 0
        if used.all():
            new_idx, values = idx, dictionary
        else:
            new_id = (np.cumsum(used) - 1).astype(np.int32)
            new_idx = np.where(nulls, 0, new_id[np.maximum(idx, 0)] if len(new_id) else 0).astype(np.int32)
            values = dictionary.filter(pa.array(used))
        indices = pa.array(new_idx, pa.int32(), mask=nulls) if nulls.any() else pa.array(new_idx, pa.int32())
        table = table.set_column(i, field.name, pa.DictionaryArray.from_arrays(indices, values))
    return table
