"""Automatic compaction settings: one :class:`DataSourceCompactionConfig` per dataSource, and the settings around them.

The JSON is Druid's own (what ``GET /druid/coordinator/v1/config/compaction`` returns), so a Druid user can paste
theirs::

    {
      "compactionConfigs": [
        {"dataSource": "wikipedia", "skipOffsetFromLatest": "PT2H", "inputSegmentSizeBytes": 500000000,
         "tuningConfig": {"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 5000000}},
         "granularitySpec": {"segmentGranularity": "DAY"}}
      ],
      "maxCompactionTaskSlots": 4,
      "compactionPolicy": {"type": "newestSegmentFirst"}
    }

A bare list of per-dataSource configs is accepted too. Unknown keys are errors naming the field
(``compactionConfigs[0].skipOfsetFromLatest``), so a typo never silently changes what gets compacted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from druidflow.aggregators import Aggregator
from druidflow.compaction.state import WantedState, wanted_state
from druidflow.exceptions import SpecError
from druidflow.intervals import Period
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.tasks import CompactionGranularitySpec
from druidflow.specs.tuning import IndexTuningConfig
from druidflow.specs.validation import SpecModel, check_druid_id, drop_nulls, get_field, load_json, pop_field
from druidflow.transforms import TransformSpec

#: Druid's default ``inputSegmentSizeBytes`` since May 2022 (effectively no limit).
DEFAULT_INPUT_SEGMENT_SIZE_BYTES = 100_000_000_000_000
#: Why ``maxInputSegmentBytesPerTask`` is refused (docs/compaction.md has the history).
MAX_INPUT_SEGMENT_BYTES_PER_TASK = (
    "not a field of Druid's compaction config: it is the bytes of input segments one parallel sub-task reads, set in "
    "an index_parallel task's tuningConfig.splitHintSpec {\"type\": \"segments\", \"maxInputSegmentBytesPerTask\": N} "
    "with a druid input source; a compaction builds one unit per time chunk and has no sub-tasks to size. To skip "
    "time chunks whose segments are larger than this many bytes, use inputSegmentSizeBytes"
)
#: Druid's default ``taskPriority`` (``Tasks.DEFAULT_MERGE_TASK_PRIORITY``).
DEFAULT_TASK_PRIORITY = 25
DEFAULT_MAX_COMPACTION_TASK_SLOTS = 4
POLICIES = ("newestSegmentFirst", "mostFragmentedFirst")


class CompactionIOConfigSettings(SpecModel):
    """``ioConfig`` of an auto-compaction config: only ``dropExisting`` (tombstones for chunks left empty)."""

    drop_existing: bool = False


class DataSourceCompactionConfig(SpecModel):
    """Druid's ``DataSourceCompactionConfig``: how to compact one dataSource automatically.

    ``maxRowsPerSegment`` (deprecated in Druid) is folded into ``tuningConfig.partitionsSpec`` (dynamic).
    ``skipOffsetFromLatest`` is measured back from the end of the newest segment, not from now.
    """

    data_source: str
    task_priority: int = DEFAULT_TASK_PRIORITY
    input_segment_size_bytes: int = Field(default=DEFAULT_INPUT_SEGMENT_SIZE_BYTES, gt=0)
    skip_offset_from_latest: str = "P1D"
    tuning_config: Optional[IndexTuningConfig] = None
    task_context: dict[str, Any] = Field(default_factory=dict)
    granularity_spec: Optional[CompactionGranularitySpec] = None
    dimensions_spec: Optional[DimensionsSpec] = None
    metrics_spec: Optional[list[Aggregator]] = None
    transform_spec: Optional[TransformSpec] = None
    io_config: Optional[CompactionIOConfigSettings] = None
    engine: Optional[Literal["native"]] = None

    @model_validator(mode="before")
    @classmethod
    def _fold_max_rows(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        if get_field(data, "maxInputSegmentBytesPerTask") is not None:
            raise SpecError("maxInputSegmentBytesPerTask", get_field(data, "maxInputSegmentBytesPerTask"), MAX_INPUT_SEGMENT_BYTES_PER_TASK)
        max_rows = pop_field(data, "maxRowsPerSegment")
        if max_rows is not None:
            tuning = dict(get_field(data, "tuningConfig") or {})
            if get_field(tuning, "partitionsSpec") is not None:
                raise SpecError("maxRowsPerSegment", max_rows, "give it in tuningConfig.partitionsSpec instead, not both")
            tuning["partitionsSpec"] = {"type": "dynamic", "maxRowsPerSegment": max_rows}
            pop_field(data, "tuningConfig")
            data["tuningConfig"] = tuning
        return data

    @field_validator("data_source")
    @classmethod
    def _ds(cls, v: str) -> str:
        return check_druid_id(v, "dataSource")

    @field_validator("skip_offset_from_latest")
    @classmethod
    def _period(cls, v: str) -> str:
        Period.parse(v)
        return v

    @property
    def skip_offset(self) -> Period:
        return Period.parse(self.skip_offset_from_latest)

    @property
    def wanted(self) -> WantedState:
        """The compaction state a chunk must have to count as compacted under this config."""
        return wanted_state(
            tuning_config=self.tuning_config,
            granularity_spec=self.granularity_spec,
            dimensions_spec=self.dimensions_spec,
            metrics_spec=self.metrics_spec,
            transform_spec=self.transform_spec,
        )

    def compact_task(self, task_id: str, interval: Any, sha256: str) -> dict[str, Any]:
        """The ``compact`` task JSON for one chosen chunk (Druid's ``CompactSegments`` duty builds the same)."""
        spec: dict[str, Any] = {
            "type": "compact",
            "id": task_id,
            "dataSource": self.data_source,
            "ioConfig": {
                "type": "compact",
                "inputSpec": {"type": "interval", "interval": str(interval), "sha256OfSortedSegmentIds": sha256},
                "dropExisting": bool(self.io_config and self.io_config.drop_existing),
            },
            "context": {**self.task_context, "priority": self.task_priority, "storeCompactionState": True},
        }
        for key, value in (
            ("granularitySpec", self.granularity_spec),
            ("dimensionsSpec", self.dimensions_spec),
            ("transformSpec", self.transform_spec),
            ("tuningConfig", self.tuning_config),
        ):
            if value is not None:
                spec[key] = value.model_dump()
        if self.metrics_spec is not None:
            spec["metricsSpec"] = [m.model_dump() for m in self.metrics_spec]
        return spec


class CompactionPolicy(SpecModel):
    """In which order eligible chunks get the free slots: ``newestSegmentFirst`` (Druid's default) or
    ``mostFragmentedFirst`` (the chunks with the most small segments first)."""

    type: Literal["newestSegmentFirst", "mostFragmentedFirst"] = "newestSegmentFirst"


class AutoCompactionSettings(SpecModel):
    """Every dataSource's config plus the global bound on concurrent compactions and the ordering policy.

    ``maxCompactionTaskSlots`` bounds the compactions running at once across all runs of the scheduler (Druid's
    setting of the same name); the slots of compactions still running from earlier runs are taken into account.
    """

    compaction_configs: list[DataSourceCompactionConfig] = Field(default_factory=list)
    max_compaction_task_slots: int = Field(default=DEFAULT_MAX_COMPACTION_TASK_SLOTS, ge=0)
    compaction_policy: CompactionPolicy = Field(default_factory=CompactionPolicy)
    compaction_task_slot_ratio: Optional[float] = None  # Druid's; refused: there are no task slots to take a ratio of

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"compactionConfigs": data}
        return drop_nulls(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _unique(self) -> AutoCompactionSettings:
        if self.compaction_task_slot_ratio is not None:
            raise SpecError(
                "compactionTaskSlotRatio",
                self.compaction_task_slot_ratio,
                "is not supported: Druidflow has no task slots to take a ratio of; bound concurrent compactions with "
                "maxCompactionTaskSlots (and Airflow pools) and remove it",
            )
        seen: set[str] = set()
        for i, cfg in enumerate(self.compaction_configs):
            if cfg.data_source in seen:
                raise SpecError(f"compactionConfigs[{i}].dataSource", cfg.data_source, "configured twice")
            seen.add(cfg.data_source)
        return self

    def for_data_source(self, data_source: str) -> Optional[DataSourceCompactionConfig]:
        return next((c for c in self.compaction_configs if c.data_source == data_source), None)


def load_settings(source: Any) -> AutoCompactionSettings:
    """Settings from a dict/list, JSON text, or a path to a JSON file (``str`` ending in ``.json`` or a ``Path``)."""
    if isinstance(source, Path) or (isinstance(source, str) and source.strip().endswith(".json") and not source.lstrip().startswith(("{", "["))):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SpecError("config_file", str(path), f"cannot read the auto-compaction config file: {exc}") from None
        return AutoCompactionSettings.parse(load_json(text, str(path)))
    if isinstance(source, (str, bytes)):
        return AutoCompactionSettings.parse(load_json(source))
    return AutoCompactionSettings.parse(json.loads(json.dumps(source)) if source is not None else {})
