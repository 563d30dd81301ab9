"""The ``index`` task, as steps with explicit, serialisable hand-offs.

    submit ─▶ acquire_locks ─▶ determine_partitions ─▶ build (one call per BuildUnit) ─▶ publish ─▶ release

Each step is a plain function of its inputs plus the :class:`Runtime`, and each hand-off (``IndexTask``,
``IndexPlan``, ``BuildUnit``, ``BuildResult``, ``IndexReport``) is a frozen model that dumps to JSON, so the
Airflow operators can run the steps in different processes and pass descriptors through XCom. ``run_local``
chains them in one process (the CLI and the benchmark).

This module holds the steps and the task definition; the hand-offs are in :mod:`~druidflow.tasks.index_plan`,
determine-partitions in :mod:`~druidflow.tasks.index_determine`, the build in :mod:`~druidflow.tasks.index_build`
(rows to buckets: :mod:`~druidflow.tasks.bucket_assigner`; buckets to pushed segment files:
:mod:`~druidflow.tasks.segment_sink`), all importable from here.

Druid's rules kept here: intervals expand outward to whole segment buckets and rows outside are thrown away;
the determine pass runs exactly when intervals are missing (or hashed partitioning needs row counts);
overwrite segments take the version of the task's lock on their chunk, appended ones the version of the
chunk's existing segments; publish is one metadata transaction inside the lock critical section, all or
nothing, and publishing the same segments again is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

from druidflow.exceptions import SpecError
from druidflow.ingest.stats import RowStats
from druidflow.ingest.task_input import druid_sources, file_sources
from druidflow.intervals import Interval, condense
from druidflow.segments.shardspec import with_core_partitions
from druidflow.specs.tasks import IndexTask
from druidflow.specs.unknown_keys import spec_warnings
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import protocol
from druidflow.tasks.index_build import build, build_units, fixed_step
from druidflow.tasks.index_determine import chunk_versions, determine_partitions
from druidflow.tasks.index_input import list_delimiter, parse_handler, string_dimensions
from druidflow.tasks.index_plan import BuildResult, BuildUnit, ChunkPlan, IndexPlan, IndexReport
from druidflow.tasks.publisher import ChunkVersion, PublishOutcome, PublishPlan
from druidflow.tasks.report import ingestion_report, no_valid_rows_message
from druidflow.tasks.runtime import Runtime
from druidflow.tasks.segment_sink import LOCK_CHECK_SECONDS, SEGMENT_FILE, SegmentSink, push_key

__all__ = [
    "DEFINITION",
    "LOCK_CHECK_SECONDS",
    "OVERSHADOWED_BY_REINDEX",
    "SEGMENT_FILE",
    "BuildResult",
    "BuildUnit",
    "ChunkPlan",
    "IndexDefinition",
    "IndexPlan",
    "IndexReport",
    "SegmentSink",
    "acquire_locks",
    "build",
    "build_units",
    "check_local_input",
    "check_writable",
    "chunk_versions",
    "determine_partitions",
    "fail",
    "fixed_step",
    "heartbeat",
    "index_report",
    "list_delimiter",
    "parse_handler",
    "publish",
    "publish_plan",
    "push_key",
    "release",
    "run",
    "run_local",
    "string_dimensions",
    "submit",
]

log = logging.getLogger(__name__)

OVERSHADOWED_BY_REINDEX = "overshadowed-by-reindex"

# ---------------------------------------------------------------------------------------------------- steps


def submit(spec: Any, rt: Runtime) -> IndexTask:
    """Parse and validate an index task (raising :class:`SpecError` before any work) and record it as RUNNING."""
    return protocol.submit(DEFINITION.parse_task(spec, ""), rt, DEFINITION)


def check_local_input(task: IndexTask) -> None:
    """A local input that names no readable file fails here, once, not in every build that would read it."""
    from druidflow.inputs.sources import list_objects

    for source in file_sources(task.spec.io_config.input_source):
        if source.type == "local":
            list_objects(source)


def check_writable(task: IndexTask, refuse: bool = True) -> None:
    if refuse:
        refuse_non_defaults(task)
    own = [s for s in druid_sources(task.spec.io_config.input_source) if s.data_source == task.data_source]
    source = next((s for s in own if s.segments is None), None)
    if task.lock_type == "REPLACE" and source is not None:
        # Rows appended concurrently would be both re-read and upgraded into the new version: counted twice.
        raise SpecError(
            "spec.ioConfig.inputSource.interval",
            str(source.interval),
            "re-indexing an interval of a dataSource's own segments under useConcurrentLocks would read rows that "
            "are appended meanwhile and also upgrade them; name the segments (inputSource.segments) or use a compact task",
        )
    index_spec = task.spec.tuning_config.index_spec
    for field_name, value in (("dimensionCompression", index_spec.dimension_compression), ("metricCompression", index_spec.metric_compression)):
        if str(value).lower() == "lzf":
            raise SpecError(
                f"spec.tuningConfig.indexSpec.{field_name}", value, "lzf has no Parquet codec; use lz4, zstd or uncompressed"
            )


def acquire_locks(task: IndexTask, rt: Runtime, intervals: Optional[Sequence[Interval]] = None, *, timeout_s: float = 0) -> list[Any]:
    """Lock the task's (condensed) chunk intervals, all or none (see :func:`druidflow.tasks.protocol.acquire_locks`).

    Raises :class:`LockUnavailableError` (retry later) or :class:`LockRevokedError` (give up).
    """
    if intervals is None:
        return protocol.acquire_locks(task, rt, DEFINITION, timeout_s=timeout_s)
    return protocol.acquire_locks(task, rt, requests=protocol.lock_requests_for(task, intervals), timeout_s=timeout_s)


def publish(task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult], rt: Runtime) -> IndexReport:
    """Publish every built segment in one metadata transaction, inside the lock critical section.

    Overwrite segments get their chunk's core partition count filled in (partitions 0..N-1), so a chunk switches
    to the new version only once all of them are published — which this single transaction guarantees. With
    ``dropExisting``, every chunk of the intervals that got no row but holds used data gets a tombstone. Under
    concurrent locks, an APPEND-locked publish also copies its segments into newer versions replaced
    meanwhile, and a REPLACE-locked one copies what was appended under its lock (:mod:`druidflow.metadata.upgrade`).

    Publishing the same segments again is a no-op, and so is publishing segment ids that are already published
    (a build re-run after its publish): the new attempt's files are deleted. Files of a publish that definitely
    failed (revoked lock, conflict) are deleted too; an error in the commit itself leaves them alone.
    """
    return protocol.publish(task, plan, results, rt, DEFINITION)


def publish_plan(task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult]) -> PublishPlan:
    """The segments of every build with their chunks' core partition counts; overwriting marks what they
    overshadow unused (``overshadowed-by-reindex``), so that kill can find it; ``dropExisting`` asks for tombstones."""
    segments = [s for r in results for s in r.segments]
    append = task.spec.io_config.append_to_existing
    if not append:
        # Dynamic and hashed segments learn their chunk's core partition count only now (range ones knew it).
        per_chunk: dict[Interval, int] = {}
        for s in segments:
            per_chunk[s.interval] = per_chunk.get(s.interval, 0) + 1
        segments = [
            s.model_copy(update={"shard_spec": with_core_partitions(s.shard_spec, per_chunk[s.interval])})
            if s.shard_spec.type in ("numbered", "hashed")
            else s
            for s in segments
        ]
    drop = [ChunkVersion(interval=c.interval, version=c.version) for c in plan.chunks] if task.spec.io_config.drop_existing else []
    return PublishPlan(
        task_id=task.task_id,
        data_source=task.data_source,
        lock_intervals=condense([c.interval for c in plan.chunks]) if plan.chunks else [],
        segments=segments,
        overshadowed_reason=None if append else OVERSHADOWED_BY_REINDEX,
        drop_existing_chunks=drop,
    )


def index_report(task_id: str, plan: IndexPlan, results: Sequence[BuildResult], published: int, **extra: Any) -> dict[str, Any]:
    """Druid's ``ingestionStatsAndErrors`` report of the plan's and the builds' row counters."""
    build_stats = RowStats()
    events: list[dict[str, Any]] = []
    for r in results:
        build_stats = build_stats.plus(r.row_stats)
        events.extend(r.unparseable_events)
    # Without intervals and without any valid row, no chunk was found and the rows were only counted while determining.
    read = build_stats.processed + build_stats.processed_with_error + build_stats.unparseable + build_stats.thrown_away
    message = no_valid_rows_message(build_stats if read else plan.row_stats, published)
    if message is not None:
        log.warning("task %s: %s", task_id, message)
        extra.setdefault("error", message)
    return ingestion_report(
        task_id,
        state="COMPLETED",
        determine=(plan.row_stats, plan.unparseable_events),
        build=(build_stats, events),
        segments_published=published,
        **extra,
    )


release = protocol.release
heartbeat = protocol.heartbeat
fail = protocol.fail


class IndexDefinition(protocol.TaskDefinition):
    """``index`` (and ``index_parallel``) on the task protocol."""

    task_types = ("index", "index_parallel")
    plan_model = IndexPlan
    unit_model = BuildUnit
    result_model = BuildResult
    report_model = IndexReport

    def check(self, task: IndexTask, rt: Runtime) -> None:
        check_writable(task)
        check_local_input(task)

    def lock_requests(self, task: IndexTask, rt: Runtime) -> list[protocol.LockRequest]:
        # Without intervals the chunks are found (and locked) by determine_partitions.
        return protocol.lock_requests_for(task, task.spec.data_schema.granularity_spec.bucket_intervals() or [])

    def plan(self, task: IndexTask, rt: Runtime) -> IndexPlan:
        return determine_partitions(task, rt)

    def build(self, task: IndexTask, plan: IndexPlan, unit: BuildUnit, rt: Runtime) -> BuildResult:
        return build(task, unit, rt)

    def build_all(self, task: IndexTask, plan: IndexPlan, rt: Runtime) -> list[BuildResult]:
        return [build_units(task, plan.build_units, rt)]  # one pass over the input for every unit

    def publish_plan(self, task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult], rt: Runtime) -> PublishPlan:
        return publish_plan(task, plan, results)

    def published_before(self, task: IndexTask, rt: Runtime) -> bool:
        # An appending task's re-run build got fresh ids: publishing them would add its rows a second time.
        if not task.spec.io_config.append_to_existing:
            return False
        record = rt.store.get_task(task.task_id)
        return record is not None and record.status == "SUCCESS"

    def report(
        self, task: IndexTask, plan: IndexPlan, results: Sequence[BuildResult], outcome: PublishOutcome, publish: PublishPlan
    ) -> IndexReport:
        reports = index_report(task.task_id, plan, results, len(publish.segments), warnings=spec_warnings(task))
        return IndexReport(task_id=task.task_id, data_source=task.data_source, status="SUCCESS", segments=publish.segments, reports=reports)


DEFINITION = IndexDefinition()


def run(spec: Any, rt: Runtime) -> IndexReport:
    """Every step in this process: the CLI's ``druidflow run`` and the benchmark."""
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt)


def run_local(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    """Run an index task in-process against the given metadata DB and deep storage; return the report."""
    rt = Runtime.from_urls(metadata_url, deep_storage)
    return run(spec, rt).model_dump()
