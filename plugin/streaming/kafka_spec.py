"""Druid's Kafka supervisor spec: ``{"type": "kafka", "spec": {dataSchema, ioConfig, tuningConfig}}``.

The legacy top-level form (``dataSchema``/``ioConfig``/``tuningConfig`` beside ``type``, with a classic
``dataSchema.parser``) is normalised into the modern one before validation. The dataSchema, the inputFormat and
the tuning fields a segment build uses are validated by the index task's own models: :meth:`KafkaSupervisorSpec.
index_task` turns one Kafka task (its spooled messages) into an appending ``index`` task, and the supervisor spec
builds one such task with a placeholder input while it is parsed, so every mistake is reported before any work,
by its path in the supervisor spec.

Fields that only make sense inside Druid's cluster (HTTP chat between Overlord and task JVMs, handoff to
Historicals) are accepted at Druid's default and refused with a field-named error otherwise.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, PositiveInt, field_validator, model_serializer, model_validator

from druidflow.exceptions import SpecError
from druidflow.intervals import Period, parse_instant
from druidflow.specs.ingestion import _from_parser
from druidflow.specs.tasks import IndexTask, generate_task_id
from druidflow.specs.validation import SpecModel, check_druid_id, drop_nulls, field_key, get_field, load_json

#: Default lock priority of realtime tasks (Druid's index_kafka): batch (50) and compaction (25) never preempt it.
KAFKA_TASK_PRIORITY = 75
KAFKA_TASK_TYPE = "index_kafka"

# Druid tuningConfig fields about its cluster's machinery, with the defaults under which they change nothing here.
_CLUSTER_ONLY_TUNING = {
    "chatThreads": None,
    "chatRetries": 8,
    "httpTimeout": "PT10S",
    "shutdownTimeout": "PT80S",
    "offsetFetchPeriod": "PT30S",
    "handoffConditionTimeout": (0, 900000),
    "intermediateHandoffPeriod": "P2147483647D",
    "skipSequenceNumberAvailabilityCheck": False,
}
_CLUSTER_ONLY_IO = ("autoScalerConfig", "idleConfig", "configOverrides", "topicPattern", "multiTopic", "emitTimeLagPeriod")
# Tuning fields handed to the index build unchanged.
_BUILD_TUNING = (
    "maxBytesInMemory",
    "skipBytesInMemoryOverheadCheck",
    "maxPendingPersists",
    "numPersistThreads",
    "indexSpec",
    "indexSpecForIntermediatePersists",
    "segmentWriteOutMediumFactory",
    "reportParseExceptions",
    "logParseExceptions",
    "maxParseExceptions",
    "maxSavedParseExceptions",
    "appendableIndexSpec",
)


def _period(value: Any, path: str) -> Period:
    if isinstance(value, Period):
        return value
    return Period.parse(value, path)


class KafkaIOConfig(SpecModel):
    """``spec.ioConfig`` of a Kafka supervisor."""

    type: Literal["kafka"] = "kafka"
    topic: str
    input_format: Optional[dict[str, Any]] = None
    consumer_properties: dict[str, Any]
    poll_timeout: PositiveInt = 100
    replicas: PositiveInt = 1
    task_count: PositiveInt = 1
    task_duration: str = "PT1H"
    start_delay: str = "PT5S"
    period: str = "PT30S"
    use_earliest_offset: bool = False
    completion_timeout: str = "PT30M"
    late_message_rejection_period: Optional[str] = None
    early_message_rejection_period: Optional[str] = None
    late_message_rejection_start_date_time: Optional[str] = None
    # Druidflow's own: the most messages one task reads (so a backlog is cut into tasks of bounded size).
    max_messages_per_task: PositiveInt = 1_000_000

    @model_validator(mode="before")
    @classmethod
    def _refuse_cluster_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = drop_nulls(data)
            for name in _CLUSTER_ONLY_IO:
                if field_key(data, name) is not None:
                    raise SpecError(name, get_field(data, name), "not supported by Druidflow's Kafka supervisor; remove it")
        return data

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v or len(v) > 249 or not all(c.isalnum() or c in "._-" for c in v):
            raise SpecError("", v, "a Kafka topic name is 1-249 characters of letters, digits, '.', '_' and '-'")
        return v

    @field_validator("consumer_properties")
    @classmethod
    def _consumer_properties(cls, v: dict[str, Any]) -> dict[str, Any]:
        servers = v.get("bootstrap.servers")
        if not isinstance(servers, str) or not servers.strip():
            raise SpecError("bootstrap.servers", servers, "consumerProperties needs bootstrap.servers (host:port[,host:port])")
        if str(v.get("enable.auto.commit", "false")).lower() == "true":
            raise SpecError("enable.auto.commit", v["enable.auto.commit"], "offsets are committed with the segments, never by the consumer; remove it")
        return v

    @field_validator("task_duration", "start_delay", "period", "completion_timeout", "late_message_rejection_period", "early_message_rejection_period")
    @classmethod
    def _periods(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            _period(v, "")
        return v

    @field_validator("late_message_rejection_start_date_time")
    @classmethod
    def _instant(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            parse_instant(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> KafkaIOConfig:
        if self.late_message_rejection_period is not None and self.late_message_rejection_start_date_time is not None:
            raise SpecError(
                "lateMessageRejectionStartDateTime", self.late_message_rejection_start_date_time,
                "cannot be combined with lateMessageRejectionPeriod; use one",
            )
        if _period(self.task_duration, "taskDuration").fixed_ms <= 0 or _period(self.task_duration, "").calendar_months:
            raise SpecError("taskDuration", self.task_duration, "must be a positive fixed period such as PT1H")
        return self

    def ms(self, name: str) -> int:
        """A period field in milliseconds (weeks and smaller; months are refused for these fields)."""
        return _period(getattr(self, name), name).fixed_ms

    @property
    def bootstrap_servers(self) -> str:
        return self.consumer_properties["bootstrap.servers"]


class KafkaTuningConfig(SpecModel):
    """``spec.tuningConfig`` of type ``kafka``; build fields go to the index build, the rest are honoured here."""

    type: Literal["kafka"] = "kafka"
    max_rows_in_memory: PositiveInt = 150_000
    max_rows_per_segment: PositiveInt = 5_000_000
    max_total_rows: Optional[PositiveInt] = 20_000_000
    intermediate_persist_period: str = "PT10M"
    reset_offset_automatically: bool = False
    worker_threads: Optional[PositiveInt] = None
    build: dict[str, Any] = Field(default_factory=dict)  # the fields of _BUILD_TUNING, for the index build

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        build = {}
        for name in _BUILD_TUNING:
            key = field_key(data, name)
            if key is not None:
                build[name] = data.pop(key)
        for name, default in _CLUSTER_ONLY_TUNING.items():
            key = field_key(data, name)
            if key is None:
                continue
            value = data.pop(key)
            allowed = default if isinstance(default, tuple) else (default,)
            if value not in allowed:
                raise SpecError(
                    name, value,
                    "has no effect in Druidflow (no task JVMs to chat with, segments are queryable once published); "
                    f"remove it or leave Druid's default {allowed[-1]!r}",
                )
        if "build" in data:
            raise SpecError("build", data["build"], "unknown field")
        data["build"] = build
        return data

    @field_validator("intermediate_persist_period")
    @classmethod
    def _persist_period(cls, v: str) -> str:
        if _period(v, "").fixed_ms <= 0:
            raise SpecError("", v, "must be a positive period such as PT10M")
        return v

    @model_serializer(mode="wrap")
    def _flatten(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        out.update(out.pop("build", {}))
        return out

    def index_tuning(self) -> dict[str, Any]:
        """The index task's tuningConfig for the build of one Kafka task's rows."""
        partitions: dict[str, Any] = {"type": "dynamic", "maxRowsPerSegment": self.max_rows_per_segment}
        if self.max_total_rows is not None:
            partitions["maxTotalRows"] = self.max_total_rows
        return {"type": "index", "maxRowsInMemory": self.max_rows_in_memory, "partitionsSpec": partitions, **self.build}


class KafkaIngestionSpec(SpecModel):
    data_schema: dict[str, Any]
    io_config: KafkaIOConfig
    tuning_config: KafkaTuningConfig = Field(default_factory=KafkaTuningConfig)


class KafkaSupervisorSpec(SpecModel):
    """A validated Kafka supervisor spec. ``id`` is the supervisor id (Druid: the dataSource)."""

    type: Literal["kafka"] = "kafka"
    spec: KafkaIngestionSpec
    suspended: bool = False
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        return normalise_supervisor(data)

    @model_validator(mode="after")
    def _check_build(self) -> KafkaSupervisorSpec:
        self.index_task("check", "placeholder.json")  # validates dataSchema, inputFormat and the build tuning
        return self

    @property
    def id(self) -> str:
        return self.data_source

    @property
    def data_source(self) -> str:
        return self.spec.data_schema["dataSource"]

    @property
    def io(self) -> KafkaIOConfig:
        return self.spec.io_config

    @property
    def tuning(self) -> KafkaTuningConfig:
        return self.spec.tuning_config

    @property
    def priority(self) -> int:
        value = self.context.get("priority", KAFKA_TASK_PRIORITY)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError("context.priority", value, "expected an integer")
        return value

    def new_task_id(self) -> str:
        return generate_task_id(KAFKA_TASK_TYPE, self.data_source)

    def index_task(
        self, task_id: str, messages_file: str, window: Optional[tuple[Optional[int], Optional[int]]] = None
    ) -> IndexTask:
        """The appending index task that builds one Kafka task's spooled messages, under an APPEND lock.

        ``window`` is ``(min, max)`` message time in ms (either may be None): rows outside are thrown away
        (lateMessageRejectionPeriod / earlyMessageRejectionPeriod), as an ``interval`` filter on ``__time``.
        """
        schema = dict(self.spec.data_schema)
        if window is not None and window != (None, None):
            lo, hi = window
            bound = {"type": "interval", "dimension": "__time", "intervals": [_iso_interval(lo, hi)]}
            transform = dict(schema.get("transformSpec") or {})
            user_filter = transform.get("filter")
            transform["filter"] = bound if user_filter is None else {"type": "and", "fields": [user_filter, bound]}
            schema["transformSpec"] = transform
        context = {**self.context, "priority": self.priority, "taskLockType": "APPEND"}
        task = {
            "type": "index",
            "id": task_id,
            "spec": {
                "dataSchema": schema,
                "ioConfig": {
                    "type": "index",
                    "inputSource": {"type": "local", "files": [messages_file]},
                    "inputFormat": self.io.input_format,
                    "appendToExisting": True,
                },
                "tuningConfig": self.tuning.index_tuning(),
            },
            "context": context,
        }
        try:
            parsed = IndexTask.parse(task)
        except SpecError as exc:
            raise _supervisor_path(exc) from None
        if parsed.spec.data_schema.granularity_spec.intervals:
            raise SpecError(
                "spec.dataSchema.granularitySpec.intervals", schema.get("granularitySpec", {}).get("intervals"),
                "a streaming supervisor takes every time chunk its messages fall in; remove intervals",
            )
        return parsed


def _iso_interval(lo: Optional[int], hi: Optional[int]) -> str:
    from druidflow.intervals import ETERNITY, format_instant

    lo = ETERNITY.start if lo is None else lo
    hi = ETERNITY.end if hi is None else hi
    return f"{format_instant(lo)}/{format_instant(hi)}"


def _supervisor_path(exc: SpecError) -> SpecError:
    """An index-task error, renamed to where the field lives in the supervisor spec."""
    path = exc.path
    for old, new in (
        ("spec.ioConfig.inputFormat", "spec.ioConfig.inputFormat"),
        ("spec.ioConfig.inputSource", "spec.ioConfig"),
        ("spec.tuningConfig.partitionsSpec.maxRowsPerSegment", "spec.tuningConfig.maxRowsPerSegment"),
        ("spec.tuningConfig.partitionsSpec.maxTotalRows", "spec.tuningConfig.maxTotalRows"),
        ("context.taskLockType", "context"),
    ):
        if path == old or path.startswith(old + "."):
            path = new + path[len(old):]
            break
    return SpecError(path, exc.value, exc.reason)


def normalise_supervisor(data: Any) -> Any:
    """The modern shape of a supervisor spec: the legacy top-level form wrapped into ``spec``, a classic
    ``dataSchema.parser`` turned into ``timestampSpec``/``dimensionsSpec`` plus ``ioConfig.inputFormat``."""
    data = load_json(data, "")
    if not isinstance(data, dict):
        raise SpecError("", data, "a supervisor spec is a JSON object with type 'kafka'")
    data = drop_nulls(dict(data))
    if data.get("type", "kafka") != "kafka":
        raise SpecError("type", data.get("type"), "Druidflow supervises Kafka topics only (type 'kafka')")
    legacy = {k: data.pop(k) for k in ("dataSchema", "ioConfig", "tuningConfig") if k in data}
    if legacy:
        if "spec" in data:
            raise SpecError(next(iter(legacy)), "...", "give the spec either inside 'spec' or at the top level, not both")
        data["spec"] = legacy
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise SpecError("spec", spec, "a supervisor spec needs spec: {dataSchema, ioConfig, tuningConfig}")
    spec = dict(spec)
    schema = spec.get("dataSchema")
    if not isinstance(schema, dict):
        raise SpecError("spec.dataSchema", schema, "field required (an object)")
    schema = dict(schema)
    ds = schema.get("dataSource")
    if not isinstance(ds, str):
        raise SpecError("spec.dataSchema.dataSource", ds, "field required (a string)")
    check_druid_id(ds, "dataSource")
    parser = schema.pop("parser", None)
    io = dict(spec.get("ioConfig") or {})
    if parser is not None:
        for name in ("timestampSpec", "dimensionsSpec"):
            if name in schema:
                raise SpecError(f"spec.dataSchema.{name}", schema[name], "given both here and in dataSchema.parser.parseSpec; use one form")
        if io.get("inputFormat") is not None:
            raise SpecError("spec.ioConfig.inputFormat", io["inputFormat"], "cannot be combined with dataSchema.parser; use one form")
        try:
            timestamp_spec, dimensions_spec, input_format = _from_parser(parser, "dataSchema.parser")
        except SpecError as exc:
            raise SpecError(f"spec.{exc.path}", exc.value, exc.reason) from None
        if input_format is None:
            raise SpecError("spec.dataSchema.parser.parseSpec.format", "timeAndDims", "a Kafka message needs a json, csv or tsv format")
        schema["timestampSpec"] = timestamp_spec.model_dump()
        schema["dimensionsSpec"] = dimensions_spec.model_dump()
        io["inputFormat"] = input_format.model_dump()
    if io.get("inputFormat") is None:
        raise SpecError("spec.ioConfig.inputFormat", None, "field required: how to parse each message (e.g. {\"type\": \"json\"})")
    fmt = io["inputFormat"]
    if isinstance(fmt, dict) and fmt.get("type") in ("kafka", "parquet", "avro_stream", "protobuf"):
        raise SpecError("spec.ioConfig.inputFormat.type", fmt.get("type"), "a Kafka message is read as json, csv or tsv here")
    spec["dataSchema"], spec["ioConfig"] = schema, io
    data["spec"] = spec
    return data


def parse_supervisor_spec(data: Any) -> KafkaSupervisorSpec:
    """Validate a Kafka supervisor spec (dict or JSON text); a SpecError names the field path and value."""
    if isinstance(data, KafkaSupervisorSpec):
        return data
    return KafkaSupervisorSpec.parse(data)
