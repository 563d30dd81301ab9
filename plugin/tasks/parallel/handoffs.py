"""What the phases of ``index_parallel`` hand each other (frozen models dumping to JSON, Airflow's XCom), and the
task settings every phase reads."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity
from druidflow.ingest.stats import RowStats
from druidflow.inputs.splits import InputSplit
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import IndexTask
from druidflow.tasks.index import ChunkPlan, IndexPlan

PARTIALS = "_partials"
DEFAULT_MAX_RETRY = 3  # Druid's maxRetry
#: The parallel-only tuning fields this engine honours (the others stay refused unless at their default).
HONOURED = frozenset({"max_num_concurrent_sub_tasks", "max_retry", "split_hint_spec", "total_num_merge_tasks"})


class ParallelPlan(DruidModel):
    """The splits, and — once known — the chunks with their versions and shards."""

    task_id: str
    data_source: str
    splits: list[InputSplit]
    chunks: list[ChunkPlan] = Field(default_factory=list)
    chunks_known: bool = False
    scan: bool = False  # a scan phase must run before the partials (statistics or intervals needed)
    row_stats: RowStats = Field(default_factory=RowStats)  # the scan phase's counters (determinePartitions)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def scan_splits(self) -> list[InputSplit]:
        return self.splits if self.scan else []


class SplitScan(DruidModel):
    """One split's statistics: chunks with rows, a distinct-rows sketch (hashed) or value counts (range) per chunk."""

    split: int
    chunks: list[int] = Field(default_factory=list)
    sketches: dict[str, str] = Field(default_factory=dict)
    value_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


class PartialFile(DruidModel):
    chunk_start: int
    partition_num: int
    load_spec: dict[str, Any]
    rows: int


class PartialResult(DruidModel):
    """What one split's (successful) partial attempt wrote."""

    task_id: str
    split: int
    attempt: str
    files: list[PartialFile] = Field(default_factory=list)
    dimensions: list[dict[str, Any]] = Field(default_factory=list)
    multi_value: list[str] = Field(default_factory=list)
    #: (chunk start, partition number, row position in the split of its first row) of every partition with rows
    arrivals: list[tuple[int, int, int]] = Field(default_factory=list)
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


class MergeUnit(DruidModel):
    """One merge sub-task: one (chunk, partition) — or one whole chunk for dynamic partitioning — and the partial
    files to merge for it; several of them when ``totalNumMergeTasks`` caps the number of merge sub-tasks."""

    task_id: str
    chunks: list[ChunkPlan]  # each with this unit's one shard of it, or none (dynamic)
    files: list[list[dict[str, Any]]] = Field(default_factory=list)  # per entry of ``chunks``
    numbering: dict[str, dict[str, int]] = Field(default_factory=dict)  # chunk start -> hash bucket -> partitionNum
    dimensions: list[dict[str, Any]] = Field(default_factory=list)
    multi_value: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return ",".join(
            f"{c.interval}" + (f"#{c.shards[0].partition_num}/{c.shards[0].num_partitions}" if c.shards else "")
            for c in self.chunks
        )


class FinalPlan(IndexPlan):
    """What publish needs: the chunks written, and the partial phase's counters for the report."""

    build_row_stats: RowStats = Field(default_factory=RowStats)
    build_unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


# --------------------------------------------------------------------------------------- task settings


def partitions_spec(task: IndexTask) -> Any:
    return task.spec.tuning_config.effective_partitions_spec


def segment_granularity(task: IndexTask) -> Granularity:
    """The segment granularity that buckets chunks found in the data (an arbitrary granularitySpec has none, and
    needs intervals, so its chunks are never found from the data)."""
    gran = task.spec.data_schema.granularity_spec.segment_granularity
    if gran is None:
        raise SpecError("spec.dataSchema.granularitySpec.intervals", None, "an arbitrary granularitySpec needs intervals")
    return gran


def concurrency(task: IndexTask) -> int:
    return task.spec.tuning_config.max_num_concurrent_sub_tasks or 1


def max_retry(task: IndexTask) -> int:
    value = task.spec.tuning_config.max_retry
    return DEFAULT_MAX_RETRY if value is None else value


def capped_events(task: IndexTask, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last ``maxSavedParseExceptions`` of the sub-tasks' saved parse exceptions."""
    keep = task.spec.tuning_config.max_saved_parse_exceptions
    return events[-keep:] if keep else []


def partial_prefix(task_id: str) -> str:
    return f"{PARTIALS}/{task_id.replace('/', '_')}"
