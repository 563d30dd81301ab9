"""Druid's ingestion-time aggregators (``metricsSpec`` entries) and their combining forms.

Each aggregator names an output column (``name``) computed from one input column (``fieldName``) or an
expression. Its *combining* form reads the aggregator's own output column instead, which is what every
re-read of rolled-up data must use (the final merge of intermediate persists, compaction, merge tasks):
running the original ``count`` over already rolled-up rows would count rows, not events.

Supported JSON ``type``\\ s: ``count``; ``longSum``/``doubleSum``/``floatSum``; ``long``/``double``/``float`` ×
``Min``/``Max``/``First``/``Last``/``Any``; ``stringFirst``/``stringLast``/``stringAny`` (``maxStringBytes``); and
``filtered`` around any of them; and the sketch aggregators of :mod:`druidflow.sketch_aggregators` (``thetaSketch``,
``HLLSketchBuild``/``HLLSketchMerge``, ``quantilesDoublesSketch``, ``hyperUnique``, ``cardinality``; the ``sketches``
extra). Anything else (``javascript``...) is refused with a :class:`SpecError` listing these.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator
from typing_extensions import Self

from druidflow.exceptions import SpecError
from druidflow.specs.validation import SpecModel, validate_as

ValueType = Literal["long", "double", "float", "string"]
Kind = Literal["count", "sum", "min", "max", "first", "last", "any", "sketch"]

_KIND_SUFFIX: dict[str, Kind] = {"Sum": "sum", "Min": "min", "Max": "max", "First": "first", "Last": "last", "Any": "any"}

#: Druid's default ``maxStringBytes`` of the string first/last/any aggregators.
DEFAULT_MAX_STRING_BYTES = 1024


def _types_of(suffix: str) -> tuple[str, ...]:
    return tuple(f"{vt}{suffix}" for vt in ("long", "double", "float"))


SUPPORTED_TYPES: tuple[str, ...] = (
    ("count",)
    + tuple(t for s in _KIND_SUFFIX for t in _types_of(s))
    + ("stringFirst", "stringLast", "stringAny", "filtered")
    + ("thetaSketch", "HLLSketchBuild", "HLLSketchMerge", "quantilesDoublesSketch", "hyperUnique", "cardinality")
)


class _Aggregator(SpecModel):
    """What every aggregator has: an output column name and a JSON type."""

    type: str
    name: str

    @field_validator("name")
    @classmethod
    def _name_not_empty(cls, v: str) -> str:
        if not v:
            raise SpecError("", v, "an aggregator needs a non-empty name")
        return v

    @property
    def kind(self) -> Kind:
        """``count``, ``sum``, ``min``, ``max``, ``first`` or ``last``."""
        if self.type == "count":
            return "count"
        for suffix, kind in _KIND_SUFFIX.items():
            if self.type.endswith(suffix):
                return kind
        raise AssertionError(self.type)

    @property
    def value_type(self) -> ValueType:
        """The output column's type: ``long``, ``double`` or ``float``."""
        if self.type == "count":
            return "long"
        for vt in ("long", "double", "float", "string"):
            if self.type.startswith(vt):
                return vt
        raise AssertionError(self.type)

    @property
    def input_column(self) -> Optional[str]:
        """The input column read as is, or None (``count``, or an ``expression``)."""
        return None

    @property
    def required_columns(self) -> list[str]:
        """Every input column this aggregator reads."""
        return []

    def combining(self) -> _Aggregator:
        """The form that re-aggregates this aggregator's own output column ``name``."""
        raise NotImplementedError


class CountAggregator(_Aggregator):
    """``{"type": "count", "name": ...}``: the number of input rows; combines as a ``longSum`` of itself."""

    type: Literal["count"] = "count"

    @property
    def expression(self) -> Optional[str]:
        return None

    def combining(self) -> Aggregator:
        return SumAggregator(type="longSum", name=self.name, field_name=self.name)


class _FieldOrExpressionAggregator(_Aggregator):
    """sum/min/max: exactly one of ``fieldName`` and ``expression``."""

    field_name: Optional[str] = None
    expression: Optional[str] = None

    @model_validator(mode="after")
    def _exactly_one_input(self) -> _FieldOrExpressionAggregator:
        if self.field_name is None and self.expression is None:
            raise SpecError("fieldName", None, f"{self.type} {self.name!r} needs 'fieldName' or 'expression'")
        if self.field_name is not None and self.expression is not None:
            raise SpecError(
                "expression", self.expression, f"{self.type} {self.name!r} takes 'fieldName' or 'expression', not both"
            )
        if self.field_name == "":
            raise SpecError("fieldName", self.field_name, "fieldName must not be empty")
        if self.expression is not None:
            self.compiled_expression  # noqa: B018  # fail at parse time, not mid-ingestion
        return self

    @cached_property
    def compiled_expression(self) -> Any:
        """The compiled ``expression`` (None when the aggregator reads ``fieldName``)."""
        if self.expression is None:
            return None
        from druidflow.transforms import compile_expression

        try:
            return compile_expression(self.expression)
        except SpecError as exc:
            raise SpecError("expression", self.expression, exc.reason) from None
        except ValueError as exc:
            raise SpecError("expression", self.expression, str(exc)) from None

    @property
    def input_column(self) -> Optional[str]:
        return self.field_name

    @property
    def required_columns(self) -> list[str]:
        if self.field_name is not None:
            return [self.field_name]
        return _expression_columns(self.compiled_expression)

    def combining(self) -> Self:
        return type(self)(type=self.type, name=self.name, field_name=self.name)


def _expression_columns(compiled: Any) -> list[str]:
    for attr in ("required_columns", "columns", "inputs", "identifiers"):
        value = getattr(compiled, attr, None)
        if value is not None:
            value = value() if callable(value) else value
            return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return []


class SumAggregator(_FieldOrExpressionAggregator):
    """``longSum``, ``doubleSum``, ``floatSum``."""

    type: Literal["longSum", "doubleSum", "floatSum"]


class MinAggregator(_FieldOrExpressionAggregator):
    """``longMin``, ``doubleMin``, ``floatMin``."""

    type: Literal["longMin", "doubleMin", "floatMin"]


class MaxAggregator(_FieldOrExpressionAggregator):
    """``longMax``, ``doubleMax``, ``floatMax``."""

    type: Literal["longMax", "doubleMax", "floatMax"]


class _FirstLastAggregator(_Aggregator):
    """first/last: the value of ``fieldName`` at the earliest/latest ``timeColumn`` of the rolled-up rows."""

    field_name: str
    time_column: str = "__time"

    @field_validator("field_name", "time_column")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise SpecError("", v, "must not be empty")
        return v

    @property
    def input_column(self) -> Optional[str]:
        return self.field_name

    @property
    def expression(self) -> Optional[str]:
        return None

    @property
    def required_columns(self) -> list[str]:
        return [self.time_column, self.field_name]

    def combining(self) -> Self:
        return type(self)(type=self.type, name=self.name, field_name=self.name, time_column=self.time_column)


class FirstAggregator(_FirstLastAggregator):
    """``longFirst``, ``doubleFirst``, ``floatFirst``."""

    type: Literal["longFirst", "doubleFirst", "floatFirst"]


class LastAggregator(_FirstLastAggregator):
    """``longLast``, ``doubleLast``, ``floatLast``."""

    type: Literal["longLast", "doubleLast", "floatLast"]


class _StringValued(_Aggregator):
    """The string aggregators' ``maxStringBytes``: longer values are cut to that many UTF-8 bytes."""

    max_string_bytes: int = Field(DEFAULT_MAX_STRING_BYTES, ge=1, le=1 << 20)


class StringFirstAggregator(_FirstLastAggregator, _StringValued):
    """``stringFirst``: the string at the earliest ``timeColumn``."""

    type: Literal["stringFirst"]

    def combining(self) -> Self:
        return type(self)(type=self.type, name=self.name, field_name=self.name, time_column=self.time_column,
                          max_string_bytes=self.max_string_bytes)


class StringLastAggregator(_FirstLastAggregator, _StringValued):
    """``stringLast``: the string at the latest ``timeColumn``."""

    type: Literal["stringLast"]

    def combining(self) -> Self:
        return type(self)(type=self.type, name=self.name, field_name=self.name, time_column=self.time_column,
                          max_string_bytes=self.max_string_bytes)


class _AnyValued(_Aggregator):
    """any: some value of ``fieldName`` among the rolled-up rows."""

    field_name: str = Field(min_length=1)

    @property
    def input_column(self) -> Optional[str]:
        return self.field_name

    @property
    def expression(self) -> Optional[str]:
        return None

    @property
    def required_columns(self) -> list[str]:
        return [self.field_name]

    def combining(self) -> Self:
        return type(self)(type=self.type, name=self.name, field_name=self.name)


class AnyAggregator(_AnyValued):
    """``longAny``, ``doubleAny``, ``floatAny``: some value of ``fieldName`` among the rolled-up rows."""

    type: Literal["longAny", "doubleAny", "floatAny"]


class StringAnyAggregator(_AnyValued, _StringValued):
    """``stringAny``: some string of ``fieldName`` among the rolled-up rows."""

    type: Literal["stringAny"]

    def combining(self) -> Self:
        return type(self)(type=self.type, name=self.name, field_name=self.name, max_string_bytes=self.max_string_bytes)


class FilteredAggregator(_Aggregator):
    """``{"type": "filtered", "filter": F, "aggregator": A, "name": optional}``: ``A`` over the rows ``F`` matches.

    The metric is ``A``'s (kind, type, combining form: re-reading rolled-up rows needs no filter, as in Druid);
    ``name`` defaults to ``A``'s.
    """

    type: Literal["filtered"] = "filtered"
    filter: Any
    aggregator: Any

    @model_validator(mode="before")
    @classmethod
    def _parse_parts(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        from druidflow.filters import parse_filter

        data = dict(data)
        if "aggregator" not in data:
            raise SpecError("aggregator", None, "a filtered aggregator needs 'aggregator'")
        if "filter" not in data:
            raise SpecError("filter", None, "a filtered aggregator needs 'filter'")
        inner = parse_aggregator(data["aggregator"], "aggregator")
        data["aggregator"] = inner
        data["filter"] = parse_filter(data["filter"], "filter")
        data.setdefault("name", inner.name)
        return data

    @property
    def kind(self) -> Kind:
        return self.aggregator.kind

    @property
    def value_type(self) -> ValueType:
        return self.aggregator.value_type

    @property
    def input_column(self) -> Optional[str]:
        return self.aggregator.input_column

    @property
    def expression(self) -> Optional[str]:
        return getattr(self.aggregator, "expression", None)

    @property
    def required_columns(self) -> list[str]:
        return sorted(set(self.aggregator.required_columns) | set(self.filter.required_columns))

    @property
    def sketch(self) -> Any:
        """The inner sketch aggregator's :class:`~druidflow.sketches.SketchSpec` (None for other aggregators)."""
        return getattr(self.aggregator, "sketch", None) if self.aggregator.kind == "sketch" else None

    @property
    def input_is_sketch(self) -> bool:
        return bool(getattr(self.aggregator, "input_is_sketch", False))

    @property
    def delegate(self) -> Aggregator:
        """The inner aggregator, under this aggregator's name."""
        return self.aggregator if self.aggregator.name == self.name else self.aggregator.model_copy(update={"name": self.name})

    def combining(self) -> Aggregator:
        return self.delegate.combining()


from druidflow.sketch_aggregators import (  # noqa: E402  # they subclass _Aggregator, defined above
    CardinalityAggregator,
    HllSketchBuildAggregator,
    HllSketchMergeAggregator,
    HyperUniqueAggregator,
    QuantilesDoublesSketchAggregator,
    ThetaSketchAggregator,
)


def _check_supported(value: Any) -> Any:
    if isinstance(value, _Aggregator):
        return value
    if not isinstance(value, dict):
        raise SpecError("", value, "an aggregator must be a JSON object with 'type' and 'name'")
    kind = value.get("type")
    if kind is None:
        raise SpecError("type", None, f"missing aggregator 'type'; supported types: {', '.join(SUPPORTED_TYPES)}")
    if kind not in SUPPORTED_TYPES:
        raise SpecError("type", kind, f"unsupported aggregator type; supported types: {', '.join(SUPPORTED_TYPES)}")
    return value


Aggregator = Annotated[
    Union[
        CountAggregator, SumAggregator, MinAggregator, MaxAggregator, FirstAggregator, LastAggregator,
        StringFirstAggregator, StringLastAggregator, AnyAggregator, StringAnyAggregator, FilteredAggregator,
        ThetaSketchAggregator, HllSketchBuildAggregator, HllSketchMergeAggregator, QuantilesDoublesSketchAggregator,
        HyperUniqueAggregator, CardinalityAggregator,
    ],
    Field(discriminator="type"),
    BeforeValidator(_check_supported),
]
"""One ``metricsSpec`` entry, discriminated by ``type``."""

_METRICS_SPEC = list[Aggregator]

AGGREGATOR_CLASSES = (
    CountAggregator, SumAggregator, MinAggregator, MaxAggregator, FirstAggregator, LastAggregator,
    StringFirstAggregator, StringLastAggregator, AnyAggregator, StringAnyAggregator, FilteredAggregator,
    ThetaSketchAggregator, HllSketchBuildAggregator, HllSketchMergeAggregator, QuantilesDoublesSketchAggregator,
    HyperUniqueAggregator, CardinalityAggregator,
)


def parse_aggregator(data: Any, path: str = "") -> Aggregator:
    """Validate one aggregator JSON object; errors name ``path``."""
    return validate_as(Aggregator, data, path)


def parse_metrics_spec(data: Iterable[Any], path: str = "metricsSpec") -> list[Aggregator]:
    """Validate a list of aggregator JSON objects (or models)."""
    return validate_as(_METRICS_SPEC, list(data), path)


def combining_metrics_spec(aggregators: Iterable[Any]) -> list[Aggregator]:
    """The combining form of every aggregator, in order (accepts models or JSON objects)."""
    return [agg.combining() for agg in parse_metrics_spec(aggregators)]


def merge_aggregators(per_segment: Iterable[Iterable[Any]], path: str = "metricsSpec") -> list[Aggregator]:
    """Merge the aggregator lists of several segments by name, as compaction infers its metrics.

    The result has one *combining* aggregator per metric name, in first-seen order. Two aggregators with the
    same name merge when their combining forms are equal (``count`` and ``longSum`` of ``count`` do); any
    other disagreement (``longSum`` vs ``doubleSum``) raises :class:`SpecError`, because no single aggregator
    can re-read both columns correctly; the fix is an explicit ``metricsSpec``.
    """
    merged: dict[str, Aggregator] = {}
    for i, aggs in enumerate(per_segment):
        for agg in parse_metrics_spec(aggs, f"segments[{i}].aggregators"):
            combined = agg.combining()
            seen = merged.get(agg.name)
            if seen is None:
                merged[agg.name] = combined
            elif seen != combined:
                raise SpecError(
                    path,
                    {"name": agg.name, "types": [seen.type, combined.type]},
                    f"segments disagree on metric {agg.name!r} ({seen.model_dump()} vs {combined.model_dump()}); "
                    "give an explicit metricsSpec",
                )
    return list(merged.values())
