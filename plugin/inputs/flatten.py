"""``flattenSpec`` on Arrow batches: columns taken from nested structs and lists, vectorised.

Supported field types: ``root`` (a top-level field), ``path`` (JSONPath-lite: ``$.a.b``, ``$['a b']``,
``$.list[0]``, ``$.list[-1]``), ``tree`` (a list of keys). A path that does not exist in a row gives null, as
Druid's JSONPath does. With ``useFieldDiscovery`` every top-level column is kept as well (nested ones as
structs and lists; Druid's own discovery ignores maps, which the engine's dimension discovery accounts for);
without it only the listed fields are produced.
"""

from __future__ import annotations

from typing import Optional, Union

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

from druidflow.specs.io import FlattenSpec


def apply_flatten(batch: pa.RecordBatch, spec: Optional[FlattenSpec]) -> pa.RecordBatch:
    """The batch with the flattenSpec's fields added (or, without field discovery, only those fields)."""
    if spec is None or (spec.use_field_discovery and not spec.fields):
        return batch
    columns: dict[str, pa.Array] = {}
    if spec.use_field_discovery:
        columns.update(zip(batch.schema.names, batch.columns))
    for field in spec.fields:
        columns[field.name] = extract_path(batch, field.steps)
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def extract_path(batch: pa.RecordBatch, steps: tuple[Union[str, int], ...]) -> pa.Array:
    """The values at ``steps`` (field names and list indexes) below the root of each row; null where absent."""
    n = batch.num_rows
    if not steps or not isinstance(steps[0], str):
        return pa.nulls(n)
    idx = batch.schema.get_field_index(steps[0])
    if idx < 0:
        return pa.nulls(n)
    arr = batch.column(idx)
    for step in steps[1:]:
        t = arr.type
        if isinstance(step, str):
            if pt.is_struct(t):
                child = t.get_field_index(step)
                if child < 0:
                    return pa.nulls(n)
                arr = pc.struct_field(arr, [child])
            elif pt.is_map(t):
                arr = pc.map_lookup(arr, pa.scalar(step, t.key_type), "first")
            else:
                return pa.nulls(n)
        else:
            if not (pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t)):
                return pa.nulls(n)
            arr = list_element_or_null(arr, step)
    return arr


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
