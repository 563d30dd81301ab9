"""``tuningConfig`` of the index task: partitioning, memory limits, parse-error policy, index spec.

Every field of Druid's ``IndexTuningConfig`` is accepted with its modern default; the deprecated spellings are
folded into their successors at parse time (``targetPartitionSize`` -> ``maxRowsPerSegment``,
``rowFlushBoundary`` -> ``maxRowsInMemory``, ``publishTimeout`` -> ``pushTimeout``), so a dump always shows
the modern form. The combinations Druid finds illegal are rejected here, before any work starts.

Unlike Druid's simple index task (dynamic and hashed only), Druidflow's index task deliberately accepts
``single_dim`` and ``range`` partitioning too.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.specs.limits import MAX_NUM_SHARDS
from druidflow.specs.validation import SpecModel, drop_nulls, field_key, fold_alias, pop_field

JAVA_INT_MAX = 2**31 - 1
"""Druid's "unlimited" for ``maxParseExceptions`` (``Integer.MAX_VALUE``)."""

DEFAULT_MAX_ROWS_PER_SEGMENT = 5_000_000
DEFAULT_MAX_TOTAL_ROWS = 20_000_000
DEFAULT_MAX_ROWS_IN_MEMORY = 1_000_000

PositiveInt = Annotated[int, Field(gt=0, le=2**63 - 1)]
NonNegativeInt = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Fields Druid declares as Java ``int``.
PositiveJavaInt = Annotated[int, Field(gt=0, le=JAVA_INT_MAX)]
NonNegativeJavaInt = Annotated[int, Field(ge=0, le=JAVA_INT_MAX)]
# Documented maximum of a hashed numShards (see druidflow.specs.limits), refused before any lock is taken.
ShardCount = Annotated[int, Field(gt=0, le=MAX_NUM_SHARDS)]


# --------------------------------------------------------------------------------------------- partitionsSpec


class _PartitionsSpec(SpecModel):
    type: str

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return drop_nulls(data)

    @property
    def is_perfect_rollup(self) -> bool:
        """Whether this spec can be used with ``forceGuaranteedRollup`` (all but ``dynamic``)."""
        return True

    @property
    def needs_determine_partitions(self) -> bool:
        """Whether the shard count or boundaries must be computed by a pass over the input."""
        return True


class DynamicPartitionsSpec(_PartitionsSpec):
    """Best-effort rollup: start a new segment at ``maxRowsPerSegment``; push all at ``maxTotalRows``."""

    type: Literal["dynamic"] = "dynamic"
    max_rows_per_segment: PositiveJavaInt = DEFAULT_MAX_ROWS_PER_SEGMENT
    max_total_rows: PositiveInt = DEFAULT_MAX_TOTAL_ROWS

    @property
    def is_perfect_rollup(self) -> bool:
        return False

    @property
    def needs_determine_partitions(self) -> bool:
        return False


def _unique(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if not v:
            raise SpecError(f"[{i}]", v, f"{what} must not be empty")
        if v in seen:
            raise SpecError(f"[{i}]", v, f"{what} listed twice")
        seen.add(v)
    return values


class HashedPartitionsSpec(_PartitionsSpec):
    """Perfect rollup into ``numShards`` hash buckets per time chunk (or as many as ``targetRowsPerSegment`` needs).

    ``targetPartitionSize`` and ``maxRowsPerSegment`` are accepted as aliases of ``targetRowsPerSegment``.
    With neither a target nor ``numShards``, the target is 5 000 000 rows.
    """

    type: Literal["hashed"] = "hashed"
    num_shards: Optional[ShardCount] = None
    target_rows_per_segment: Optional[PositiveJavaInt] = None
    partition_dimensions: list[str] = Field(default_factory=list)
    partition_function: Literal["murmur3_32_abs"] = "murmur3_32_abs"

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = [a for a in ("targetRowsPerSegment", "targetPartitionSize", "maxRowsPerSegment") if field_key(data, a)]
        if len(given) > 1:
            raise SpecError(given[1], data[field_key(data, given[1])], f"{' and '.join(given)} are aliases; give only one")
        fold_alias(data, "targetRowsPerSegment", "targetPartitionSize", "maxRowsPerSegment")
        num_shards, target = data.get(field_key(data, "numShards") or ""), data.get(field_key(data, "targetRowsPerSegment") or "")
        if num_shards is not None and target is not None:
            raise SpecError("numShards", num_shards, f"cannot be combined with a target row count ({target!r})")
        if num_shards is None and target is None:
            data["targetRowsPerSegment"] = DEFAULT_MAX_ROWS_PER_SEGMENT
        return data

    @field_validator("partition_dimensions")
    @classmethod
    def _dims(cls, v: list[str]) -> list[str]:
        return _unique(v, "partition dimension")

    @property
    def needs_determine_partitions(self) -> bool:
        return self.num_shards is None


class _RangeLike(_PartitionsSpec):
    target_rows_per_segment: Optional[PositiveJavaInt] = None
    max_rows_per_segment: Optional[PositiveJavaInt] = None
    assume_grouped: bool = False

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fold_alias(data, "targetRowsPerSegment", "targetPartitionSize")
        target, most = field_key(data, "targetRowsPerSegment"), field_key(data, "maxRowsPerSegment")
        if target and most:
            raise SpecError("maxRowsPerSegment", data[most], "give targetRowsPerSegment or maxRowsPerSegment, not both")
        if not target and not most:
            raise SpecError("targetRowsPerSegment", None, "one of targetRowsPerSegment and maxRowsPerSegment is required")
        return data

    @property
    def effective_max_rows_per_segment(self) -> int:
        """The hard cap per shard: ``maxRowsPerSegment``, or 1.5 × ``targetRowsPerSegment`` as Druid computes it."""
        if self.max_rows_per_segment is not None:
            return self.max_rows_per_segment
        if self.target_rows_per_segment is None:
            raise SpecError("targetRowsPerSegment", None, "one of targetRowsPerSegment and maxRowsPerSegment is required")
        return int(self.target_rows_per_segment * 1.5)

    @property
    def effective_target_rows_per_segment(self) -> int:
        """The size shards aim for: ``targetRowsPerSegment``, or ``maxRowsPerSegment`` when only that is given."""
        rows = self.target_rows_per_segment or self.max_rows_per_segment
        if rows is None:
            raise SpecError("targetRowsPerSegment", None, "one of targetRowsPerSegment and maxRowsPerSegment is required")
        return rows


class SingleDimensionPartitionsSpec(_RangeLike):
    """Perfect rollup into contiguous ranges of one dimension's values (``single_dim``; old alias ``dimension``)."""

    type: Literal["single_dim", "dimension"] = "single_dim"
    partition_dimension: str

    @field_validator("type")
    @classmethod
    def _canonical(cls, v: str) -> str:
        return "single_dim"

    @field_validator("partition_dimension")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise SpecError("", v, "partitionDimension must not be empty")
        return v

    @property
    def partition_dimensions(self) -> list[str]:
        return [self.partition_dimension]


class DimensionRangePartitionsSpec(_RangeLike):
    """Perfect rollup into contiguous ranges of several dimensions' value tuples (``range``)."""

    type: Literal["range"] = "range"
    partition_dimensions: list[str]

    @field_validator("partition_dimensions")
    @classmethod
    def _dims(cls, v: list[str]) -> list[str]:
        if not v:
            raise SpecError("", v, "range partitioning needs at least one partition dimension")
        return _unique(v, "partition dimension")


PARTITIONS_SPEC_TYPES = ("dynamic", "hashed", "single_dim", "dimension", "range")


def _check_partitions_type(value: Any) -> Any:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind not in PARTITIONS_SPEC_TYPES:
            raise SpecError(
                "type", kind, "unsupported partitionsSpec type; supported: dynamic, hashed, single_dim (alias dimension), range"
            )
    return value


PartitionsSpec = Annotated[
    Union[DynamicPartitionsSpec, HashedPartitionsSpec, SingleDimensionPartitionsSpec, DimensionRangePartitionsSpec],
    Field(discriminator="type"),
    BeforeValidator(_check_partitions_type),
]
"""A ``partitionsSpec`` object, discriminated by ``type``."""


# -------------------------------------------------------------------------------------------------- indexSpec


def _lower(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


DimensionCompression = Annotated[Literal["lz4", "lzf", "uncompressed", "zstd"], BeforeValidator(_lower)]
MetricCompression = Annotated[Literal["lz4", "lzf", "uncompressed", "none", "zstd"], BeforeValidator(_lower)]
LongEncoding = Annotated[Literal["longs", "auto"], BeforeValidator(_lower)]


class BitmapSpec(SpecModel):
    """``indexSpec.bitmap``: ``{"type": "roaring"}`` (default) or ``{"type": "concise"}``."""

    type: Literal["roaring", "concise"] = "roaring"
    compress_run_on_serialization: Optional[bool] = None

    @model_validator(mode="after")
    def _roaring_only(self) -> BitmapSpec:
        if self.type == "concise" and self.compress_run_on_serialization is not None:
            raise SpecError("compressRunOnSerialization", self.compress_run_on_serialization, "only applies to roaring bitmaps")
        return self

    def effective(self) -> BitmapSpec:
        if self.type == "roaring" and self.compress_run_on_serialization is None:
            return BitmapSpec(type="roaring", compress_run_on_serialization=True)
        return self


class StringDictionaryEncoding(SpecModel):
    """``indexSpec.stringDictionaryEncoding``: ``utf8`` (default) or ``frontCoded`` {bucketSize, formatVersion}."""

    type: Literal["utf8", "frontCoded"] = "utf8"
    bucket_size: Optional[int] = None
    format_version: Optional[Literal[0, 1]] = None

    @model_validator(mode="after")
    def _front_coded(self) -> StringDictionaryEncoding:
        if self.type == "utf8":
            for field, key in (("bucket_size", "bucketSize"), ("format_version", "formatVersion")):
                if getattr(self, field) is not None:
                    raise SpecError(key, getattr(self, field), "only applies to frontCoded encoding")
        elif self.bucket_size is not None and (self.bucket_size < 1 or self.bucket_size > 128 or self.bucket_size & (self.bucket_size - 1)):
            raise SpecError("bucketSize", self.bucket_size, "must be a power of two between 1 and 128")
        return self

    def effective(self) -> StringDictionaryEncoding:
        if self.type == "frontCoded":
            return StringDictionaryEncoding(
                type="frontCoded", bucket_size=self.bucket_size or 4, format_version=1 if self.format_version is None else self.format_version
            )
        return self


class IndexSpec(SpecModel):
    """How segment columns are encoded and compressed.

    Defaults: roaring bitmaps, lz4 for dimensions and metrics, ``longs`` long encoding. ``lzf`` is accepted
    here, as Druid does, but Druidflow's Parquet segment writer has no LZF codec and refuses it when it
    writes (see :attr:`uses_lzf`).
    """

    bitmap: BitmapSpec = Field(default_factory=BitmapSpec)
    dimension_compression: DimensionCompression = "lz4"
    metric_compression: MetricCompression = "lz4"
    long_encoding: LongEncoding = "longs"
    string_dictionary_encoding: Optional[StringDictionaryEncoding] = None
    complex_metric_compression: Optional[MetricCompression] = None
    json_compression: Optional[MetricCompression] = None

    @property
    def uses_lzf(self) -> bool:
        """Whether any column asks for LZF, which the segment writer cannot produce."""
        return "lzf" in (self.dimension_compression, self.metric_compression, self.complex_metric_compression, self.json_compression)

    def effective(self) -> IndexSpec:
        """This spec with every default filled in, for comparing index specs (compaction state)."""
        return IndexSpec(
            bitmap=self.bitmap.effective(),
            dimension_compression=self.dimension_compression,
            metric_compression=self.metric_compression,
            long_encoding=self.long_encoding,
            string_dictionary_encoding=(self.string_dictionary_encoding or StringDictionaryEncoding()).effective(),
            complex_metric_compression=self.complex_metric_compression or "uncompressed",
            json_compression=self.json_compression or "lz4",
        )


class SegmentWriteOutMediumFactory(SpecModel):
    """``segmentWriteOutMediumFactory``: where column data is staged while a segment is written."""

    type: Literal["tmpFile", "offHeapMemory", "onHeapMemory"]


class AppendableIndexSpec(SpecModel):
    """``appendableIndexSpec``: the in-memory index implementation (only ``onheap`` exists)."""

    type: Literal["onheap"] = "onheap"
    preserve_existing_metrics: Optional[bool] = None


# ---------------------------------------------------------------------------------------------- tuningConfig

_LEGACY_PARTITION_FIELDS = ("max_rows_per_segment", "max_total_rows", "num_shards", "partition_dimensions")
_PARALLEL_ONLY_FIELDS = (
    "max_num_concurrent_sub_tasks",
    "max_retry",
    "task_status_check_period_ms",
    "chat_handler_timeout",
    "chat_handler_num_retries",
    "max_num_segments_to_merge",
    "total_num_merge_tasks",
    "split_hint_spec",
    "max_allowed_lock_count",
)


class IndexTuningConfig(SpecModel):
    """``spec.tuningConfig`` of an ``index`` task (every field of Druid's table, with its modern default).

    Partitioning is given by ``partitionsSpec`` or by the deprecated top-level fields (``maxRowsPerSegment``/
    ``targetPartitionSize``, ``maxTotalRows``, ``numShards``, ``partitionDimensions``); with both, as in Druid, the
    ``partitionsSpec`` wins and the others are ignored (with a warning, :meth:`ignored_fields`).
    :attr:`effective_partitions_spec` folds the top-level fields into a partitionsSpec. Type ``index_parallel``
    (Druid's parallel task, and modern compaction) is accepted too, with its extra fields.
    """

    type: Literal["index", "index_parallel"] = "index"
    # legacy partitioning (folded by effective_partitions_spec)
    max_rows_per_segment: Optional[PositiveJavaInt] = None
    max_total_rows: Optional[PositiveInt] = None
    num_shards: Optional[ShardCount] = None
    partition_dimensions: Optional[list[str]] = None
    partitions_spec: Optional[PartitionsSpec] = None
    # memory
    max_rows_in_memory: PositiveJavaInt = DEFAULT_MAX_ROWS_IN_MEMORY
    max_bytes_in_memory: Annotated[int, Field(ge=-1, le=2**63 - 1)] = 0
    skip_bytes_in_memory_overhead_check: bool = False
    max_pending_persists: NonNegativeJavaInt = 0
    num_persist_threads: PositiveJavaInt = 1
    max_columns_to_merge: int = -1
    appendable_index_spec: AppendableIndexSpec = Field(default_factory=AppendableIndexSpec)
    # segments
    index_spec: IndexSpec = Field(default_factory=IndexSpec)
    index_spec_for_intermediate_persists: Optional[IndexSpec] = None
    force_extendable_shard_specs: bool = False
    force_guaranteed_rollup: bool = False
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None
    build_v9_directly: Optional[bool] = None  # accepted and ignored, as Druid does
    # parse errors
    report_parse_exceptions: bool = False
    max_parse_exceptions: NonNegativeJavaInt = JAVA_INT_MAX
    max_saved_parse_exceptions: NonNegativeJavaInt = 0
    log_parse_exceptions: bool = False
    # publishing
    push_timeout: NonNegativeInt = 0
    await_segment_availability_timeout_millis: NonNegativeInt = 0
    # index_parallel only
    max_num_concurrent_sub_tasks: Optional[PositiveInt] = None
    max_retry: Optional[NonNegativeInt] = None
    task_status_check_period_ms: Optional[PositiveInt] = None
    chat_handler_timeout: Optional[str] = None
    chat_handler_num_retries: Optional[NonNegativeInt] = None
    max_num_segments_to_merge: Optional[PositiveInt] = None
    total_num_merge_tasks: Optional[PositiveInt] = None
    split_hint_spec: Optional[dict[str, Any]] = None
    max_allowed_lock_count: Optional[int] = None

    @model_validator(mode="before")
    @classmethod
    def _fold_deprecated(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        fold_alias(data, "maxRowsPerSegment", "targetPartitionSize")
        fold_alias(data, "maxRowsInMemory", "rowFlushBoundary")
        fold_alias(data, "pushTimeout", "publishTimeout")
        fold_alias(data, "maxNumConcurrentSubTasks", "maxNumSubTasks")
        report = data.get(field_key(data, "reportParseExceptions") or "")
        if report is True:
            # Druid: reportParseExceptions means "fail on the first one", whatever the other two say.
            pop_field(data, "maxParseExceptions")
            saved = pop_field(data, "maxSavedParseExceptions")
            data["maxParseExceptions"] = 0
            data["maxSavedParseExceptions"] = min(1, saved) if isinstance(saved, int) and not isinstance(saved, bool) else 0
        return data

    @field_validator("max_columns_to_merge")
    @classmethod
    def _columns_to_merge(cls, v: int) -> int:
        if v != -1 and v < 2:
            raise SpecError("", v, "must be -1 (unlimited) or at least 2")
        return v

    @field_validator("partition_dimensions")
    @classmethod
    def _dims(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        return None if v is None else _unique(v, "partition dimension")

    @model_validator(mode="after")
    def _consistent(self) -> IndexTuningConfig:
        spec = self.partitions_spec
        if spec is None and self.num_shards is not None and self.max_rows_per_segment is not None:
            raise SpecError("numShards", self.num_shards, f"cannot be combined with maxRowsPerSegment/targetPartitionSize ({self.max_rows_per_segment})")
        if self.force_guaranteed_rollup:
            if spec is not None and not spec.is_perfect_rollup:
                raise SpecError(
                    "partitionsSpec.type",
                    spec.type,
                    "forceGuaranteedRollup=true needs a perfect-rollup partitionsSpec (hashed, single_dim or range)",
                )
            if self.force_extendable_shard_specs:
                raise SpecError(
                    "forceExtendableShardSpecs", True, "cannot be combined with forceGuaranteedRollup=true (perfect rollup publishes in bulk)"
                )
        else:
            if spec is not None and spec.is_perfect_rollup:
                raise SpecError(
                    "partitionsSpec.type",
                    spec.type,
                    "best-effort rollup (forceGuaranteedRollup=false) needs a dynamic partitionsSpec; set forceGuaranteedRollup=true for this one",
                )
        return self

    def ignored_fields(self) -> list[tuple[str, str]]:
        """The deprecated top-level partitioning fields Druid's precedence rules ignore (``IndexTuningConfig.
        getPartitionsSpec``): all of them next to a ``partitionsSpec``; ``maxTotalRows`` under perfect rollup;
        ``numShards``/``partitionDimensions`` under best-effort rollup."""
        # Druid's ``index`` tuningConfig has no parallel fields: there they are unknown properties, ignored.
        parallel = [
            (_camel(n), "only applies to tuningConfig type index_parallel")
            for n in _PARALLEL_ONLY_FIELDS
            if self.type == "index" and getattr(self, n) is not None
        ]
        return parallel + self._ignored_partitioning()

    def _ignored_partitioning(self) -> list[tuple[str, str]]:
        given = [n for n in _LEGACY_PARTITION_FIELDS if getattr(self, n) is not None]
        if self.partitions_spec is not None:
            return [(_camel(n), "partitionsSpec is given, and Druid then ignores the deprecated top-level field") for n in given]
        if self.force_guaranteed_rollup:
            return [(_camel(n), "only applies to best-effort rollup (forceGuaranteedRollup=false)") for n in given if n == "max_total_rows"]
        return [
            (_camel(n), "only applies to perfect rollup (forceGuaranteedRollup=true)")
            for n in given
            if n in ("num_shards", "partition_dimensions")
        ]

    @property
    def effective_partitions_spec(self) -> Union[DynamicPartitionsSpec, HashedPartitionsSpec, SingleDimensionPartitionsSpec, DimensionRangePartitionsSpec]:
        """The partitionsSpec, or the one the deprecated top-level fields stand for (dynamic or hashed)."""
        if self.partitions_spec is not None:
            return self.partitions_spec
        if self.force_guaranteed_rollup:
            return HashedPartitionsSpec(
                num_shards=self.num_shards,
                target_rows_per_segment=self.max_rows_per_segment,
                partition_dimensions=self.partition_dimensions or [],
            ) if (self.num_shards is not None or self.max_rows_per_segment is not None) else HashedPartitionsSpec(
                partition_dimensions=self.partition_dimensions or []
            )
        return DynamicPartitionsSpec(
            max_rows_per_segment=self.max_rows_per_segment or DEFAULT_MAX_ROWS_PER_SEGMENT,
            max_total_rows=self.max_total_rows or DEFAULT_MAX_TOTAL_ROWS,
        )

    @property
    def effective_index_spec_for_intermediate_persists(self) -> IndexSpec:
        """``indexSpecForIntermediatePersists``, or ``indexSpec`` when not given."""
        return self.index_spec_for_intermediate_persists or self.index_spec

    def effective_max_bytes_in_memory(self, total_memory: Optional[int] = None) -> Optional[int]:
        """The byte limit of in-memory rows: None when disabled (-1); for 0, a sixth of ``total_memory``.

        Druid's 0 means "1/6 of the JVM heap"; Druidflow uses 1/6 of the machine's physical memory unless
        ``total_memory`` is given.
        """
        if self.max_bytes_in_memory == -1:
            return None
        if self.max_bytes_in_memory > 0:
            return self.max_bytes_in_memory
        if total_memory is None:
            try:
                total_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            except (ValueError, OSError, AttributeError):
                total_memory = 6 * 1024**3
        return max(1, total_memory // 6)


def _camel(name: str) -> str:
    from pydantic.alias_generators import to_camel

    return to_camel(name)
