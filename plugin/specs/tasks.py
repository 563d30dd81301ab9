"""The task envelopes Druidflow accepts, and :func:`parse_task`, which validates one before any work starts.

Types: ``index`` (and ``index_parallel``, the same model), ``compact``, ``kill``, ``merge``, ``append``,
``same_interval_merge`` and ``convert_segment`` (legacy alias ``version_converter``). Every task has
:attr:`~_Task.task_type`, :attr:`~_Task.data_source`, :attr:`~_Task.task_id` (the given ``id``, or one generated
at parse time as Druid >= 0.17 does: ``<type>_<dataSource>_<8 random letters a-p>[_<start>_<end>]_<now>``, so it
stays stable afterwards), :attr:`~_Task.group_id`, :attr:`~_Task.priority`, :attr:`~_Task.lock_timeout_ms`,
:attr:`~_Task.lock_type` and :attr:`~_Task.context`.

Every input form a task type has (a compaction's ``interval`` / ``segments`` / ``ioConfig.inputSpec``, its
``dimensions`` / ``dimensionsSpec``, its ``segmentGranularity`` / ``granularitySpec``) is normalised at parse
time into one shape, as the index task's classic form is (see :mod:`druidflow.specs.ingestion`).
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from druidflow.aggregators import Aggregator
from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity
from druidflow.intervals import Interval, format_instant, now_ms, parse_instant, umbrella
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.ingestion import IndexIngestionSpec, IngestionMode
from druidflow.specs.tuning import IndexSpec, IndexTuningConfig, SegmentWriteOutMediumFactory
from druidflow.specs.limits import LONG_MAX, check_java_int, check_spec_shape
from druidflow.specs.validation import (
    SpecModel,
    check_druid_id,
    drop_nulls,
    field_key,
    get_field,
    load_json,
    pop_field,
    validate_as,
)
from druidflow.transforms import TransformSpec

DEFAULT_PRIORITIES = {"index": 50, "index_parallel": 50, "compact": 25, "merge": 25, "append": 25}
"""Default lock priority per task type (Druid's ``Tasks.DEFAULT_*_PRIORITY``); every other type gets 0."""

DEFAULT_LOCK_TIMEOUT_MS = 300_000
LOCK_TYPES = ("EXCLUSIVE", "SHARED", "APPEND", "REPLACE")
CONVERTED_VERSION_SUFFIX = "_converted"


# --------------------------------------------------------------------------------------------------- task ids


def random_id_part() -> str:
    """Druid's ``IdUtils.getRandomId``: 8 characters, each ``a`` + one random nibble (so ``a``-``p``)."""
    bits = secrets.randbits(32)
    return "".join(chr(ord("a") + ((bits >> (4 * i)) & 0xF)) for i in range(8))


def generate_task_id(task_type: str, data_source: str, interval: Optional[Interval] = None, now: Optional[int] = None) -> str:
    """``<type>_<dataSource>_<random8>[_<start>_<end>]_<now>`` (Druid's ``IdUtils.newTaskId``, UTC ISO instants)."""
    parts = [task_type, data_source, random_id_part()]
    if interval is not None:
        parts += [format_instant(interval.start), format_instant(interval.end)]
    parts.append(format_instant(now_ms() if now is None else now))
    return "_".join(parts)


def _valid_id(value: Any) -> bool:
    try:
        check_druid_id(value, "dataSource")
    except SpecError:
        return False
    return True


def _raw_interval(value: Any) -> Optional[Interval]:
    try:
        return Interval.parse(value)
    except (SpecError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- context


def _as_bool(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    return None


_BOOL_KEYS = ("useSharedLock", "useConcurrentLocks", "forceTimeChunkLock", "storeCompactionState", "storeEmptyColumns", "dryRun")


def _check_context(ctx: dict[str, Any]) -> dict[str, Any]:
    if "priority" in ctx:
        if _as_int(ctx["priority"]) is None:
            raise SpecError("priority", ctx["priority"], "the task priority must be an integer")
        check_java_int(_as_int(ctx["priority"]), "priority")  # type: ignore[arg-type]
    if "taskLockTimeout" in ctx:
        timeout = _as_int(ctx["taskLockTimeout"])
        if timeout is None or timeout <= 0 or timeout > LONG_MAX:
            raise SpecError("taskLockTimeout", ctx["taskLockTimeout"], "must be a positive number of milliseconds (a Java long)")
    if ctx.get("taskLockType") is not None:
        kind = ctx["taskLockType"]
        if not isinstance(kind, str) or kind.upper() not in LOCK_TYPES:
            raise SpecError("taskLockType", kind, f"must be one of {', '.join(LOCK_TYPES)}")
    for key in _BOOL_KEYS:
        if key in ctx and _as_bool(ctx[key]) is None:
            raise SpecError(key, ctx[key], "must be true or false")
    if _as_bool(ctx.get("forceTimeChunkLock", True)) is False:
        raise SpecError("forceTimeChunkLock", ctx["forceTimeChunkLock"], "Druidflow locks whole time chunks; segment locking is not supported")
    return ctx


# ------------------------------------------------------------------------------------------------ base


class TaskResource(SpecModel):
    """``resource``: ``{"availabilityGroup": <id>, "requiredCapacity": 1}`` (accepted; Druidflow has no slots)."""

    availability_group: Optional[str] = None
    required_capacity: int = Field(default=1, gt=0)


class _Task(SpecModel):
    """What every task envelope has: ``type``, ``id``, ``context`` (and the optional ``resource``)."""

    type: str
    id: Optional[str] = None  # always set after validation (generated when absent)
    resource: Optional[TaskResource] = None
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _assign_id(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(data)
        if get_field(data, "id") is None:
            ds = cls._raw_data_source(data)
            if _valid_id(ds):
                kind = data.get("type") or cls.model_fields["type"].default
                data = {**data, "id": generate_task_id(cls._id_type(kind), ds, cls._raw_id_interval(data))}
        return data

    @classmethod
    def _raw_data_source(cls, data: dict) -> Any:
        return get_field(data, "dataSource")

    @classmethod
    def _raw_id_interval(cls, data: dict) -> Optional[Interval]:
        return None

    @classmethod
    def _id_type(cls, kind: Any) -> str:
        return str(kind)

    @field_validator("id")
    @classmethod
    def _id(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else check_druid_id(v, "task id")

    @field_validator("context", mode="before")
    @classmethod
    def _context(cls, v: Any) -> Any:
        return _check_context(v) if isinstance(v, dict) else v

    @property
    def task_type(self) -> str:
        return self.type

    @property
    def task_id(self) -> str:
        return self.id  # type: ignore[return-value]

    @property
    def group_id(self) -> str:
        """Tasks of one group share their locks; it is the task id except for appending index tasks."""
        return self.task_id

    @property
    def priority(self) -> int:
        """Lock priority: the context ``priority``, else the type's default (index 50, compact/merge/append 25, else 0)."""
        given = _as_int(self.context.get("priority"))
        return given if given is not None else DEFAULT_PRIORITIES.get(self.task_type, 0)

    @property
    def lock_timeout_ms(self) -> int:
        """How long a blocking lock request waits (context ``taskLockTimeout``, default 300 000 ms)."""
        given = _as_int(self.context.get("taskLockTimeout"))
        return given if given is not None else DEFAULT_LOCK_TIMEOUT_MS

    @property
    def lock_type(self) -> str:
        """The time-chunk lock type this task asks for (Druid's ``determineLockType``); EXCLUSIVE by default.

        ``useConcurrentLocks`` gives APPEND for appending tasks and REPLACE for the others; otherwise the context
        ``taskLockType`` (or SHARED with ``useSharedLock``), where SHARED and APPEND fall back to EXCLUSIVE for a
        task that does not append.
        """
        appending = self._appends
        if _as_bool(self.context.get("useConcurrentLocks")):
            return "APPEND" if appending else "REPLACE"
        kind = self.context.get("taskLockType")
        kind = kind.upper() if isinstance(kind, str) else ("SHARED" if _as_bool(self.context.get("useSharedLock")) else "EXCLUSIVE")
        if kind in ("SHARED", "APPEND") and not appending:
            return "EXCLUSIVE"
        return kind

    @property
    def _appends(self) -> bool:
        return False

    def context_flag(self, key: str, default: bool = False) -> bool:
        """A boolean context key (``true``/``false``, JSON or string)."""
        value = _as_bool(self.context.get(key))
        return default if value is None else value


def _check_data_source(v: str) -> str:
    return check_druid_id(v, "dataSource")


# ----------------------------------------------------------------------------------------------------- index


class IndexTask(_Task):
    """``{"type": "index", "id", "resource", "spec": {dataSchema, ioConfig, tuningConfig}, "context"}``.

    ``index_parallel`` parses into the same model (Druidflow's index task already splits its work into
    independently runnable build units); its extra tuning fields are accepted.
    """

    type: Literal["index", "index_parallel"] = "index"
    spec: IndexIngestionSpec

    @model_validator(mode="before")
    @classmethod
    def _envelope_data_source(cls, data: Any) -> Any:
        # Druid serialises the dataSource on the task too, and its own integration-test specs carry it there.
        if not isinstance(data, dict) or "dataSource" not in data:
            return data
        data = dict(data)
        given, inner = data.pop("dataSource"), cls._raw_data_source(data)
        if given != inner:
            raise ValueError(f"dataSource {given!r} differs from spec.dataSchema.dataSource {inner!r}")
        return data

    @classmethod
    def _raw_data_source(cls, data: dict) -> Any:
        return get_field(get_field(get_field(data, "spec"), "dataSchema"), "dataSource")

    @property
    def data_source(self) -> str:
        return self.spec.data_schema.data_source

    @property
    def ingestion_mode(self) -> IngestionMode:
        """REPLACE_LEGACY, REPLACE (``dropExisting``) or APPEND (``appendToExisting``)."""
        return self.spec.ingestion_mode

    @property
    def group_id(self) -> str:
        """``index_append_<dataSource>`` when appending (all appenders share their locks), else the task id."""
        if self.ingestion_mode is IngestionMode.APPEND:
            return f"index_append_{self.data_source}"
        return self.task_id

    @property
    def _appends(self) -> bool:
        return self.ingestion_mode is IngestionMode.APPEND


# --------------------------------------------------------------------------------------------------- compact


class CompactionIntervalSpec(SpecModel):
    """``{"type": "interval", "interval": I, "sha256OfSortedSegmentIds": optional}``: the visible segments of ``I``."""

    type: Literal["interval"] = "interval"
    interval: Interval
    sha256_of_sorted_segment_ids: Optional[str] = None

    @field_validator("interval")
    @classmethod
    def _non_empty(cls, v: Interval) -> Interval:
        if v.is_empty():
            raise SpecError("", str(v), "the interval to compact must not be empty")
        return v

    @field_validator("sha256_of_sorted_segment_ids")
    @classmethod
    def _hex(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise SpecError("", v, "expected the hex SHA-256 (64 characters) of the sorted segment ids")
        return None if v is None else v.lower()


class SpecificSegmentsSpec(SpecModel):
    """``{"type": "segments", "segments": [segment ids]}``: exactly these segments, which must still be the used set."""

    type: Literal["segments"] = "segments"
    segments: list[str] = Field(min_length=1)

    @field_validator("segments")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, sid in enumerate(v):
            if sid in seen:
                raise SpecError(f"[{i}]", sid, "segment listed twice")
            seen.add(sid)
        return v


CompactionInputSpec = Annotated[Union[CompactionIntervalSpec, SpecificSegmentsSpec], Field(discriminator="type")]


class CompactionIOConfig(SpecModel):
    """``ioConfig`` of a compaction: ``{"type": "compact", "inputSpec": ..., "dropExisting": false}``."""

    type: Literal["compact"] = "compact"
    input_spec: CompactionInputSpec
    drop_existing: bool = False
    allow_non_aligned_interval: bool = False


class CompactionGranularitySpec(SpecModel):
    """``granularitySpec`` of a compaction; each null field keeps what the input segments have."""

    segment_granularity: Optional[Granularity] = None
    query_granularity: Optional[Granularity] = None
    rollup: Optional[bool] = None


def segment_id_interval(data_source: str, segment_id: str) -> Interval:
    """The interval of a segment id of ``data_source`` (``<ds>_<start>_<end>_<version>[_<n>]``); ValueError if not one."""
    prefix = data_source + "_"
    if not segment_id.startswith(prefix):
        raise ValueError(f"not a segment id of dataSource {data_source!r}")
    parts = segment_id[len(prefix) :].split("_")
    if len(parts) < 3 or not parts[2]:
        raise ValueError("a segment id is <dataSource>_<start>_<end>_<version>[_<partitionNum>]")
    try:
        return Interval(parse_instant(parts[0]), parse_instant(parts[1]))
    except SpecError as exc:
        raise ValueError(f"a segment id is <dataSource>_<start>_<end>_<version>[_<partitionNum>]: {exc.reason}") from None


class CompactTask(_Task):
    """A ``compact`` task (Druid §3.1), normalised: the input is always ``ioConfig.inputSpec``.

    The deprecated top-level ``interval`` and ``segments`` (full segment objects or ids) become an ``interval``
    or ``segments`` inputSpec; ``dimensions`` becomes ``dimensionsSpec``; ``segmentGranularity`` moves into
    ``granularitySpec``. Exactly one input form must be given. Null ``dimensionsSpec``, ``metricsSpec`` and
    granularities mean "infer from the input segments".
    """

    type: Literal["compact"] = "compact"
    data_source: str
    io_config: CompactionIOConfig
    dimensions_spec: Optional[DimensionsSpec] = None
    metrics_spec: Optional[list[Aggregator]] = None
    granularity_spec: Optional[CompactionGranularitySpec] = None
    transform_spec: Optional[TransformSpec] = None
    tuning_config: Optional[IndexTuningConfig] = None

    @model_validator(mode="before")
    @classmethod
    def _one_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        forms = [name for name in ("interval", "segments", "ioConfig") if field_key(data, name) is not None]
        if len(forms) != 1:
            raise SpecError(
                forms[1] if forms else "ioConfig",
                get_field(data, forms[1]) if forms else None,
                "give exactly one of interval, segments or ioConfig.inputSpec" + (f" (got {' and '.join(forms)})" if forms else ""),
            )
        # the deprecated forms are validated here, so that their errors name the field the user wrote
        if forms[0] == "interval":
            spec = validate_as(CompactionIntervalSpec, {"type": "interval", "interval": pop_field(data, "interval")})
            data["ioConfig"] = {"type": "compact", "inputSpec": spec}
        elif forms[0] == "segments":
            ids = _segment_ids(pop_field(data, "segments"))
            spec = validate_as(SpecificSegmentsSpec, {"type": "segments", "segments": ids})
            ds = get_field(data, "dataSource")
            if _valid_id(ds):
                _check_segment_ids(ds, spec.segments, "segments")
            data["ioConfig"] = {"type": "compact", "inputSpec": spec}
        if field_key(data, "dimensions") is not None:
            dims = pop_field(data, "dimensions")
            if field_key(data, "dimensionsSpec") is not None:
                raise SpecError("dimensions", dims, "give dimensions or dimensionsSpec, not both")
            data["dimensionsSpec"] = {"dimensions": dims}
        if field_key(data, "segmentGranularity") is not None:
            seg = pop_field(data, "segmentGranularity")
            raw_gran = get_field(data, "granularitySpec")
            if raw_gran is not None and not isinstance(raw_gran, dict):
                raise SpecError("granularitySpec", raw_gran, "expected an object such as {\"segmentGranularity\": \"DAY\"}")
            gran = dict(raw_gran or {})
            given = get_field(gran, "segmentGranularity")
            if given is not None and not _same_granularity(given, seg):
                raise SpecError(
                    "segmentGranularity", seg, f"conflicts with granularitySpec.segmentGranularity ({given!r}); give one"
                )
            gran.pop(field_key(gran, "segmentGranularity") or "segmentGranularity", None)
            gran["segmentGranularity"] = seg
            data.pop(field_key(data, "granularitySpec") or "granularitySpec", None)
            data["granularitySpec"] = gran
        return data

    @field_validator("data_source")
    @classmethod
    def _ds(cls, v: str) -> str:
        return _check_data_source(v)

    @model_validator(mode="after")
    def _consistent(self) -> CompactTask:
        spec = self.io_config.input_spec
        if isinstance(spec, SpecificSegmentsSpec):
            _check_segment_ids(self.data_source, spec.segments, "ioConfig.inputSpec.segments")
        names: set[str] = set()
        for i, agg in enumerate(self.metrics_spec or ()):
            if agg.name in names:
                raise SpecError(f"metricsSpec[{i}].name", agg.name, "two metrics have this name")
            names.add(agg.name)
        if self.tuning_config is not None and self.tuning_config.await_segment_availability_timeout_millis:
            raise SpecError(
                "tuningConfig.awaitSegmentAvailabilityTimeoutMillis",
                self.tuning_config.await_segment_availability_timeout_millis,
                "is not allowed in a compaction task",
            )
        return self

    @property
    def interval(self) -> Optional[Interval]:
        """The interval to compact (interval inputSpec), or None for a segments inputSpec."""
        spec = self.io_config.input_spec
        return spec.interval if isinstance(spec, CompactionIntervalSpec) else None

    @property
    def segment_ids(self) -> Optional[list[str]]:
        """The exact segments to compact (segments inputSpec), or None for an interval inputSpec."""
        spec = self.io_config.input_spec
        return list(spec.segments) if isinstance(spec, SpecificSegmentsSpec) else None

    @property
    def sha256_of_sorted_segment_ids(self) -> Optional[str]:
        spec = self.io_config.input_spec
        return spec.sha256_of_sorted_segment_ids if isinstance(spec, CompactionIntervalSpec) else None

    @property
    def requested_interval(self) -> Interval:
        """The interval named by the input: the inputSpec's interval, or the umbrella of the listed segments."""
        if self.interval is not None:
            return self.interval
        return umbrella([segment_id_interval(self.data_source, sid) for sid in self.segment_ids or ()])


def _check_segment_ids(data_source: str, ids: list[str], path: str) -> None:
    for i, sid in enumerate(ids):
        try:
            segment_id_interval(data_source, sid)
        except ValueError as exc:
            raise SpecError(f"{path}[{i}]", sid, str(exc)) from None


def _same_granularity(a: Any, b: Any) -> bool:
    try:
        return Granularity.parse(a) == Granularity.parse(b)
    except SpecError:
        return a == b


def _segment_ids(value: Any) -> Any:
    """Ids of the classic ``segments`` field (full segment objects or ids)."""
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for i, seg in enumerate(value):
        if isinstance(seg, dict):
            out.append(validate_as(DataSegment, seg, f"segments[{i}]").id)
        else:
            out.append(seg)
    return out


# ------------------------------------------------------------------------------------------------------ kill


class KillTask(_Task):
    """A ``kill`` task (Druid §4): permanently delete the *unused* segments lying entirely inside ``interval``.

    ``markAsUnused`` (Druid 0.22 until 2024) first marks the used segments of the interval unused; it cannot be
    combined with ``limit`` or ``versions``. Context ``dryRun: true`` only reports what would be deleted.
    """

    type: Literal["kill"] = "kill"
    data_source: str
    interval: Interval
    versions: Optional[list[str]] = None
    batch_size: int = Field(default=100, gt=0)
    limit: Optional[int] = Field(default=None, gt=0)
    max_used_status_last_updated_time: Optional[str] = None
    mark_as_unused: bool = False

    @classmethod
    def _raw_id_interval(cls, data: dict) -> Optional[Interval]:
        return _raw_interval(get_field(data, "interval"))

    @field_validator("data_source")
    @classmethod
    def _ds(cls, v: str) -> str:
        return _check_data_source(v)

    @field_validator("interval")
    @classmethod
    def _non_empty(cls, v: Interval) -> Interval:
        if v.is_empty():
            raise SpecError("", str(v), "the kill interval must not be empty")
        return v

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None:
            if not v:
                raise SpecError("", v, "give at least one version, or leave versions out to kill every version")
            for i, version in enumerate(v):
                if not version:
                    raise SpecError(f"[{i}]", version, "a version must not be empty")
        return v

    @field_validator("max_used_status_last_updated_time")
    @classmethod
    def _instant(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            parse_instant(v)
        return v

    @model_validator(mode="after")
    def _mark_as_unused(self) -> KillTask:
        if self.mark_as_unused:
            for name, value in (("limit", self.limit), ("versions", self.versions)):
                if value is not None:
                    raise SpecError(name, value, "cannot be combined with markAsUnused=true")
        return self

    @property
    def max_used_status_last_updated_ms(self) -> Optional[int]:
        """``maxUsedStatusLastUpdatedTime`` in epoch ms: only segments marked unused at or before it are killed."""
        t = self.max_used_status_last_updated_time
        return None if t is None else parse_instant(t)

    @property
    def dry_run(self) -> bool:
        """Context ``dryRun``: report what would be deleted, delete nothing."""
        return self.context_flag("dryRun")

    @property
    def max_batches(self) -> Optional[int]:
        """``ceil(limit / batchSize)``, or None without a limit."""
        return None if self.limit is None else -(-self.limit // self.batch_size)


# ------------------------------------------------------------------------------------ merge, append, convert


def _unique_aggregator_names(aggs: Optional[list[Any]], field: str) -> None:
    names: set[str] = set()
    for i, agg in enumerate(aggs or ()):
        if agg.name in names:
            raise SpecError(f"{field}[{i}].name", agg.name, "two aggregators have this name")
        names.add(agg.name)


def _is_unsharded(segment: DataSegment) -> bool:
    spec = segment.shard_spec
    if spec.type == "none":
        return True
    if spec.type == "tombstone":
        return False
    return spec.partition_num == 0 and spec.core_partitions <= 1


class _SegmentListTask(_Task):
    """``merge`` and ``append``: a list of full segment objects of one dataSource, merged into one segment."""

    data_source: str
    segments: list[DataSegment] = Field(min_length=1)
    index_spec: Optional[IndexSpec] = None
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None

    @field_validator("data_source")
    @classmethod
    def _ds(cls, v: str) -> str:
        return _check_data_source(v)

    @model_validator(mode="after")
    def _segments_fit(self) -> _SegmentListTask:
        seen: set[str] = set()
        for i, seg in enumerate(self.segments):
            if seg.data_source.lower() != self.data_source.lower():
                raise SpecError(f"segments[{i}].dataSource", seg.data_source, f"the segment is not of dataSource {self.data_source!r}")
            if seg.id in seen:
                raise SpecError(f"segments[{i}]", seg.id, "segment listed twice")
            seen.add(seg.id)
            if not _is_unsharded(seg):
                raise SpecError(
                    f"segments[{i}].shardSpec", seg.shard_spec.model_dump(), f"{self.type} needs unsharded segments (one partition per time chunk)"
                )
        _unique_aggregator_names(getattr(self, "aggregations", None), "aggregations")
        return self

    @property
    def interval(self) -> Interval:
        """The umbrella interval of the segments: what is locked, and the interval of the output segment."""
        return umbrella([s.interval for s in self.segments])

    @property
    def segment_ids(self) -> list[str]:
        return [s.id for s in self.segments]


class MergeTask(_SegmentListTask):
    """``merge`` (Druid <= 0.14): merge the segments into one, re-aggregating with ``aggregations`` when ``rollup``."""

    type: Literal["merge"] = "merge"
    aggregations: list[Aggregator]
    rollup: bool = True


class AppendTask(_SegmentListTask):
    """``append`` (Druid <= 0.14): concatenate the visible rows of the segments into one segment, without rollup."""

    type: Literal["append"] = "append"
    aggregations: Optional[list[Aggregator]] = None


class SameIntervalMergeTask(_Task):
    """``same_interval_merge``: merge every used segment of ``interval`` into one."""

    type: Literal["same_interval_merge"] = "same_interval_merge"
    data_source: str
    interval: Interval
    aggregations: list[Aggregator]
    rollup: bool = True
    index_spec: Optional[IndexSpec] = None
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None

    @classmethod
    def _raw_id_interval(cls, data: dict) -> Optional[Interval]:
        return _raw_interval(get_field(data, "interval"))

    @field_validator("data_source")
    @classmethod
    def _ds(cls, v: str) -> str:
        return _check_data_source(v)

    @field_validator("interval")
    @classmethod
    def _non_empty(cls, v: Interval) -> Interval:
        if v.is_empty():
            raise SpecError("", str(v), "the interval must not be empty")
        return v

    @model_validator(mode="after")
    def _names(self) -> SameIntervalMergeTask:
        _unique_aggregator_names(self.aggregations, "aggregations")
        return self


class ConvertSegmentTask(_Task):
    """``convert_segment``: rewrite the used segments of ``interval`` (or just ``segment``) with ``indexSpec``.

    Converted segments keep interval and partition; their version gets ``_converted`` appended (as the Druid
    docs say, so the new version sorts above the old one and overshadows it). ``interval`` may be left out when
    ``segment`` is given (it is then the segment's interval). ``validate`` compares old and new rows.
    """

    type: Literal["convert_segment", "version_converter"] = "convert_segment"
    data_source: str
    interval: Interval
    segment: Optional[DataSegment] = None
    index_spec: IndexSpec
    force: bool = False
    validate_segments: bool = Field(default=True, alias="validate")
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None

    @model_validator(mode="before")
    @classmethod
    def _interval_from_segment(cls, data: Any) -> Any:
        if isinstance(data, dict) and get_field(data, "interval") is None and isinstance(get_field(data, "segment"), dict):
            interval = get_field(get_field(data, "segment"), "interval")
            if interval is not None:
                data = {**data, "interval": interval}
        return data

    @classmethod
    def _raw_id_interval(cls, data: dict) -> Optional[Interval]:
        return _raw_interval(get_field(data, "interval") or get_field(get_field(data, "segment"), "interval"))

    @classmethod
    def _id_type(cls, kind: Any) -> str:
        return "convert_segment"

    @field_validator("type")
    @classmethod
    def _canonical(cls, v: str) -> str:
        return "convert_segment"

    @field_validator("data_source")
    @classmethod
    def _ds(cls, v: str) -> str:
        return _check_data_source(v)

    @field_validator("interval")
    @classmethod
    def _non_empty(cls, v: Interval) -> Interval:
        if v.is_empty():
            raise SpecError("", str(v), "the interval must not be empty")
        return v

    @model_validator(mode="after")
    def _segment_fits(self) -> ConvertSegmentTask:
        seg = self.segment
        if seg is not None:
            if seg.data_source != self.data_source:
                raise SpecError("segment.dataSource", seg.data_source, f"the segment is not of dataSource {self.data_source!r}")
            if not self.interval.contains(seg.interval):
                raise SpecError("segment.interval", str(seg.interval), f"the segment lies outside interval {self.interval}")
        return self

    @staticmethod
    def converted_version(version: str) -> str:
        """The version of a converted segment: the old one with ``_converted`` appended (once per conversion)."""
        return version + CONVERTED_VERSION_SUFFIX


# --------------------------------------------------------------------------------------------------- parsing

Task = Union[IndexTask, CompactTask, KillTask, MergeTask, AppendTask, SameIntervalMergeTask, ConvertSegmentTask]
"""Any task Druidflow accepts."""

TASK_TYPES: dict[str, type] = {
    "index": IndexTask,
    "index_parallel": IndexTask,
    "compact": CompactTask,
    "kill": KillTask,
    "merge": MergeTask,
    "append": AppendTask,
    "same_interval_merge": SameIntervalMergeTask,
    "convert_segment": ConvertSegmentTask,
    "version_converter": ConvertSegmentTask,
}


def parse_task(data: Any, path: str = "") -> Task:
    """Validate a Druid task (a dict or JSON text) and return its model; SpecError names the path and value."""
    if isinstance(data, _Task):
        return data  # type: ignore[return-value]
    data = load_json(data, path)
    if not isinstance(data, dict):
        raise SpecError(path, data, "a task is a JSON object with a 'type'")
    check_spec_shape(data, path)
    kind = data.get("type")
    supported = ", ".join(TASK_TYPES)
    type_path = f"{path}.type" if path else "type"
    if kind is None:
        raise SpecError(type_path, None, f"missing task type; supported: {supported}")
    model = TASK_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise SpecError(type_path, kind, f"unsupported task type; supported: {supported}")
    return model.parse(data, path)


TaskType = Annotated[Task, BeforeValidator(lambda v: parse_task(v) if isinstance(v, (dict, str)) else v)]
"""A pydantic field type holding any task, validated by :func:`parse_task`."""
