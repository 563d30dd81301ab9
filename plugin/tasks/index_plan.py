"""The hand-offs between the ``index`` task's steps: the plan, its build units, a build's result and the report.

Each is a frozen model that dumps to JSON, so the Airflow operators can run the steps in different processes and
pass these descriptors through XCom.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from druidflow.ingest.partitioning import ShardPlan
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel


class ChunkPlan(DruidModel):
    """A time chunk the task writes, the version its overwrite segments get (from the task's lock), and its
    shards: none for dynamic partitioning (segments cut by size), else every hashed or range shard."""

    interval: Interval
    version: str
    shards: list[ShardPlan] = Field(default_factory=list)


class BuildUnit(DruidModel):
    """One independently buildable piece of the task: a time chunk, or one shard of it (one mapped Airflow task
    each). ``chunks[i].shards`` lists only the shards this unit builds."""

    task_id: str
    chunks: list[ChunkPlan]
    all_chunks: list[Interval] = Field(default_factory=list)  # every chunk of the task (what is not thrown away)
    primary: bool = True  # the one unit that counts rows no unit owns (thrown away, unparseable)

    @property
    def label(self) -> str:
        parts = []
        for c in self.chunks:
            shard = f"#{c.shards[0].partition_num}/{c.shards[0].num_partitions}" if len(c.shards) == 1 else ""
            parts.append(f"{c.interval}{shard}")
        return ",".join(parts)


class IndexPlan(DruidModel):
    """What determine-partitions decided: the chunks, their versions and the build units."""

    task_id: str
    data_source: str
    chunks: list[ChunkPlan]
    build_units: list[BuildUnit]
    determined_intervals: bool = False
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)


class BuildResult(DruidModel):
    """The segments one build unit pushed to deep storage (not yet published), with its row counters."""

    task_id: str
    segments: list[DataSegment]
    row_stats: RowStats = Field(default_factory=RowStats)
    unparseable_events: list[dict[str, Any]] = Field(default_factory=list)
    persists: int = 0


class IndexReport(DruidModel):
    """The outcome of a published task: its segments and Druid's ``ingestionStatsAndErrors`` report."""

    task_id: str
    data_source: str
    status: str
    segments: list[DataSegment]
    reports: dict[str, Any]
