"""The ``index_hadoop`` task: Druid's Hadoop-based batch ingestion spec, run by Druidflow as a Spark job.

    {"type": "index_hadoop", "spec": {"dataSchema": {..., "parser": {"type": "hadoopyString", "parseSpec": {...}}},
                                      "ioConfig": {"type": "hadoop", "inputSpec": {"type": "static", "paths": "..."}},
                                      "tuningConfig": {"type": "hadoop", "partitionsSpec": {...}, "jobProperties": {...}}}}

The classic ``parser`` (``hadoopyString`` or ``string`` with a json/csv/tsv parseSpec; ``parquet`` with Druid's
parquet input format) is folded into the modern shape as the index task's is; the modern form (``timestampSpec`` and
``dimensionsSpec`` in ``dataSchema``, an ``ioConfig.inputFormat`` object) is accepted too. Once the input paths are
resolved (:meth:`HadoopIndexTask.index_task`), the task *is* an ``index_parallel`` task over those files: the same
parser, partitioning and segment writer, so the same data gives the same rows through either task type.

Every Hadoop tuning field is honoured or refused by name: see :class:`HadoopTuningConfig` and ``docs/hadoop.md``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity
from druidflow.specs.ingestion import DataSchema, _from_parser
from druidflow.specs.io import InputFormat
from druidflow.specs.task_base import BaseTask
from druidflow.specs.timestamp import joda_tokens
from druidflow.specs.tuning import (
    JAVA_INT_MAX,
    DimensionRangePartitionsSpec,
    DynamicPartitionsSpec,
    HashedPartitionsSpec,
    IndexSpec,
    NonNegativeJavaInt,
    PartitionsSpec,
    PositiveJavaInt,
    SingleDimensionPartitionsSpec,
)
from druidflow.specs.validation import SpecModel, drop_nulls, field_key, fold_alias, get_field, pop_field, validate_as

DEFAULT_PATH_FORMAT = "'y'=yyyy/'m'=MM/'d'=dd/'H'=HH"
DEFAULT_TARGET_ROWS = 5_000_000

#: Hadoop InputFormat classes whose records are the lines of text files (what Druidflow's readers read).
TEXT_INPUT_FORMATS = frozenset(
    {
        "org.apache.hadoop.mapreduce.lib.input.TextInputFormat",
        "org.apache.hadoop.mapred.TextInputFormat",
        "org.apache.hadoop.mapreduce.lib.input.CombineTextInputFormat",
        "org.apache.hadoop.mapred.lib.CombineTextInputFormat",
    }
)
#: Druid's parquet InputFormat classes (for the ``parquet`` parser).
PARQUET_INPUT_FORMATS = frozenset(
    {
        "org.apache.druid.data.input.parquet.DruidParquetInputFormat",
        "io.druid.data.input.parquet.DruidParquetInputFormat",
        "org.apache.parquet.hadoop.ParquetInputFormat",
    }
)


def _check_input_format(v: Optional[str]) -> Optional[str]:
    if v is not None and v not in TEXT_INPUT_FORMATS | PARQUET_INPUT_FORMATS:
        raise SpecError(
            "",
            v,
            "this Hadoop InputFormat cannot be read; supported: TextInputFormat and CombineTextInputFormat (text lines "
            "for json/csv/tsv parsers) and DruidParquetInputFormat (parquet parser)",
        )
    return v


class StaticPathSpec(SpecModel):
    """``{"type": "static", "paths": "a,b/*.json"}``: Hadoop's comma-separated input paths, globs allowed
    (``*``, ``?``, ``[ab]``, ``{a,b}``); a directory stands for the files in it."""

    type: Literal["static"] = "static"
    paths: Union[str, list[str]]
    input_format: Optional[str] = None

    @field_validator("input_format")
    @classmethod
    def _input_format(cls, v: Optional[str]) -> Optional[str]:
        return _check_input_format(v)

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: Union[str, list[str]]) -> Union[str, list[str]]:
        if not split_paths(v):
            raise SpecError("", v, "name at least one input path")
        return v

    @property
    def path_list(self) -> list[str]:
        return split_paths(self.paths)


class GranularityPathSpec(SpecModel):
    """``{"type": "granularity"}``: files under ``inputPath/<pathFormat of each dataGranularity bucket>`` of the
    task's intervals whose full path matches the regular expression ``filePattern``."""

    type: Literal["granularity"] = "granularity"
    data_granularity: Granularity
    input_path: str = Field(min_length=1)
    file_pattern: str = Field(min_length=1)
    path_format: str = DEFAULT_PATH_FORMAT
    input_format: Optional[str] = None

    @field_validator("input_format")
    @classmethod
    def _input_format(cls, v: Optional[str]) -> Optional[str]:
        return _check_input_format(v)

    @field_validator("path_format")
    @classmethod
    def _path_format(cls, v: str) -> str:
        try:
            joda_tokens(v)
        except ValueError as exc:
            raise SpecError("", v, f"not a Joda date-time format Druidflow can print: {exc}") from None
        return v

    @field_validator("file_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        import re

        try:
            re.compile(v)
        except re.error as exc:
            raise SpecError("", v, f"not a regular expression: {exc}") from None
        return v


_PATH_SPECS = {"static": StaticPathSpec, "granularity": GranularityPathSpec}


class HadoopIOConfig(SpecModel):
    """``ioConfig`` ``{"type": "hadoop", "inputSpec": ...}``; ``inputFormat`` holds the parser's format once folded."""

    type: Literal["hadoop"] = "hadoop"
    input_spec: Union[StaticPathSpec, GranularityPathSpec]
    input_format: Optional[InputFormat] = None
    segment_output_path: Optional[str] = None
    metadata_update_spec: Optional[dict[str, Any]] = None

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(data)
        kind = data.get("type", "hadoop")
        if kind != "hadoop":
            raise SpecError("type", kind, "an index_hadoop task takes ioConfig type hadoop")
        spec = get_field(data, "inputSpec")
        if spec is None:
            raise SpecError("inputSpec", None, "field required")
        spec_type = spec.get("type") if isinstance(spec, dict) else None
        if spec_type not in _PATH_SPECS:
            hint = " (dataSource and multi re-read segments: use a compact task or index with a druid inputSource)"
            raise SpecError("inputSpec.type", spec_type, f"unsupported inputSpec type; supported: static, granularity{hint}")
        data = dict(data)
        data[field_key(data, "inputSpec")] = validate_as(_PATH_SPECS[spec_type], spec, "inputSpec")
        for name in ("segmentOutputPath", "metadataUpdateSpec"):
            if get_field(data, name) is not None:
                raise SpecError(name, get_field(data, name), "only the command-line Hadoop indexer takes it; it must be null in a task")
        return data


def _partitions_spec(value: Any) -> Any:
    if value is None:
        return HashedPartitionsSpec(target_rows_per_segment=DEFAULT_TARGET_ROWS)
    if isinstance(value, dict):
        value = dict(value)
        kind = value.get("type")
        if kind in ("hadoop_hashed_partitions", None) and "partitionDimension" not in value:
            value["type"] = "hashed"  # Druid 0.15's name for it, and Druid's default when type is left out
        elif kind == "hadoop_single_dim_partitions":
            value["type"] = "single_dim"
        fold_alias(value, "maxRowsPerSegment", "maxPartitionSize")
        if value["type"] == "range":
            raise SpecError("partitionsSpec.type", "range", "Druid's Hadoop task partitions by hashed or single_dim; use index_parallel for range")
        if value["type"] in ("single_dim", "dimension") and not get_field(value, "partitionDimension"):
            raise SpecError(
                "partitionsSpec.partitionDimension", None, "Druidflow does not choose the dimension for you; name the partitionDimension"
            )
    return value


#: Tuning fields accepted at their default only, and why another value cannot be honoured.
_DEFAULT_ONLY: dict[str, tuple[Any, str]] = {
    "workingPath": (None, "only the command-line Hadoop indexer takes it; intermediate data lives in Spark's shuffle"),
    "leaveIntermediate": (False, "the intermediate data is Spark's shuffle, which Spark cleans up itself"),
    "cleanupOnFailure": (True, "the intermediate data is Spark's shuffle, which Spark always cleans up"),
    "overwriteFiles": (False, "every segment push goes to a fresh deep-storage key; nothing is ever overwritten"),
    "numBackgroundPersistThreads": (0, "it tunes Druid's JVM indexer, which Druidflow does not have"),
    "useExplicitVersion": (False, "segments get the version of the task's lock, which is what makes the publish safe"),
    "useYarnRMJobStatusFallback": (True, "there is no YARN: the Spark job's status comes from Spark itself"),
    "awaitSegmentAvailabilityTimeoutMillis": (0, "there are no historicals to wait for: published segments are queryable at once"),
    "shardSpecs": ({}, "the shards are decided by the task from its partitionsSpec"),
}


class HadoopTuningConfig(SpecModel):
    """``tuningConfig`` ``{"type": "hadoop"}``.

    Honoured: ``partitionsSpec`` (``hashed`` — Druid's default —, ``single_dim``, and ``dynamic`` as a Druidflow
    extension), ``maxRowsInMemory`` (alias ``rowFlushBoundary``), ``maxBytesInMemory``, ``indexSpec``,
    ``indexSpecForIntermediatePersists``, ``ignoreInvalidRows``/``maxParseExceptions``, ``logParseExceptions``,
    ``combineText`` (small files share a split), ``useCombiner`` (map-side rollup), ``jobProperties`` (the Spark
    conf: ``spark.*`` keys as they are, Hadoop keys as ``spark.hadoop.<key>``) and ``forceExtendableShardSpecs``
    (hashed and dynamic shards are extendable already; single_dim ones cannot be made so and it is refused).
    ``version`` is ignored without ``useExplicitVersion``, as in Druid (with a warning). The fields of
    :data:`_DEFAULT_ONLY` are refused unless at their default.
    """

    type: Literal["hadoop"] = "hadoop"
    partitions_spec: PartitionsSpec = Field(default_factory=lambda: HashedPartitionsSpec(target_rows_per_segment=DEFAULT_TARGET_ROWS))
    max_rows_in_memory: PositiveJavaInt = 1_000_000
    max_bytes_in_memory: int = Field(default=0, ge=-1)
    index_spec: IndexSpec = Field(default_factory=IndexSpec)
    index_spec_for_intermediate_persists: Optional[IndexSpec] = None
    ignore_invalid_rows: bool = False
    max_parse_exceptions: Optional[NonNegativeJavaInt] = None
    log_parse_exceptions: bool = False
    combine_text: bool = False
    use_combiner: bool = False
    job_properties: dict[str, Any] = Field(default_factory=dict)
    force_extendable_shard_specs: bool = False
    version: Optional[str] = None
    # refused unless at their default (see _DEFAULT_ONLY)
    working_path: Optional[str] = None
    leave_intermediate: bool = False
    cleanup_on_failure: bool = True
    overwrite_files: bool = False
    num_background_persist_threads: int = 0
    use_explicit_version: bool = False
    use_yarn_rm_job_status_fallback: bool = Field(default=True, alias="useYarnRMJobStatusFallback")
    await_segment_availability_timeout_millis: int = 0
    shard_specs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _fold(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        kind = data.get("type", "hadoop")
        if kind != "hadoop":
            raise SpecError("type", kind, "an index_hadoop task takes tuningConfig type hadoop")
        fold_alias(data, "maxRowsInMemory", "rowFlushBoundary")
        key = field_key(data, "partitionsSpec")
        if key is not None:
            data[key] = _partitions_spec(data[key])
        for name, (default, why) in _DEFAULT_ONLY.items():
            value = get_field(data, name)
            if value is not None and value != default:
                raise SpecError(name, value, f"is not supported: {why}; remove it")
        return data

    @field_validator("job_properties")
    @classmethod
    def _properties(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if not key:
                raise SpecError("", v, "a job property needs a name")
            if isinstance(value, (dict, list)):
                raise SpecError(key, value, "a job property's value is a string, number or boolean")
        return v

    @model_validator(mode="after")
    def _extendable(self) -> HadoopTuningConfig:
        if self.force_extendable_shard_specs and isinstance(self.partitions_spec, SingleDimensionPartitionsSpec):
            raise SpecError(
                "forceExtendableShardSpecs", True, "single_dim shards cannot be made extendable here; use hashed partitioning to append later"
            )
        if isinstance(self.partitions_spec, DimensionRangePartitionsSpec):
            raise SpecError("partitionsSpec.type", "range", "Druid's Hadoop task partitions by hashed or single_dim")
        return self

    def ignored_fields(self) -> list[tuple[str, str]]:
        out = []
        if self.version is not None:
            out.append(("version", "Druid ignores it unless useExplicitVersion is true; segments get the lock's version"))
        if self.max_parse_exceptions is not None and "ignore_invalid_rows" in self.model_fields_set:
            out.append(("ignoreInvalidRows", "maxParseExceptions is given, and it overrides ignoreInvalidRows"))
        hashed = self.partitions_spec
        if isinstance(hashed, HashedPartitionsSpec) and hashed.num_shards is None and hashed.partition_dimensions:
            out.append(("partitionsSpec.partitionDimensions", "only used with numShards (Druid ignores it with a target row count)"))
        return out

    @property
    def effective_max_parse_exceptions(self) -> int:
        """Druid's Hadoop rule: ``maxParseExceptions``, else unlimited with ``ignoreInvalidRows`` and 0 without."""
        if self.max_parse_exceptions is not None:
            return self.max_parse_exceptions
        return JAVA_INT_MAX if self.ignore_invalid_rows else 0

    def spark_conf(self) -> dict[str, str]:
        """``jobProperties`` as Spark configuration: ``spark.*`` as given, the rest as Hadoop conf (``spark.hadoop.``)."""
        out = {}
        for key, value in self.job_properties.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out[key if key.startswith("spark.") else f"spark.hadoop.{key}"] = text
        return out


class HadoopIngestionSpec(SpecModel):
    """The ``spec`` of an ``index_hadoop`` task, its classic parser folded into ``timestampSpec``/``dimensionsSpec``
    and ``ioConfig.inputFormat``."""

    data_schema: DataSchema
    io_config: HadoopIOConfig
    tuning_config: HadoopTuningConfig = Field(default_factory=HadoopTuningConfig)

    @model_validator(mode="before")
    @classmethod
    def _fold_parser(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ds_key, io_key = field_key(data, "dataSchema"), field_key(data, "ioConfig")
        ds, io = data.get(ds_key or ""), data.get(io_key or "")
        if not isinstance(ds, dict) or not isinstance(io, dict):
            return data
        ds, io = dict(ds), dict(io)
        parser = pop_field(ds, "parser")
        spec = get_field(io, "inputSpec")
        class_name = get_field(spec, "inputFormat") if isinstance(spec, dict) else None
        if parser is not None:
            for name in ("timestampSpec", "dimensionsSpec"):
                if field_key(ds, name) is not None:
                    raise SpecError(f"dataSchema.{name}", get_field(ds, name), "given both here and in dataSchema.parser.parseSpec; use one form")
            if get_field(io, "inputFormat") is not None:
                raise SpecError("ioConfig.inputFormat", get_field(io, "inputFormat"), "cannot be combined with dataSchema.parser; use one form")
            _check_parse_spec(parser)
            timestamp_spec, dimensions_spec, input_format = _from_parser(parser, "dataSchema.parser")
            if input_format is None:
                raise SpecError("dataSchema.parser.parseSpec.format", "timeAndDims", "an index_hadoop task reads files: use json, csv or tsv")
            ds["timestampSpec"], ds["dimensionsSpec"] = timestamp_spec, dimensions_spec
            io["inputFormat"] = input_format
        elif get_field(io, "inputFormat") is None:
            raise SpecError("dataSchema.parser", None, "an index_hadoop task needs a parser (or timestampSpec, dimensionsSpec and ioConfig.inputFormat)")
        fmt = io["inputFormat"]
        fmt_type = fmt.type if hasattr(fmt, "type") else get_field(fmt, "type")
        if class_name is not None:
            parquet = class_name in PARQUET_INPUT_FORMATS
            if parquet != (fmt_type == "parquet"):
                raise SpecError(
                    "ioConfig.inputSpec.inputFormat", class_name, f"does not read what a {fmt_type!r} parser parses"
                )
        elif fmt_type == "parquet":
            raise SpecError("ioConfig.inputSpec.inputFormat", None, "a parquet parser needs Druid's DruidParquetInputFormat")
        out = dict(data)
        out[ds_key], out[io_key] = ds, io
        return out

    @model_validator(mode="after")
    def _granularity_needs_intervals(self) -> HadoopIngestionSpec:
        if isinstance(self.io_config.input_spec, GranularityPathSpec) and not self.data_schema.granularity_spec.intervals:
            raise SpecError(
                "dataSchema.granularitySpec.intervals", None, "a granularity inputSpec finds its directories from the intervals; give them"
            )
        return self


def _check_parse_spec(parser: Any) -> None:
    spec = get_field(parser, "parseSpec")
    if isinstance(spec, dict):
        for name in ("hasHeaderRow", "skipHeaderRows"):
            value = spec.get(name)
            if value not in (None, False, 0):
                raise SpecError(
                    f"dataSchema.parser.parseSpec.{name}", value, "Druid's Hadoop task reads lines and refuses header rows; use an index task"
                )


class HadoopIndexTask(BaseTask):
    """``{"type": "index_hadoop", "spec": {dataSchema, ioConfig, tuningConfig}, "context"}``."""

    type: Literal["index_hadoop"] = "index_hadoop"
    spec: HadoopIngestionSpec
    hadoop_dependency_coordinates: Optional[list[str]] = None
    classpath_prefix: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _no_hadoop_classpath(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("hadoopDependencyCoordinates", "classpathPrefix"):
                value = get_field(data, name)
                if value not in (None, []):
                    raise SpecError(
                        name, value, "is not supported: the Spark job uses pyspark's own Hadoop client libraries; remove it"
                    )
        return data

    @classmethod
    def _raw_data_source(cls, data: dict[str, Any]) -> Any:
        return get_field(get_field(get_field(data, "spec"), "dataSchema"), "dataSource")

    @property
    def data_source(self) -> str:
        return self.spec.data_schema.data_source

    def index_task(self, input_source: Any) -> Any:
        """This task as the ``index_parallel`` task it runs as, over ``input_source`` (the resolved input paths)."""
        from druidflow.specs.tasks import IndexTask

        tuning = self.spec.tuning_config
        partitions = tuning.partitions_spec
        index_tuning: dict[str, Any] = {
            "type": "index_parallel",
            "partitionsSpec": _index_partitions(partitions).model_dump(),
            "forceGuaranteedRollup": not isinstance(partitions, DynamicPartitionsSpec),
            "maxRowsInMemory": tuning.max_rows_in_memory,
            "maxBytesInMemory": tuning.max_bytes_in_memory,
            "indexSpec": tuning.index_spec.model_dump(),
            "maxParseExceptions": tuning.effective_max_parse_exceptions,
            "logParseExceptions": tuning.log_parse_exceptions,
        }
        if tuning.index_spec_for_intermediate_persists is not None:
            index_tuning["indexSpecForIntermediatePersists"] = tuning.index_spec_for_intermediate_persists.model_dump()
        input_format = self.spec.io_config.input_format
        if input_format is None:  # validation folds the parser into it
            raise SpecError("ioConfig.inputFormat", None, "an index_hadoop task needs a parser (or ioConfig.inputFormat)")
        spec = {
            "type": "index_parallel",
            "id": self.task_id,
            "context": self.context,
            "spec": {
                "dataSchema": self.spec.data_schema.model_dump(),
                "ioConfig": {
                    "type": "index_parallel",
                    "inputSource": input_source.model_dump(),
                    "inputFormat": input_format.model_dump(),
                },
                "tuningConfig": index_tuning,
            },
        }
        return IndexTask.parse(spec, "")


def _index_partitions(partitions: Any) -> Any:
    # Druid's Hadoop hashing uses partitionDimensions only with numShards; with a target row count, every dimension.
    if isinstance(partitions, HashedPartitionsSpec) and partitions.num_shards is None and partitions.partition_dimensions:
        return partitions.model_copy(update={"partition_dimensions": []})
    return partitions


# ------------------------------------------------------------------------------------------------ paths


def split_paths(paths: Union[str, list[str]]) -> list[str]:
    """Hadoop's comma-separated path list (``FileInputFormat.addInputPaths``): commas inside ``{...}`` belong to
    the glob's alternatives, not the list."""
    if isinstance(paths, list):
        return [p.strip() for item in paths for p in split_paths(item)]
    out: list[str] = []
    current: list[str] = []
    depth = 0
    for c in paths:
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        if c == "," and depth == 0:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(c)
    out.append("".join(current).strip())
    return [p for p in out if p]
