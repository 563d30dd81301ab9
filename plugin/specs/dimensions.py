"""``dimensionsSpec``: which input columns become dimensions, with which type, and schemaless discovery."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.specs.limits import check_column_name, is_reserved_column
from druidflow.specs.validation import SpecModel, drop_nulls, validate_as

TIME_COLUMN = "__time"
DIMENSION_TYPES = ("string", "long", "float", "double")


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


MultiValueHandling = Annotated[Literal["sorted_array", "sorted_set", "array"], BeforeValidator(_lower)]


DimensionType = Literal["string", "long", "float", "double"]
"""A dimension's ``type``."""


class DimensionSchema(SpecModel):
    """One dimension: ``{"type": "string", "name": ..., "multiValueHandling": ..., "createBitmapIndex": ...}``.

    ``multiValueHandling`` (``sorted_array`` by default, ``sorted_set``, ``array``) and ``createBitmapIndex``
    (true by default) only mean something for string dimensions; Druid accepts and ignores them on numeric
    ones, and so does Druidflow.
    """

    type: DimensionType = "string"
    name: str
    multi_value_handling: Optional[MultiValueHandling] = None
    create_bitmap_index: Optional[bool] = None

    @model_validator(mode="before")
    @classmethod
    def _supported(cls, data: Any) -> Any:
        data = drop_nulls(data)
        if isinstance(data, dict) and data.get("type", "string") not in DIMENSION_TYPES:
            raise SpecError("type", data.get("type"), f"unsupported dimension type; supported: {', '.join(DIMENSION_TYPES)}")
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v:
            raise SpecError("", v, "a dimension name must not be empty")
        if v == TIME_COLUMN:
            raise SpecError("", v, f"{TIME_COLUMN} is the time column and cannot be a dimension")
        return check_column_name(v, "", "dimension")

    @property
    def effective_multi_value_handling(self) -> str:
        """How a string dimension stores several values per row (``sorted_array`` unless told otherwise)."""
        return self.multi_value_handling or "sorted_array"

    @property
    def has_bitmap_index(self) -> bool:
        """Whether the dimension is indexed by bitmaps (string dimensions, unless ``createBitmapIndex`` is false)."""
        return self.type == "string" and self.create_bitmap_index is not False


class SpatialDimension(SpecModel):
    """A ``spatialDimensions`` entry (accepted in the JSON shape; Druidflow cannot build spatial indexes)."""

    dim_name: str
    dims: Optional[list[str]] = None


class DimensionsSpec(SpecModel):
    """``{"dimensions": [...], "dimensionExclusions": [...], ...}``.

    ``dimensions`` holds bare names (string dimensions) and dimension objects, as written; use
    :attr:`dimension_schemas` for the normalised list. With no dimensions (schemaless mode) they are discovered
    from the input by :meth:`discover`.
    """

    dimensions: list[Union[str, DimensionSchema]] = Field(default_factory=list)
    dimension_exclusions: list[str] = Field(default_factory=list)
    spatial_dimensions: list[SpatialDimension] = Field(default_factory=list)
    include_all_dimensions: bool = False
    use_schema_discovery: bool = False

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return drop_nulls(data)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _entries(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out: list[Any] = []
        for i, d in enumerate(v):
            if isinstance(d, str):
                if not d:
                    raise SpecError(f"[{i}]", d, "a dimension name must not be empty")
                if d == TIME_COLUMN:
                    raise SpecError(f"[{i}]", d, f"{TIME_COLUMN} is the time column and cannot be a dimension")
                check_column_name(d, f"[{i}]", "dimension")
                out.append(d)
            elif isinstance(d, dict):
                out.append(validate_as(DimensionSchema, d, f"[{i}]"))
            elif isinstance(d, DimensionSchema):
                out.append(d)
            else:
                raise SpecError(f"[{i}]", d, "a dimension is a name or an object with 'name' and 'type'")
        return out

    @field_validator("spatial_dimensions")
    @classmethod
    def _no_spatial(cls, v: list[SpatialDimension]) -> list[SpatialDimension]:
        if v:
            raise SpecError("", [s.model_dump() for s in v], "spatial dimensions are not supported by Druidflow")
        return v

    @model_validator(mode="after")
    def _unique(self) -> DimensionsSpec:
        seen: set[str] = set()
        excluded = set(self.dimension_exclusions)
        for i, dim in enumerate(self.dimension_schemas):
            if dim.name in seen:
                raise SpecError(f"dimensions[{i}]", dim.name, "dimension listed twice")
            if dim.name in excluded:
                raise SpecError(f"dimensions[{i}]", dim.name, "dimension is also in dimensionExclusions")
            seen.add(dim.name)
        return self

    @property
    def dimension_schemas(self) -> list[DimensionSchema]:
        """The declared dimensions as :class:`DimensionSchema` objects (bare names become string dimensions)."""
        return [DimensionSchema(name=d) if isinstance(d, str) else d for d in self.dimensions]

    @property
    def dimension_names(self) -> list[str]:
        return [d.name if isinstance(d, DimensionSchema) else d for d in self.dimensions]

    @property
    def is_schemaless(self) -> bool:
        """True when no dimension is declared: they are discovered from the input."""
        return not self.dimensions and not self.spatial_dimensions

    @property
    def discovers(self) -> bool:
        """Whether :meth:`discover` adds input columns to the declared dimensions."""
        return self.is_schemaless or self.include_all_dimensions or self.use_schema_discovery

    def discover(
        self,
        input_columns: Union[Iterable[str], Mapping[str, Any], Any],
        timestamp_column: str,
        metrics: Iterable[Any] = (),
    ) -> list[DimensionSchema]:
        """The ingested dimensions, given the input's root-level columns (Druid's schemaless rule).

        Declared dimensions come first. In schemaless mode (or with ``includeAllDimensions`` /
        ``useSchemaDiscovery``) every other input column follows, in input order, except
        ``dimensionExclusions``, the timestamp column, ``__time``, every column an aggregator reads and every
        aggregator's name. Discovered columns are string dimensions; with ``useSchemaDiscovery`` and a typed
        input (a ``pyarrow.Schema`` or a name -> Arrow type mapping) integers become ``long``, 32-bit floats
        ``float`` and other floats ``double``. Columns made by a transformSpec are not input columns and are
        not discovered. As Druid's flatteners (``JSONFlattenerMaker.discoverRootFields``) do without schema
        discovery, nested objects and lists holding lists or objects are not discovered (a ``flattenSpec`` field
        reaches inside them); flat lists are, as multi-value dimensions.
        """
        declared = self.dimension_schemas
        if not self.discovers:
            return declared
        names, types = _columns_and_types(input_columns)
        skip = set(self.dimension_exclusions) | {timestamp_column, TIME_COLUMN} | {d.name for d in declared}
        for agg in metrics:
            skip.add(agg.name)
            skip.update(agg.required_columns)
        found = []
        for name in names:
            if name in skip or is_reserved_column(name):  # an input field named like an internal column
                continue
            if not self.use_schema_discovery and _is_nested(types.get(name)):
                continue
            skip.add(name)
            kind = _discovered_type(types.get(name)) if self.use_schema_discovery else "string"
            found.append(DimensionSchema(type=kind, name=name))
        return declared + found


def _columns_and_types(columns: Any) -> tuple[list[str], dict[str, Any]]:
    names = getattr(columns, "names", None)
    if names is not None and hasattr(columns, "field"):  # pyarrow.Schema
        return list(names), {n: columns.field(n).type for n in names}
    if isinstance(columns, Mapping):
        return list(columns), dict(columns)
    return list(columns), {}


def _is_nested(arrow_type: Any) -> bool:
    """An object, or a list that is not a flat list of values (Druid's ``isFlatList``)."""
    if arrow_type is None:
        return False
    import pyarrow as pa

    if pa.types.is_struct(arrow_type) or pa.types.is_map(arrow_type):
        return True
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        inner = arrow_type.value_type
        return bool(pa.types.is_nested(inner))
    return False


def _discovered_type(arrow_type: Any) -> DimensionType:
    if arrow_type is None:
        return "string"
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "long"
    if pa.types.is_float32(arrow_type) or pa.types.is_float16(arrow_type):
        return "float"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double"
    return "string"
