"""``flattenSpec`` on Arrow batches: columns taken from nested structs and lists, vectorised.

Supported field types: ``root`` (a top-level field), ``path`` (JSONPath) and ``jq`` (the subsets of
:mod:`druidflow.specs.field_paths`: names, indexes, ``[*]`` and a final function such as ``length()``), ``tree`` (a
list of keys). A path that does not exist in a row gives null, as
Druid's JSONPath does. With ``useFieldDiscovery`` every top-level column is kept as well (nested ones as
structs and lists; Druid's own discovery ignores maps, which the engine's dimension discovery accounts for);
without it only the listed fields are produced.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

from druidflow.specs.field_paths import FieldPath
from druidflow.specs.io import FlattenSpec


def apply_flatten(batch: pa.RecordBatch, spec: Optional[FlattenSpec]) -> pa.RecordBatch:
    """The batch with the flattenSpec's fields added (or, without field discovery, only those fields)."""
    if spec is None or (spec.use_field_discovery and not spec.fields):
        return batch
    columns: dict[str, pa.Array] = {}
    if spec.use_field_discovery:
        columns.update(zip(batch.schema.names, batch.columns))
    for field in spec.fields:
        columns[field.name] = extract_path(batch, field.path)
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def extract_path(batch: pa.RecordBatch, path: FieldPath) -> pa.Array:
    """The value of ``path`` in each row (null where absent), with its function applied when it has one.

    Through ``[*]`` the walk goes on over every element of the lists at once (their values flattened, with the row
    each came from), and the elements found are put back together as one list per row, as Jayway does.
    """
    n = batch.num_rows
    steps = path.steps
    if not steps:
        return _apply(pa.nulls(n), path.function)
    if not isinstance(steps[0], str):
        return pa.nulls(n)
    idx = batch.schema.get_field_index(steps[0])
    if idx < 0:
        return pa.nulls(n)
    arr: pa.Array = batch.column(idx)
    rows: Optional[pa.Array] = None  # after [*]: the row of each element in ``arr``
    for step in steps[1:]:
        if isinstance(step, str):
            t = arr.type
            if pt.is_struct(t):
                child = t.get_field_index(step)
                if child < 0:
                    return pa.nulls(n)
                arr = pc.struct_field(arr, [child])
            elif pt.is_map(t):
                arr = pc.map_lookup(arr, pa.scalar(step, t.key_type), "first")
            else:
                return pa.nulls(n)
        elif isinstance(step, int):
            if not _is_list(arr.type):
                return pa.nulls(n)
            arr = list_element_or_null(arr, step)
        else:  # EACH: every element of the lists
            if not _is_list(arr.type):
                return pa.nulls(n)
            parents = pc.list_parent_indices(arr)
            rows = parents if rows is None else rows.take(parents)
            arr = pc.list_flatten(arr)
    if rows is not None:
        arr = _regroup(arr, rows, n)
    return _apply(arr, path.function)


def _is_list(t: pa.DataType) -> bool:
    return pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t)


def _regroup(values: pa.Array, rows: pa.Array, n: int) -> pa.Array:
    """One list per row from elements and their rows (ascending); missing elements are left out, a row without
    any gets null."""
    keep = pc.is_valid(values)
    values, rows = values.filter(keep), rows.filter(keep)
    counts = np.bincount(rows.to_numpy(zero_copy_only=False), minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    mask = pa.array(counts == 0)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=mask)


_AGGREGATE = {"min": "min", "max": "max", "sum": "sum", "avg": "mean", "stddev": "stddev"}


def _apply(arr: pa.Array, function: Optional[str]) -> pa.Array:
    """Jayway's (and jq's) function over each row's value: sizes and numeric aggregates of lists (doubles, as
    Jayway returns them), first/last elements, an object's keys; null where it does not apply."""
    if function is None:
        return arr
    n = len(arr)
    t = arr.type
    if function == "keys":
        if not pt.is_struct(t):
            return pa.nulls(n, pa.list_(pa.string()))
        names = pa.array([[f.name for f in t]] * n, pa.list_(pa.string()))
        return pc.if_else(pc.is_valid(arr), names, pa.scalar(None, names.type))
    if function == "length":
        if _is_list(t):
            return pc.list_value_length(arr).cast(pa.int64())
        if pt.is_struct(t):
            return pc.if_else(pc.is_valid(arr), pa.scalar(t.num_fields, pa.int64()), pa.scalar(None, pa.int64()))
        return pa.nulls(n, pa.int64())
    if not _is_list(t):
        return pa.nulls(n)
    if function in ("first", "last"):
        return list_element_or_null(arr, 0 if function == "first" else -1)
    values = pc.list_flatten(arr)
    if not (pt.is_integer(values.type) or pt.is_floating(values.type)):
        return pa.nulls(n, pa.float64())
    grouped = (
        pa.table({"row": pc.list_parent_indices(arr), "v": values.cast(pa.float64())})
        .group_by("row")
        .aggregate([("v", _AGGREGATE[function])])
    )
    out = np.full(n, np.nan)
    found = grouped.column(0).to_numpy()
    out[found] = grouped.column(1).to_numpy(zero_copy_only=False)
    return pa.array(out, pa.float64(), mask=~np.isin(np.arange(n), found))


def list_element_or_null(arr: pa.Array, index: int) -> pa.Array:
    """Element ``index`` of each list (negative counts from the end); null where the list is null or too short.

    ``pc.list_element`` raises on any short list, so the positions are computed from the offsets instead.
    """
    if pt.is_fixed_size_list(arr.type):
        arr = pc.cast(arr, pa.list_(arr.type.value_type))
    lengths = pc.list_value_length(arr)
    offsets = arr.offsets
    if index >= 0:
        positions = pc.add(offsets.slice(0, len(arr)), index)
        valid = pc.greater(lengths, index)
    else:
        positions = pc.add(offsets.slice(1, len(arr)), index)
        valid = pc.greater_equal(lengths, -index)
    valid = pc.fill_null(valid, False)
    positions = pc.if_else(valid, positions, pa.scalar(None, positions.type))
    return arr.values.take(positions)
