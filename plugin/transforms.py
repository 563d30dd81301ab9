"""``transformSpec``: expression transforms and the ingestion filter, applied to Arrow batches.

Druid applies a ``transformSpec`` after ``timestampSpec`` and before ``dimensionsSpec`` / ``metricsSpec``
(druid-semantics §1.2), in two steps, and so does :class:`TransformSpec`:

1. :meth:`TransformSpec.apply` adds each ``{"type": "expression", "name", "expression"}`` transform as a column,
   in order, replacing an input column of the same name in place. Every transform reads the *input* row, never
   another transform's output (Druid's ``TransformedInputRow`` evaluates each transform against the original
   row), so ``[{"name": "x", "expression": "x * 2"}, {"name": "y", "expression": "x + 1"}]`` gives ``y`` from
   the input ``x``. A transform named ``__time`` replaces the row timestamp (its value is read as epoch ms).
2. :meth:`TransformSpec.filter_mask` evaluates ``filter`` on the *transformed* batch (Druid matches the filter
   against the transformed row, so a filter may test a transform's output). Rows it rejects are thrown away.

:meth:`TransformSpec.transform_and_filter` does both and counts the rows filtered out. The expression language
and its functions are documented in :mod:`druidflow.expressions`, the filters in :mod:`druidflow.filters`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal, Optional

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.expressions import Batch, Expression, compile_expression, java_strings, parse_longs
from druidflow.filters import Filter
from druidflow.specs.validation import SpecModel

__all__ = ["ExpressionTransform", "TransformSpec", "compile_expression", "Expression"]

TIME_COLUMN = "__time"


class ExpressionTransform(SpecModel):
    """``{"type": "expression", "name", "expression"}``: a column computed by a Druid expression."""

    type: Literal["expression"] = "expression"
    name: str = Field(min_length=1)
    expression: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        from druidflow.specs.limits import check_column_name

        return v if v == TIME_COLUMN else check_column_name(v, "", "transform output")

    @field_validator("expression")
    @classmethod
    def _compiles(cls, v: str) -> str:
        compile_expression(v)  # a syntax error fails the spec, naming the position
        return v

    @cached_property
    def compiled(self) -> Expression:
        return compile_expression(self.expression, "expression")

    @property
    def required_columns(self) -> frozenset[str]:
        return self.compiled.required_columns

    def evaluate(self, batch: Batch) -> pa.Array:
        """The transform's column for ``batch`` (the input batch, not one already transformed). An array result is
        a list column, which ingestion stores as a multi-value string dimension (Druid's transform coerces an array
        to a list of values); DOUBLE elements are written as Java prints them (``1.0``), as Druid's would be."""
        out = self.compiled.evaluate(batch)
        if pa.types.is_list(out.type) and pa.types.is_floating(out.type.value_type):
            out = pa.ListArray.from_arrays(out.offsets, java_strings(out.values), mask=out.is_null())
        return out


class TransformSpec(SpecModel):
    """``transformSpec``: ``transforms`` (expression transforms) and an optional ``filter``."""

    transforms: list[ExpressionTransform] = Field(default_factory=list)
    filter: Optional[Filter] = None

    @model_validator(mode="after")
    def _unique_names(self) -> TransformSpec:
        seen: set[str] = set()
        for i, t in enumerate(self.transforms):
            if t.name in seen:
                raise SpecError(f"transforms[{i}].name", t.name, "a transform name can be used only once")
            seen.add(t.name)
        return self

    @property
    def is_empty(self) -> bool:
        return not self.transforms and self.filter is None

    @property
    def output_columns(self) -> list[str]:
        """The columns the transforms write, in order."""
        return [t.name for t in self.transforms]

    @property
    def required_columns(self) -> frozenset[str]:
        """Input columns the spec reads: every transform's inputs, and the filter's inputs that no transform makes."""
        needed: set[str] = set()
        for t in self.transforms:
            needed |= t.required_columns
        if self.filter is not None:
            needed |= self.filter.required_columns - set(self.output_columns)
        return frozenset(needed)

    def apply(self, batch: Batch) -> Batch:
        """``batch`` with the transforms' columns added (or replacing same-named ones), of the same kind."""
        if not self.transforms:
            return batch
        values = [(t.name, t.evaluate(batch)) for t in self.transforms]  # all read the input batch
        names = list(batch.schema.names)
        columns: list[Any] = [batch.column(i) for i in range(batch.num_columns)]
        for name, arr in values:
            if name in names:
                i = names.index(name)
                columns[i] = _as_time(arr, columns[i].type) if name == TIME_COLUMN else arr
            else:
                names.append(name)
                columns.append(_as_time(arr, pa.int64()) if name == TIME_COLUMN else arr)
        if isinstance(batch, pa.Table):
            return pa.Table.from_arrays([_chunked(c) for c in columns], names=names)
        return pa.RecordBatch.from_arrays([_array(c) for c in columns], names=names)

    def filter_mask(self, batch: Batch) -> pa.BooleanArray:
        """Which rows of an already transformed batch the filter keeps (all of them when there is no filter)."""
        if self.filter is None:
            return pa.repeat(pa.scalar(True), batch.num_rows)
        return self.filter.mask(batch)

    def transform_and_filter(self, batch: Batch) -> tuple[Batch, int]:
        """Apply the transforms, then the filter: the kept rows and how many the filter threw away."""
        out = self.apply(batch)
        if self.filter is None:
            return out, 0
        mask = self.filter_mask(out)
        kept = pc.sum(mask).as_py() or 0
        return out.filter(mask), out.num_rows - kept


def _as_time(arr: pa.Array, like: pa.DataType) -> pa.Array:
    """A ``__time`` transform's value as epoch ms, in the type of the column it replaces (int64 or timestamp)."""
    if pa.types.is_string(arr.type):
        arr = parse_longs(arr)
    elif pa.types.is_floating(arr.type):
        arr = pc.cast(pc.trunc(arr), pa.int64(), safe=False)
    elif not pa.types.is_int64(arr.type):
        arr = pc.cast(arr, pa.int64())
    if pa.types.is_timestamp(like):
        return pc.cast(pc.cast(arr, pa.timestamp("ms")), like)
    return arr


def _chunked(c: Any) -> pa.ChunkedArray:
    return c if isinstance(c, pa.ChunkedArray) else pa.chunked_array([c])


def _array(c: Any) -> pa.Array:
    return c if isinstance(c, pa.Array) else c.combine_chunks()
