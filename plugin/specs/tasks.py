"""The task envelopes Druidflow accepts, and :func:`parse_task`, which validates one before any work starts.

Types: ``index`` (and ``index_parallel``, the same model), ``compact``, ``kill``, ``merge``, ``append``,
``same_interval_merge`` and ``convert_segment`` (legacy alias ``version_converter``). Every task has
:attr:`~BaseTask.task_type`, :attr:`~BaseTask.data_source`, :attr:`~BaseTask.task_id` (the given ``id``, or one generated
at parse time as Druid >= 0.17 does: ``<type>_<dataSource>_<8 random letters a-p>[_<start>_<end>]_<now>``, so it
stays stable afterwards), :attr:`~BaseTask.group_id`, :attr:`~BaseTask.priority`, :attr:`~BaseTask.lock_timeout_ms`,
:attr:`~BaseTask.lock_type` and :attr:`~BaseTask.context`.

Every input form a task type has (a compaction's ``interval`` / ``segments`` / ``ioConfig.inputSpec``, its
``dimensions`` / ``dimensionsSpec``, its ``segmentGranularity`` / ``granularitySpec``) is normalised at parse
time into one shape, as the index task's classic form is (see :mod:`druidflow.specs.ingestion`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BeforeValidator, Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.intervals import parse_instant
from druidflow.specs.compact_task import (
    CompactionGranularitySpec,
    CompactionInputSpec,
    CompactionIntervalSpec,
    CompactionIOConfig,
    CompactTask,
    SpecificSegmentsSpec,
    segment_id_interval,
)
from druidflow.specs.hadoop_task import HadoopIndexTask
from druidflow.specs.ingestion import IndexIngestionSpec, IngestionMode
from druidflow.specs.limits import check_spec_shape
from druidflow.specs.segment_tasks import AppendTask, ConvertSegmentTask, MergeTask, SameIntervalMergeTask
from druidflow.specs.task_base import (
    CONVERTED_VERSION_SUFFIX,
    DEFAULT_LOCK_TIMEOUT_MS,
    DEFAULT_PRIORITIES,
    LOCK_TYPES,
    BaseTask,
    IntervalTask,
    TaskResource,
    generate_task_id,
    random_id_part,
)
from druidflow.specs.validation import get_field, load_json

# The task models are defined by concept in the modules imported above; this module is where callers get them.
__all__ = [
    "CONVERTED_VERSION_SUFFIX", "DEFAULT_LOCK_TIMEOUT_MS", "DEFAULT_PRIORITIES", "LOCK_TYPES", "TASK_TYPES",
    "AppendTask", "BaseTask", "CompactTask", "HadoopIndexTask", "CompactionGranularitySpec", "CompactionIOConfig", "CompactionInputSpec",
    "CompactionIntervalSpec", "ConvertSegmentTask", "IndexTask", "KillTask", "MergeTask", "SameIntervalMergeTask",
    "SpecificSegmentsSpec", "Task", "TaskResource", "TaskType", "generate_task_id", "parse_index_task", "parse_task", "random_id_part",
    "segment_id_interval",
]


# ----------------------------------------------------------------------------------------------------- index


class IndexTask(BaseTask):
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
    def _raw_data_source(cls, data: dict[str, Any]) -> Any:
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


# ------------------------------------------------------------------------------------------------------ kill


class KillTask(IntervalTask):
    """A ``kill`` task (Druid §4): permanently delete the *unused* segments lying entirely inside ``interval``.

    ``markAsUnused`` (Druid 0.22 until 2024) first marks the used segments of the interval unused; it cannot be
    combined with ``limit`` or ``versions``. Context ``dryRun: true`` only reports what would be deleted.
    """

    type: Literal["kill"] = "kill"
    versions: Optional[list[str]] = None
    batch_size: int = Field(default=100, gt=0)
    limit: Optional[int] = Field(default=None, gt=0)
    max_used_status_last_updated_time: Optional[str] = None
    mark_as_unused: bool = False

    interval_role: ClassVar[str] = "the kill interval"

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


# --------------------------------------------------------------------------------------------------- parsing

Task = Union[IndexTask, HadoopIndexTask, CompactTask, KillTask, MergeTask, AppendTask, SameIntervalMergeTask, ConvertSegmentTask]
"""Any task Druidflow accepts."""

_TASK_CLASSES = (IndexTask, HadoopIndexTask, CompactTask, KillTask, MergeTask, AppendTask, SameIntervalMergeTask, ConvertSegmentTask)

TASK_TYPES: dict[str, type[Task]] = {
    "index": IndexTask,
    "index_parallel": IndexTask,
    "index_hadoop": HadoopIndexTask,
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
    if isinstance(data, _TASK_CLASSES):
        return data
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


def parse_index_task(data: Any, path: str = "") -> IndexTask:
    """:func:`parse_task` for a spec that must be an ``index`` or ``index_parallel`` task (the re-indexing specs
    compaction and merges build)."""
    task = parse_task(data, path)
    if not isinstance(task, IndexTask):
        raise SpecError(f"{path}.type" if path else "type", task.type, "expected an index or index_parallel task")
    return task


TaskType = Annotated[Task, BeforeValidator(lambda v: parse_task(v) if isinstance(v, (dict, str)) else v)]
"""A pydantic field type holding any task, validated by :func:`parse_task`."""
