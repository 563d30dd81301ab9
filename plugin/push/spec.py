"""The realtime task spec of a pushed dataSource (Druid's ``index_realtime`` shape) and the index task of a handoff.

    {"type": "index_realtime", "spec": {
        "dataSchema": {...},                                   # as in the index task, without intervals
        "ioConfig": {"type": "realtime", "firehose": {"type": "receiver", "serviceName": "...", "bufferSize": 100000}},
        "tuningConfig": {"type": "realtime", "windowPeriod": "PT10M", "intermediatePersistPeriod": "PT10M",
                         "maxRowsInMemory": 1000000, "maxRowsPerSegment": 5000000, "handoffDelay": "PT0S",
                         "rejectionPolicy": {"type": "serverTime"}}},
     "context": {"priority": 75}}

The bare ``spec`` object (``dataSchema``/``ioConfig``/``tuningConfig``) is accepted too. The dataSchema is validated
by building the index task a handoff runs, so its errors name the same ``spec.dataSchema...`` paths as the index
task's. Druid realtime fields that only made sense for a JVM realtime node (``basePersistDirectory``, ``plumber``,
``shardSpec``, ``versioningPolicy``...) are refused as unknown rather than accepted and ignored.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval, Period
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import IndexTask, parse_task

REALTIME_PRIORITY = 75
SPOOL_FILE_GLOB = "*.json"
_CONTEXT_KEYS = ("priority", "taskLockTimeout")


def _fixed_period(value: Any, name: str) -> str:
    period = Period.parse(value, name) if isinstance(value, str) else None
    if period is None:
        raise SpecError(name, value, "an ISO-8601 period such as PT10M")
    if period.calendar_months:
        raise SpecError(name, value, "must be a fixed length (no months or years)")
    return value


class ReceiverFirehose(DruidModel):
    """Druid's EventReceiverFirehose: ``serviceName`` names the push-events endpoint (default: the dataSource);
    ``bufferSize`` is the most events the spool holds for the dataSource before pushes get 429."""

    type: Literal["receiver"] = "receiver"
    service_name: Optional[str] = None
    buffer_size: int = Field(default=100_000, ge=1)


class RealtimeIOConfig(DruidModel):
    type: Literal["realtime"] = "realtime"
    firehose: ReceiverFirehose = Field(default_factory=ReceiverFirehose)


class RejectionPolicy(DruidModel):
    """``serverTime`` (Druid's default): events more than windowPeriod away from the receiving server's clock are
    thrown away. ``none``: every event is accepted; a bucket is then handed off only when the runner drains."""

    type: Literal["serverTime", "none"] = "serverTime"


class RealtimeTuningConfig(DruidModel):
    type: Literal["realtime"] = "realtime"
    max_rows_in_memory: int = Field(default=1_000_000, ge=1)
    max_rows_per_segment: int = Field(default=5_000_000, ge=1)
    intermediate_persist_period: str = "PT10M"
    window_period: str = "PT10M"
    handoff_delay: str = "PT0S"
    rejection_policy: RejectionPolicy = Field(default_factory=RejectionPolicy)

    @field_validator("intermediate_persist_period", "window_period", "handoff_delay")
    @classmethod
    def _period(cls, v: Any, info: Any) -> str:
        return _fixed_period(v, info.field_name)

    @property
    def window_ms(self) -> int:
        return Period.parse(self.window_period).fixed_ms

    @property
    def handoff_delay_ms(self) -> int:
        return Period.parse(self.handoff_delay).fixed_ms

    @property
    def persist_period_ms(self) -> int:
        return max(Period.parse(self.intermediate_persist_period).fixed_ms, 1)


class RealtimeIngestionSpec(DruidModel):
    data_schema: dict[str, Any]
    io_config: RealtimeIOConfig = Field(default_factory=RealtimeIOConfig)
    tuning_config: RealtimeTuningConfig = Field(default_factory=RealtimeTuningConfig)


class RealtimeTask(DruidModel):
    """A pushed dataSource's realtime spec; :meth:`index_task` is the index task one handoff runs."""

    type: Literal["index_realtime"] = "index_realtime"
    id: Optional[str] = None
    resource: Optional[dict[str, Any]] = None
    context: dict[str, Any] = Field(default_factory=dict)
    spec: RealtimeIngestionSpec

    @field_validator("context")
    @classmethod
    def _context(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key not in _CONTEXT_KEYS:
                raise SpecError(f"context.{key}", v[key], f"a realtime task's context takes only {', '.join(_CONTEXT_KEYS)}")
        return v

    @classmethod
    def load(cls, data: Any, path: str = "") -> RealtimeTask:
        """Parse a realtime task (or its bare ``spec``) and validate its dataSchema as the index task would."""
        if isinstance(data, dict) and "dataSchema" in data and "spec" not in data:
            data = {"type": "index_realtime", "spec": data}
        task = cls.parse(data, path)
        if "intervals" in (task.spec.data_schema.get("granularitySpec") or {}):
            raise SpecError("spec.dataSchema.granularitySpec.intervals", task.spec.data_schema["granularitySpec"]["intervals"],
                            "a realtime task has no intervals: its windows follow the clock")
        task.template  # noqa: B018 - validates the dataSchema now, with its field paths
        return task

    @property
    def data_source(self) -> str:
        return self.template.data_source

    @property
    def service_name(self) -> str:
        return self.spec.io_config.firehose.service_name or self.data_source

    @property
    def tuning(self) -> RealtimeTuningConfig:
        return self.spec.tuning_config

    @property
    def priority(self) -> int:
        return int(self.context.get("priority", REALTIME_PRIORITY))

    @cached_property
    def template(self) -> IndexTask:
        return self.index_task(None, Path("/nonexistent"), "index_realtime_template")

    @property
    def segment_granularity(self) -> Any:
        return self.template.spec.data_schema.granularity_spec.segment_granularity

    @property
    def timestamp_spec(self) -> Any:
        return self.template.spec.data_schema.timestamp_spec

    def index_task(self, bucket: Optional[Interval], spool_dir: Path, task_id: str) -> IndexTask:
        """The appending index task that indexes one bucket's spooled events (JSON lines under ``spool_dir``) at
        the realtime priority with an APPEND lock."""
        schema = dict(self.spec.data_schema)
        if bucket is not None:
            schema["granularitySpec"] = {**(schema.get("granularitySpec") or {}), "intervals": [str(bucket)]}
        source = {"type": "local", "baseDir": str(spool_dir), "filter": SPOOL_FILE_GLOB}
        if "parser" in schema:
            parse_spec = (schema.get("parser") or {}).get("parseSpec") or {}
            if str(parse_spec.get("format", "json")).lower() != "json":
                raise SpecError("spec.dataSchema.parser.parseSpec.format", parse_spec.get("format"), "pushed events are JSON")
            io = {"type": "index", "firehose": source, "appendToExisting": True}
        else:
            io = {"type": "index", "inputSource": source, "inputFormat": {"type": "json"}, "appendToExisting": True}
        tuning = self.tuning
        context = {"priority": self.priority, "useConcurrentLocks": True}
        if "taskLockTimeout" in self.context:
            context["taskLockTimeout"] = self.context["taskLockTimeout"]
        raw = {
            "type": "index",
            "id": task_id,
            "spec": {
                "dataSchema": schema,
                "ioConfig": io,
                "tuningConfig": {
                    "type": "index",
                    "maxRowsInMemory": tuning.max_rows_in_memory,
                    "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": tuning.max_rows_per_segment},
                },
            },
            "context": context,
        }
        task = parse_task(raw)
        assert isinstance(task, IndexTask)
        return task
