"""The ``spec`` of an ``index`` task: ``dataSchema``, ``ioConfig`` and ``tuningConfig``, in one internal shape.

Druid users write the index task in two forms:

* classic (Druid <= 0.16): ``dataSchema.parser.parseSpec`` holds the format, ``timestampSpec`` and
  ``dimensionsSpec``; ``ioConfig.firehose`` says where the data is;
* modern (0.17+): ``timestampSpec`` and ``dimensionsSpec`` at the top of ``dataSchema``; ``ioConfig.inputSource``
  and ``ioConfig.inputFormat``.

:class:`IndexIngestionSpec` accepts both and turns the classic one into the modern one while it is parsed (the
firehose through its ``to_input_source()``, the parseSpec into the matching input format), so that after
validation there is only one shape: ``spec.data_schema.timestamp_spec`` / ``.dimensions_spec`` /
``.metrics_spec`` / ``.granularity_spec`` / ``.transform_spec`` and ``spec.io_config.input_source`` /
``.input_format``. ``model_dump()`` gives the modern JSON. Errors in the classic parts still name the classic
path (``spec.dataSchema.parser.parseSpec.columns``).
"""

from __future__ import annotations

import enum
from typing import Any, Optional

from pydantic import Field, field_validator, model_validator

from druidflow.aggregators import Aggregator
from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity
from druidflow.intervals import Interval, condense
from druidflow.specs.base import DruidModel
from druidflow.specs.dimensions import TIME_COLUMN, DimensionSchema, DimensionsSpec
from druidflow.specs.firehoses import Firehose
from druidflow.specs.io import InputFormat, InputSource, needs_input_format
from druidflow.specs.limits import check_column_name
from druidflow.specs.timestamp import TimestampSpec
from druidflow.specs.tuning import IndexTuningConfig
from druidflow.specs.unknown_keys import UNKNOWN_KEY, spec_warnings
from druidflow.specs.validation import (
    SpecModel,
    check_druid_id,
    drop_nulls,
    field_key,
    get_field,
    pop_field,
    validate_as,
)
from druidflow.transforms import TransformSpec

__all__ = [
    "DataSchema",
    "DimensionSchema",
    "DimensionsSpec",
    "GranularitySpec",
    "IndexIOConfig",
    "IndexIngestionSpec",
    "IngestionMode",
    "TimestampSpec",
]


MAX_BUCKETS = 1_000_000
"""The most time chunks one index task may cover (a guard against, say, an hourly granularity over centuries)."""


class GranularitySpec(SpecModel):
    """``granularitySpec``: time-chunk size, timestamp truncation, rollup, and the intervals to ingest.

    ``uniform`` (default) cuts time into ``segmentGranularity`` buckets; ``arbitrary`` (classic) has no
    segment granularity: each given interval is one time chunk.
    """

    type: str = "uniform"
    segment_granularity: Optional[Granularity] = None
    query_granularity: Granularity = Field(default="NONE", validate_default=True)
    rollup: bool = True
    intervals: Optional[list[Interval]] = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        kind = data.get("type", "uniform")
        if kind not in ("uniform", "arbitrary"):
            raise SpecError("type", kind, "unsupported granularitySpec type; supported: uniform, arbitrary")
        if kind == "uniform" and field_key(data, "segmentGranularity") is None:
            data["segmentGranularity"] = "DAY"
        if kind == "arbitrary":
            key = field_key(data, "segmentGranularity")
            if key is not None:
                raise SpecError("segmentGranularity", data[key], "an arbitrary granularitySpec has no segmentGranularity; its intervals are the time chunks")
        key = field_key(data, "intervals")
        if key is not None and data[key] == []:
            del data[key]  # Druid: an empty list means "find the intervals in the data"
        return data

    @field_validator("intervals")
    @classmethod
    def _non_empty(cls, v: Optional[list[Interval]]) -> Optional[list[Interval]]:
        for i, iv in enumerate(v or ()):
            if iv.is_empty():
                raise SpecError(f"[{i}]", str(iv), "an interval to ingest must not be empty")
        return v

    @model_validator(mode="after")
    def _arbitrary(self) -> GranularitySpec:
        if self.type == "arbitrary":
            if not self.intervals:
                raise SpecError("intervals", None, "an arbitrary granularitySpec needs intervals (they are its time chunks)")
            ordered = sorted(self.intervals)
            for a, b in zip(ordered, ordered[1:]):
                if a.overlaps(b):
                    raise SpecError("intervals", [str(a), str(b)], "the intervals of an arbitrary granularitySpec must not overlap")
        elif self.intervals and self.segment_granularity is not None:  # uniform: the granularity defaults to DAY
            # Estimate the bucket count instead of expanding (which walks every bucket) so that parsing stays cheap.
            gran = self.segment_granularity
            span = sum(iv.duration for iv in condense(list(self.intervals)))
            estimate = span // max(1, gran.epoch_bucket_ms)
            if estimate > MAX_BUCKETS:
                raise SpecError(
                    "intervals", [str(i) for i in self.intervals], f"covers about {estimate:,} {gran} time chunks (at most {MAX_BUCKETS:,})"
                )
        return self

    def bucket_intervals(self) -> Optional[list[Interval]]:
        """The time chunks to lock and write: each interval expanded outward to whole segment buckets.

        Sorted and distinct; None when no intervals are given (they are then found in the data).
        """
        if not self.intervals:
            return None
        if self.segment_granularity is None:  # arbitrary: each interval is a time chunk
            return sorted(self.intervals)
        return self.segment_granularity.expand(self.intervals, limit=MAX_BUCKETS)

    def input_intervals(self) -> Optional[list[Interval]]:
        """The intervals as written, condensed (sorted, overlapping and abutting ones merged)."""
        return condense(list(self.intervals)) if self.intervals else None


class DataSchema(SpecModel):
    """``dataSchema`` in its modern shape (the classic ``parser`` is folded in by :class:`IndexIngestionSpec`)."""

    data_source: str
    timestamp_spec: TimestampSpec
    dimensions_spec: DimensionsSpec = Field(default_factory=DimensionsSpec)
    metrics_spec: list[Aggregator] = Field(default_factory=list)
    granularity_spec: GranularitySpec = Field(default_factory=GranularitySpec)
    transform_spec: TransformSpec = Field(default_factory=TransformSpec)

    @model_validator(mode="before")
    @classmethod
    def _parser_belongs_to_the_task(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = drop_nulls(data)
            if field_key(data, "parser") is not None:
                raise SpecError("parser", get_field(data, "parser"), "the classic parser form is only understood inside a whole index task spec")
        return data

    @field_validator("data_source")
    @classmethod
    def _data_source(cls, v: str) -> str:
        return check_druid_id(v, "dataSource")

    @model_validator(mode="after")
    def _columns_unique(self) -> DataSchema:
        dims = set(self.dimensions_spec.dimension_names)
        seen: set[str] = set()
        for i, agg in enumerate(self.metrics_spec):
            if agg.name == TIME_COLUMN:
                raise SpecError(f"metricsSpec[{i}].name", agg.name, f"{TIME_COLUMN} is the time column and cannot be a metric")
            check_column_name(agg.name, f"metricsSpec[{i}].name", "metric")
            if agg.name in seen:
                raise SpecError(f"metricsSpec[{i}].name", agg.name, "two metrics have this name")
            if agg.name in dims:
                raise SpecError(f"metricsSpec[{i}].name", agg.name, "a dimension has the same name")
            seen.add(agg.name)
        return self

    @property
    def rollup(self) -> bool:
        return self.granularity_spec.rollup

    def dimensions_for(self, input_columns: Any) -> list[DimensionSchema]:
        """The ingested dimensions for an input with these root-level columns (schemaless discovery included)."""
        return self.dimensions_spec.discover(input_columns, self.timestamp_spec.column, self.metrics_spec)


class IngestionMode(str, enum.Enum):
    """How new segments relate to existing ones (Druid's ``computeBatchIngestionMode``)."""

    REPLACE_LEGACY = "REPLACE_LEGACY"
    """Overwrite only the time chunks that receive new data."""
    REPLACE = "REPLACE"
    """Also drop (tombstone) every existing segment of the input intervals that gets no new data."""
    APPEND = "APPEND"
    """Add new partitions to the latest version of each chunk."""


class IndexIOConfig(SpecModel):
    """``ioConfig``: the input (source + format) and whether to append to or replace existing data."""

    type: str = "index"
    input_source: InputSource
    input_format: Optional[InputFormat] = None
    append_to_existing: bool = False
    drop_existing: bool = False

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in ("index", "index_parallel"):
            raise SpecError("", v, "ioConfig type must be index (or index_parallel)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> IndexIOConfig:
        if self.input_format is None and needs_input_format(self.input_source):
            raise SpecError("inputFormat", None, f"an {self.input_source.type!r} input source needs an inputFormat")
        if self.append_to_existing and self.drop_existing:
            raise SpecError("dropExisting", True, "cannot be combined with appendToExisting=true")
        return self

    @property
    def ingestion_mode(self) -> IngestionMode:
        if self.append_to_existing:
            return IngestionMode.APPEND
        return IngestionMode.REPLACE if self.drop_existing else IngestionMode.REPLACE_LEGACY


class ClassicForm(DruidModel):
    """What the classic ``parser`` held that the modern shape has no place for, kept so that warnings (and a
    dumped, re-parsed task's warnings) name the user's own paths."""

    warnings: tuple[str, ...] = ()
    """One line per key of the parser, parseSpec and firehose that Druid ignores, by path relative to ``spec``."""
    moved: dict[str, str] = Field(default_factory=dict)
    """Modern path -> the classic path the user wrote it at (``dataSchema.timestampSpec`` ->
    ``dataSchema.parser.parseSpec.timestampSpec``)."""


class IndexIngestionSpec(SpecModel):
    """The ``spec`` object of an ``index`` task; classic specs are normalised into the modern shape here."""

    data_schema: DataSchema
    io_config: IndexIOConfig
    tuning_config: IndexTuningConfig = Field(default_factory=IndexTuningConfig)
    classic_form: Optional[ClassicForm] = Field(default=None, alias="druidflowClassicForm")

    def classic_warnings(self) -> tuple[str, ...]:
        return self.classic_form.warnings if self.classic_form else ()

    def warning_path_moves(self) -> dict[str, str]:
        return dict(self.classic_form.moved) if self.classic_form else {}

    @model_validator(mode="before")
    @classmethod
    def _classic_to_modern(cls, data: Any) -> Any:
        return normalise_classic(data)

    @model_validator(mode="after")
    def _consistent(self) -> IndexIngestionSpec:
        io, tuning = self.io_config, self.tuning_config
        if tuning.force_guaranteed_rollup and io.append_to_existing:
            raise SpecError(
                "ioConfig.appendToExisting", True, "cannot be combined with tuningConfig.forceGuaranteedRollup=true (perfect rollup)"
            )
        if io.drop_existing and not self.data_schema.granularity_spec.intervals:
            raise SpecError(
                "ioConfig.dropExisting", True, "dropExisting (REPLACE mode) needs dataSchema.granularitySpec.intervals"
            )
        return self

    @property
    def ingestion_mode(self) -> IngestionMode:
        return self.io_config.ingestion_mode


# ----------------------------------------------------------------------------------------- classic -> modern

_PARSER_TYPES = ("string", "hadoopyString", "parquet")
_PARSE_SPEC_FORMATS = ("json", "csv", "tsv", "timeAndDims")
_PARSE_SPEC_KEYS = {
    "json": ("flattenSpec", "featureSpec"),
    "csv": ("columns", "listDelimiter", "hasHeaderRow", "skipHeaderRows"),
    "tsv": ("columns", "delimiter", "listDelimiter", "hasHeaderRow", "skipHeaderRows"),
    "timeAndDims": (),
    "parquet": ("flattenSpec",),
}


def normalise_classic(data: Any) -> Any:
    """The index ``spec`` with a classic ``parser``/``firehose`` rewritten into the modern form (else unchanged)."""
    if not isinstance(data, dict):
        return data
    ds_key, io_key = field_key(data, "dataSchema"), field_key(data, "ioConfig")
    ds, io = data.get(ds_key or ""), data.get(io_key or "")
    if not isinstance(ds, dict) or not isinstance(io, dict):
        return data
    if field_key(ds, "parser") is None and field_key(io, "firehose") is None:
        return data
    ds, io = dict(ds), dict(io)
    parser, firehose = pop_field(ds, "parser"), pop_field(io, "firehose")
    warnings: list[str] = []
    moved: dict[str, str] = {}
    moved_models: list[Any] = []
    if parser is not None:
        if get_field(io, "inputSource") is not None:
            raise SpecError(
                "dataSchema.parser", parser, "cannot use parser together with ioConfig.inputSource; describe the format in ioConfig.inputFormat"
            )
        for name in ("timestampSpec", "dimensionsSpec"):
            if field_key(ds, name) is not None:
                raise SpecError(f"dataSchema.{name}", get_field(ds, name), "given both here and in dataSchema.parser.parseSpec; use one form")
        if firehose is None:
            raise SpecError("dataSchema.parser", parser, "the classic parser needs ioConfig.firehose (or use inputSource + inputFormat)")
        ignored: list[str] = []
        timestamp_spec, dimensions_spec, input_format = _from_parser(parser, "dataSchema.parser", ignored)
        ds["timestampSpec"], ds["dimensionsSpec"] = timestamp_spec, dimensions_spec
        moved["dataSchema.timestampSpec"] = "dataSchema.parser.parseSpec.timestampSpec"
        moved["dataSchema.dimensionsSpec"] = "dataSchema.parser.parseSpec.dimensionsSpec"
        moved_models += [timestamp_spec, dimensions_spec, input_format]
        if input_format is not None:
            if get_field(io, "inputFormat") is not None:
                raise SpecError("ioConfig.inputFormat", get_field(io, "inputFormat"), "cannot be combined with dataSchema.parser; use one form")
            io["inputFormat"] = input_format
            moved["ioConfig.inputFormat"] = "dataSchema.parser.parseSpec"
        warnings.extend(f"{key}: {UNKNOWN_KEY}" for key in ignored)
    if firehose is not None:
        if get_field(io, "inputSource") is not None:
            raise SpecError("ioConfig.firehose", firehose, "give ioConfig.firehose or ioConfig.inputSource, not both")
        if parser is None:
            raise SpecError("ioConfig.firehose", firehose, "a firehose needs dataSchema.parser to say how to read it")
        given = validate_as(Firehose, firehose, "ioConfig.firehose")
        warnings.extend(spec_warnings(given, "ioConfig.firehose"))  # its input source does not keep them
        io["inputSource"] = given.to_input_source()
        if get_field(io, "inputFormat") is None and needs_input_format(io["inputSource"]):
            fmt = get_field(get_field(parser, "parseSpec"), "format")
            raise SpecError(
                "dataSchema.parser.parseSpec.format", fmt, f"timeAndDims only works with the ingestSegment firehose, not {firehose.get('type')!r}"
            )
    out = dict(data)
    out[ds_key], out[io_key] = ds, io
    if warnings or any(spec_warnings(model) for model in moved_models):
        # Only then: a clean classic spec gives exactly the model (and the dump) of its modern form.
        out["druidflowClassicForm"] = ClassicForm(warnings=tuple(warnings), moved=moved)
    return out


_UTF8 = ("utf-8", "utf8")


def _from_parser(parser: Any, path: str, ignored: Optional[list[str]] = None) -> tuple[TimestampSpec, DimensionsSpec, Any]:
    """The timestampSpec, dimensionsSpec and input format (None for timeAndDims) of a classic ``parser``.

    A key the parser or its parseSpec does not know is refused, unless ``ignored`` is given: then it is ignored,
    as Druid ignores it, and its path is appended there (the caller warns).
    """

    def unknown(key_path: str, value: Any, reason: str) -> None:
        if ignored is None:
            raise SpecError(key_path, value, reason)
        ignored.append(key_path)

    if not isinstance(parser, dict):
        raise SpecError(path, parser, "expected a parser object")
    parser = drop_nulls(parser)
    kind = parser.get("type", "string")
    if kind not in _PARSER_TYPES:
        raise SpecError(f"{path}.type", kind, f"unsupported parser type; supported: {', '.join(_PARSER_TYPES)}")
    allowed = {"type", "parseSpec"} | {"parquet": {"binaryAsString"}, "string": {"encoding"}}.get(kind, set())
    encoding = parser.get("encoding", "UTF-8")
    if kind == "string" and (not isinstance(encoding, str) or encoding.lower() not in _UTF8):
        raise SpecError(f"{path}.encoding", encoding, "only UTF-8 input is read (Druid's default charset); re-encode the data as UTF-8")
    for key in parser:
        if key not in allowed:
            unknown(f"{path}.{key}", parser[key], f"unknown field of a {kind!r} parser")
    spec = parser.get("parseSpec")
    if not isinstance(spec, dict):
        raise SpecError(f"{path}.parseSpec", spec, "the parser needs a parseSpec object")
    spec = drop_nulls(spec)
    spec_path = f"{path}.parseSpec"
    if kind == "parquet":
        fmt = "parquet"
        given = spec.get("format", "parquet")
        if given not in ("parquet", "timeAndDims"):
            raise SpecError(f"{spec_path}.format", given, "a parquet parser takes parseSpec format parquet or timeAndDims")
    else:
        fmt = spec.get("format", "tsv")
        if fmt not in _PARSE_SPEC_FORMATS:
            hint = " (jsonLowercase is not supported; use json)" if fmt == "jsonLowercase" else ""
            raise SpecError(f"{spec_path}.format", fmt, f"unsupported parseSpec format; supported: {', '.join(_PARSE_SPEC_FORMATS)}{hint}")
    own = _PARSE_SPEC_KEYS[fmt]
    for key in spec:
        if key not in ("format", "timestampSpec", "dimensionsSpec") and key not in own:
            unknown(f"{spec_path}.{key}", spec[key], f"unknown field of a {spec.get('format', fmt)!r} parseSpec")
    if "timestampSpec" not in spec:
        raise SpecError(f"{spec_path}.timestampSpec", None, "field required")
    timestamp_spec = validate_as(TimestampSpec, spec["timestampSpec"], f"{spec_path}.timestampSpec")
    dimensions_spec = validate_as(DimensionsSpec, spec.get("dimensionsSpec", {}), f"{spec_path}.dimensionsSpec")
    if fmt == "timeAndDims":
        return timestamp_spec, dimensions_spec, None  # rows arrive already parsed (ingestSegment firehose)
    fields = {key: spec[key] for key in own if key in spec}
    if kind == "parquet" and "binaryAsString" in parser:
        fields["binaryAsString"] = parser["binaryAsString"]
    input_format = validate_as(InputFormat, {"type": fmt, **fields}, spec_path)
    return timestamp_spec, dimensions_spec, input_format
