"""Keeping the column types of a stream of batches consistent when the input's types drift.

JSON is typed per value, so one stretch of a file may hold ``1`` where a later one holds ``1.5`` or ``"n/a"``.
:class:`SchemaUnifier` promotes forward: once a column has been seen as double (or string), every later batch
delivers it as double (or string); numbers widen to double, anything else that disagrees becomes a string;
structs merge their fields; lists unify their element types. Batches already handed out are not changed, so a
consumer sees each column's type only ever widen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

from druidflow.exceptions import InputError

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def is_string_like(t: pa.DataType) -> bool:
    """utf8, large utf8, string view, or a dictionary of one of those."""
    if pt.is_dictionary(t):
        return is_string_like(t.value_type)
    return pt.is_string(t) or pt.is_large_string(t) or (hasattr(pt, "is_string_view") and pt.is_string_view(t))


def _is_list(t: pa.DataType) -> bool:
    return pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t)


def _is_nested(t: pa.DataType) -> bool:
    return pt.is_struct(t) or _is_list(t) or pt.is_map(t)


def unify_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The narrowest type both ``a`` and ``b`` convert to without losing values (string as the last resort)."""
    if a == b:
        return a
    if pt.is_null(a):
        return b
    if pt.is_null(b):
        return a
    if is_string_like(a) and is_string_like(b):
        return pa.string()
    if pt.is_integer(a) and pt.is_integer(b):
        return pa.int64()
    if (pt.is_integer(a) or pt.is_floating(a)) and (pt.is_integer(b) or pt.is_floating(b)):
        return pa.float64()
    if pt.is_struct(a) and pt.is_struct(b):
        fields = {f.name: f.type for f in a}
        for f in b:
            fields[f.name] = unify_types(fields[f.name], f.type) if f.name in fields else f.type
        return pa.struct(list(fields.items()))
    if _is_list(a) and _is_list(b):
        return pa.list_(unify_types(a.value_type, b.value_type))
    if _is_nested(a) or _is_nested(b) or pt.is_boolean(a) or pt.is_boolean(b):
        return pa.string()
    try:  # temporal units, decimals, ...: whatever Arrow promotes losslessly
        return pa.unify_schemas(
            [pa.schema([("x", a)]), pa.schema([("x", b)])], promote_options="permissive"
        ).field("x").type
    except _CAST_ERRORS:
        return pa.string()


def to_string_array(arr: pa.Array) -> pa.Array:
    """Values as utf8 text: numbers and booleans as written (``1``, ``2.5``, ``true``), nested values as JSON."""
    t = arr.type
    if pt.is_string(t):
        return arr
    if pt.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if is_string_like(t):
        return pc.cast(arr, pa.string())
    if _is_nested(t):
        # Nested values that clash with text elsewhere: rare, so a Python pass is acceptable here.
        return pa.array([None if v is None else _json_text(v) for v in arr.to_pylist()], pa.string())
    if pt.is_binary(t) or pt.is_large_binary(t):
        try:
            return pc.cast(arr, pa.string())
        except _CAST_ERRORS:
            return pa.array(
                [None if v is None else v.decode("utf-8", errors="replace") for v in arr.to_pylist()], pa.string()
            )
    return pc.cast(arr, pa.string())


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def conform_array(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """``arr`` converted to ``target`` (a type :func:`unify_types` produced from ``arr.type``)."""
    if arr.type == target:
        return arr
    if pt.is_null(arr.type):
        return pa.nulls(len(arr), target)
    if pt.is_string(target):
        return to_string_array(arr)
    if pt.is_struct(target) and pt.is_struct(arr.type):
        children = []
        for f in target:
            idx = arr.type.get_field_index(f.name)
            child = pc.struct_field(arr, [idx]) if idx >= 0 else pa.nulls(len(arr), f.type)
            children.append(conform_array(child, f.type))
        return pa.StructArray.from_arrays(children, fields=list(target), mask=pc.is_null(arr))
    if pt.is_list(target) and _is_list(arr.type):
        try:
            return pc.cast(arr, target)
        except _CAST_ERRORS:
            if pt.is_fixed_size_list(arr.type):
                arr = pc.cast(arr, pa.list_(arr.type.value_type))
            values = conform_array(arr.values, target.value_type)
            return pa.ListArray.from_arrays(pc.cast(arr.offsets, pa.int32()), values, type=target, mask=pc.is_null(arr))
    return pc.cast(arr, target)


class SchemaUnifier:
    """Conforms successive batches to one forward-unified schema (see the module docstring).

    Columns named in ``exempt`` pass through untouched (the caller imposes their type). A column missing from a
    batch but seen before is filled with nulls, so later batches carry every column seen so far.
    """

    def __init__(self, exempt: Iterable[str] = ()) -> None:
        self.exempt = frozenset(exempt)
        self.types: dict[str, pa.DataType] = {}
        self._last_in: Optional[pa.Schema] = None
        self._last_out: Optional[pa.Schema] = None

    def conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self._last_in is not None and batch.schema.equals(self._last_in) and batch.schema.equals(self._last_out):
            return batch  # the common case: nothing drifted
        for f in batch.schema:
            if f.name in self.exempt:
                self.types.setdefault(f.name, f.type)
            else:
                self.types[f.name] = unify_types(self.types.get(f.name, pa.null()), f.type)
        arrays, fields = [], []
        for name, t in self.types.items():
            idx = batch.schema.get_field_index(name)
            if name in self.exempt:
                if idx >= 0:
                    arrays.append(batch.column(idx))
                    fields.append(batch.schema.field(idx))
                continue
            arr = batch.column(idx) if idx >= 0 else pa.nulls(batch.num_rows, t)
            arrays.append(conform_array(arr, t))
            fields.append(pa.field(name, t))
        out = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
        self._last_in, self._last_out = batch.schema, out.schema
        return out


def apply_column_types(batch: pa.RecordBatch, column_types: Mapping[str, pa.DataType], source: str) -> pa.RecordBatch:
    """Cast the named columns to the caller's types (string-valued dictionaries are dictionary-encoded).

    A list asked for as text (a multi-value string dimension: a JSON array, a Parquet list) stays a list, of text
    elements, so that its values are not flattened into the JSON text of the list.
    A value that cannot be converted raises InputError naming the source and column.
    """
    if not column_types:
        return batch
    arrays = list(batch.columns)
    fields = list(batch.schema)
    changed = False
    for i, f in enumerate(fields):
        target = column_types.get(f.name)
        if target is None or f.type == target:
            continue
        if _is_list(f.type) and is_string_like(target):
            arrays[i] = list_of_strings(arrays[i])
        else:
            arrays[i] = cast_column(arrays[i], target, source, f.name)
        fields[i] = pa.field(f.name, arrays[i].type)
        changed = True
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)) if changed else batch


def list_of_strings(arr: pa.Array) -> pa.Array:
    """A list column as ``list<string>``: each element as text (see :func:`to_string_array`), nulls kept."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pt.is_fixed_size_list(arr.type) or pt.is_large_list(arr.type):
        arr = pc.cast(arr, pa.list_(arr.type.value_type))
    if pt.is_string(arr.type.value_type):
        return arr
    first, last = arr.offsets[0].as_py(), arr.offsets[-1].as_py()
    values = to_string_array(arr.values.slice(first, last - first))
    return pa.ListArray.from_arrays(pc.subtract(arr.offsets, first), values, mask=pc.is_null(arr))


def cast_column(arr: pa.Array, target: pa.DataType, source: str, name: str) -> pa.Array:
    try:
        if pt.is_dictionary(target) and is_string_like(target.value_type):
            encoded = pc.dictionary_encode(to_string_array(arr))
            return encoded if encoded.type == target else pc.cast(encoded, target)
        if is_string_like(target):
            return pc.cast(to_string_array(arr), target)
        return pc.cast(arr, target)
    except _CAST_ERRORS as exc:
        raise InputError(f"{source}: column {name!r} cannot be read as {target}: {exc}") from exc
