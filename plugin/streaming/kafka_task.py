"""One Kafka indexing task (Druid's ``index_kafka``), as steps over the index task's machinery.

    read (spool [start, ...) per partition) ─▶ lock requests (APPEND, priority 75, per time chunk the messages
    fall in) ─▶ plan (one build unit, appending) ─▶ build (the index build) ─▶ publish (segments + offsets, one
    transaction)

Exactly once: the publish transaction runs inside the lock critical section and, on the same connection,
compares the committed offsets with the task's start offsets and commits its end offsets
(:func:`druidflow.streaming.offsets.compare_and_swap`) before inserting the segments. A retried or duplicated
task has the same start, so at most one of them publishes; the others fail with nothing published and their
pushed files and pending segment ids removed. A task killed anywhere has published either everything or
nothing: its locks free themselves when their lease runs out and the supervisor reads the range again.

Segments are appended as new partitions of each chunk's current version (the store's append allocation under
APPEND locks), so batch (50) and compaction (25) tasks, which cannot preempt 75, never overwrite a streaming
publish in flight; if a chunk nevertheless got a newer version between allocation and publish, the publish is
refused (the rows would be invisible) and the range is read again.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import Any, Optional

import pyarrow.compute as pc
from pydantic import Field

from druidflow.exceptions import (
    DruidflowError,
    LockRevokedError,
    LockUnavailableError,
    PublishConflictError,
    PublishStateUnknownError,
    TerminalError,
)
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Interval, Period, condense, now_ms, parse_instant
from druidflow.locks import TaskLockbox
from druidflow.locks.lock import APPEND_VERSION, LockType
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import IndexTask
from druidflow.streaming import kafka_client, offsets
from druidflow.streaming.kafka_spec import KAFKA_TASK_TYPE, KafkaSupervisorSpec, parse_supervisor_spec
from druidflow.tasks import index
from druidflow.tasks.report import ingestion_report
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

_PUBLISH_ATTEMPTS = 5


class ChunkOvershadowedError(TerminalError):
    """A chunk got a newer version after this task allocated its segments in it: they would be invisible, so
    nothing is published and the supervisor reads the range again (appending to the new version)."""


class KafkaTaskSpec(DruidModel):
    """What one task reads: the partitions' start offsets, for a supervisor spec. Serialisable (XCom, stdin)."""

    task_id: str
    topic: str
    start: dict[int, int]
    created_ms: int
    supervisor: dict[str, Any]

    @property
    def data_source(self) -> str:
        return self.supervisor["spec"]["dataSchema"]["dataSource"]


class KafkaTaskReport(DruidModel):
    """The outcome: status, the offset range read and (when published) committed, the segments, the counters."""

    task_id: str
    data_source: str
    status: str
    published: bool
    start: dict[int, int]
    end: dict[int, int]
    at_end: list[int] = Field(default_factory=list)
    messages: int = 0
    segments: list[str] = Field(default_factory=list)
    row_stats: RowStats = Field(default_factory=RowStats)
    error: Optional[str] = None
    error_type: Optional[str] = None


def group_id(data_source: str) -> str:
    """The lock group of every Kafka task of a dataSource (they share APPEND locks)."""
    return f"{KAFKA_TASK_TYPE}_{data_source}"


# ------------------------------------------------------------------------------------------------------ steps


def message_window(sup: KafkaSupervisorSpec, created_ms: int) -> tuple[Optional[int], Optional[int]]:
    """(minimum, maximum) message time: Druid's lateMessageRejectionPeriod / StartDateTime before the task's
    creation, and earlyMessageRejectionPeriod after its end (creation + taskDuration)."""
    io = sup.io
    lo = hi = None
    if io.late_message_rejection_period is not None:
        lo = created_ms - io.ms("late_message_rejection_period")
    elif io.late_message_rejection_start_date_time is not None:
        lo = parse_instant(io.late_message_rejection_start_date_time)
    if io.early_message_rejection_period is not None:
        hi = created_ms + io.ms("task_duration") + io.ms("early_message_rejection_period") + 1
    return lo, hi


def read(task: KafkaTaskSpec, sup: KafkaSupervisorSpec, rt: Runtime, scratch: Any) -> kafka_client.SpoolResult:
    """Spool ``[start, ...)`` of the task's partitions until their end, the budget or taskDuration."""
    cons = kafka_client.consumer(sup.io, f"druidflow-{sup.id}")
    try:
        deadline = time.monotonic() + sup.io.ms("task_duration") / 1000.0
        return kafka_client.spool(
            cons, task.topic, task.start, scratch / "messages.txt",
            max_messages=sup.io.max_messages_per_task, deadline=deadline,
            poll_timeout_ms=sup.io.poll_timeout,
            flush_every_s=_seconds(sup.tuning.intermediate_persist_period),
        )
    finally:
        cons.close()


def _seconds(period: str) -> float:
    return Period.parse(period).fixed_ms / 1000.0


def lock_requests(index_task: IndexTask, rt: Runtime) -> tuple[list[Interval], RowStats, list[dict[str, Any]]]:
    """The time chunks the spooled messages fall in (one pass of the index task's determine step)."""
    chunks, _, stats, events = index._determine(index_task, rt, None)
    return sorted(chunks), stats, events


def acquire_locks(index_task: IndexTask, chunks: list[Interval], rt: Runtime) -> None:
    """APPEND locks on the chunks at the task's priority (75), waiting up to ``taskLockTimeout``."""
    held: list[Interval] = []
    for interval in condense(chunks):
        result = rt.lockbox.lock(
            task_id=index_task.task_id, group_id=group_id(index_task.data_source), datasource=index_task.data_source,
            interval=interval, lock_type=LockType.APPEND, priority=index_task.priority,
            timeout=index_task.lock_timeout_ms / 1000.0,
        )
        if not result.acquired:
            for iv in held:
                rt.lockbox.release(index_task.task_id, iv)
            if result.revoked:
                raise LockRevokedError(f"task {index_task.task_id}: its lock on {interval} was revoked")
            raise LockUnavailableError(
                f"task {index_task.task_id} (priority {index_task.priority}): {index_task.data_source} {interval} is "
                "locked by a task of equal or higher priority; the supervisor retries the range"
            )
        held.append(interval)


def quick_chunks(index_task: IndexTask, window: tuple[Optional[int], Optional[int]]) -> Optional[list[Interval]]:
    """The chunks of the spool from its timestamp column alone (pyarrow reads just that field), or None when that
    cannot be trusted to match the full parse: not plain JSON, a flattenSpec, a transform of the time, a line
    pyarrow cannot read. :func:`build` checks the result anyway (no row may fall outside these chunks)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.json as pj

    from druidflow.ingest.casts import parse_timestamps

    schema = index_task.spec.data_schema
    fmt = index_task.spec.io_config.input_format
    ts = schema.timestamp_spec
    gran = schema.granularity_spec.segment_granularity
    if getattr(fmt, "type", None) != "json" or getattr(fmt, "flatten_spec", None) is not None or gran is None:
        return None
    if any(t.name in (ts.column, "__time") for t in schema.transform_spec.transforms):
        return None
    path = index_task.spec.io_config.input_source.files[0]
    kinds = [pa.int64(), pa.string()] if ts.format in ("millis", "posix", "micro", "nano") else [pa.string(), pa.int64()]
    for kind in kinds:
        try:
            table = pj.read_json(path, parse_options=pj.ParseOptions(
                explicit_schema=pa.schema([pa.field(ts.column, kind)]), unexpected_field_behavior="ignore"))
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    else:
        return None
    times = parse_timestamps(table.column(ts.column), ts.format)
    if ts.missing_value_ms is not None:
        times = pc.fill_null(times, ts.missing_value_ms)
    ms = times.drop_null().to_numpy(zero_copy_only=False)
    lo, hi = window
    if lo is not None:
        ms = ms[ms >= lo]
    if hi is not None:
        ms = ms[ms < hi]
    if not len(ms):
        return None
    starts = np.unique(gran.truncate(ms.astype(np.int64)))
    return [gran.bucket(int(st)) for st in starts]


def build(
    index_task: IndexTask, rt: Runtime, window: tuple[Optional[int], Optional[int]]
) -> tuple[list[DataSegment], RowStats, list[dict[str, Any]]]:
    """Lock the spool's chunks and build its segments; (segments, counters, saved parse exceptions).

    The chunks come from :func:`quick_chunks` when it can tell them, else from a full determine pass. A quick
    guess that missed a chunk shows as rows thrown away "outsideIntervals": its segments are dropped and the
    build runs again on the determined chunks, so the shortcut can cost time but never a row.
    """
    chunks = quick_chunks(index_task, window)
    if chunks is not None:
        built = _build_chunks(index_task, chunks, rt)
        if built is not None:
            return built
        log.warning("task %s: the quick chunk guess missed rows; determining the chunks", index_task.task_id)
    chunks, determined, determine_events = lock_requests(index_task, rt)
    if not chunks:  # every message was thrown away or unparseable: nothing to build, the offsets still move on
        return [], determined, determine_events
    built = _build_chunks(index_task, chunks, rt)
    if built is None:
        raise TerminalError(f"task {index_task.task_id}: rows fell outside the determined chunks; nothing was published")
    return built


def _build_chunks(
    index_task: IndexTask, chunks: list[Interval], rt: Runtime
) -> Optional[tuple[list[DataSegment], RowStats, list[dict[str, Any]]]]:
    """Build the chunks, each into the time chunk that already holds it: where compaction re-partitioned an
    interval into coarser segments (HOUR streamed, DAY compacted), rows go to that coarser chunk, as Druid's
    segment allocation does. One build per segment granularity, the first counting every row no build owns.
    None (everything pushed removed again) when some row fell outside every chunk."""
    groups = _chunks_by_existing_granularity(index_task, chunks, rt)
    acquire_locks(index_task, [c for cs in groups.values() for c in cs], rt)
    segments: list[DataSegment] = []
    stats, events = RowStats(), []
    primary_outside = owned_elsewhere = 0
    for i, (granularity, group) in enumerate(groups.items()):
        task_g = index_task if granularity is None else _with_segment_granularity(index_task, granularity)
        unit = plan(task_g, group).model_copy(update={"primary": i == 0})
        built = index.build_units(task_g, [unit], rt)
        segments.extend(built.segments)
        if i == 0:
            primary_outside = built.row_stats.thrown_away_by_reason.get("outsideIntervals", 0)
            stats, events = built.row_stats, list(built.unparseable_events)
        else:
            owned = built.row_stats.processed + built.row_stats.processed_with_error
            owned_elsewhere += owned
            stats = stats.plus(built.row_stats)
    if primary_outside != owned_elsewhere:
        _discard(index_task.data_source, index_task.task_id, segments, rt)
        return None
    reasons = dict(stats.thrown_away_by_reason)
    if owned_elsewhere:  # rows of the other builds' chunks were "outside" for the first one only
        reasons["outsideIntervals"] = reasons.get("outsideIntervals", 0) - owned_elsewhere
        if not reasons["outsideIntervals"]:
            del reasons["outsideIntervals"]
        stats = stats.model_copy(update={"thrown_away": stats.thrown_away - owned_elsewhere, "thrown_away_by_reason": reasons})
    return segments, stats, events


def _chunks_by_existing_granularity(index_task: IndexTask, chunks: list[Interval], rt: Runtime) -> dict[Any, list[Interval]]:
    """``{None: chunks of the spec's granularity, <granularity>: coarser chunks that already hold segments}``."""
    from druidflow.granularity import STANDARD_PERIODS, Granularity
    from druidflow.segments.timeline import Timeline

    groups: dict[Any, list[Interval]] = {None: []}
    for chunk in chunks:
        visible = Timeline(rt.store.used_segments(index_task.data_source, chunk)).visible(chunk)
        covering = visible[0].true_interval if len(visible) == 1 else chunk
        if covering == chunk or not covering.contains(chunk):
            groups[None].append(chunk)
            continue
        for name in STANDARD_PERIODS:
            granularity = Granularity.parse(name)
            if granularity.bucket(chunk.start) == covering:
                if covering not in groups.setdefault(name, []):
                    groups[name].append(covering)
                break
        else:
            groups[None].append(chunk)  # no granularity gives that interval: allocation will say what is in the way
    if not groups[None]:
        del groups[None]
    return groups


def _with_segment_granularity(index_task: IndexTask, name: str) -> IndexTask:
    data = index_task.model_dump()
    data["spec"]["dataSchema"]["granularitySpec"]["segmentGranularity"] = name
    return IndexTask.parse(data)


def plan(index_task: IndexTask, chunks: list[Interval]) -> index.BuildUnit:
    """One appending build unit over every chunk: segment ids are allocated in each chunk's current version."""
    plans = [index.ChunkPlan(interval=c, version=APPEND_VERSION) for c in chunks]
    return index.BuildUnit(task_id=index_task.task_id, chunks=plans, all_chunks=chunks, primary=True)


def publish(
    task: KafkaTaskSpec, index_task: IndexTask, segments: list[DataSegment], end: dict[int, int], rt: Runtime
) -> offsets.StreamOffsets:
    """Segments and offsets in one transaction inside the critical section (or offsets alone if no segment)."""
    ds = task.data_source
    intervals = condense(sorted({s.interval for s in segments}))
    for attempt in range(_PUBLISH_ATTEMPTS):
        written: Optional[offsets.StreamOffsets] = None
        try:
            if not segments:
                with rt.store.engine.begin() as conn:
                    return offsets.compare_and_swap(conn, ds, task.topic, task.start, end)
            with rt.lockbox.critical_section(index_task.task_id, intervals, datasource=ds) as cs:
                _check_still_visible(ds, segments, rt, cs.connection)
                committed = offsets.compare_and_swap(cs.connection, ds, task.topic, task.start, end)
                rt.store.publish_segments(segments, conn=cs.connection)
                rt.store.delete_pending_segments(ds, index_task.task_id, conn=cs.connection)
                written = committed
            return committed
        except PublishConflictError:
            if attempt == _PUBLISH_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
        except Exception as exc:
            if written is None:
                raise  # raised inside the transaction: rolled back, nothing published
            return _after_failed_commit(task, segments, end, rt, exc)
    raise AssertionError("unreachable")


def _after_failed_commit(
    task: KafkaTaskSpec, segments: list[DataSegment], end: dict[int, int], rt: Runtime, exc: Exception
) -> offsets.StreamOffsets:
    """The commit itself failed (e.g. the connection dropped): look whether it happened before deciding."""
    try:
        stored = offsets.committed(rt.store.engine, task.data_source)
        present = [rt.store.get_segment(s.id) is not None for s in segments]
    except Exception:  # noqa: BLE001 - cannot tell: the caller must keep the files
        raise PublishStateUnknownError(
            f"task {task.task_id}: the publish commit failed ({exc}) and its outcome cannot be read; segment files kept"
        ) from exc
    if all(present) and stored is not None and all(stored.offsets.get(p) == o for p, o in end.items()):
        return stored
    if not any(present):
        raise PublishConflictError(f"task {task.task_id}: the publish commit failed ({exc}); nothing was published") from exc
    raise PublishStateUnknownError(f"task {task.task_id}: the publish commit failed ({exc}) with a partial outcome") from exc


def _check_still_visible(ds: str, segments: list[DataSegment], rt: Runtime, conn: Any) -> None:
    for interval in sorted({s.interval for s in segments}):
        mine = max(s.version for s in segments if s.interval == interval)
        newer = [
            s.version for s in rt.store.used_segments(ds, interval, conn=conn)
            if s.version > mine and s.interval.contains(interval)
        ]
        if newer:
            raise ChunkOvershadowedError(
                f"{ds} {interval} got version {max(newer)} while this task appended to version {mine}; "
                "nothing was published and the range is read again"
            ) from None


# ------------------------------------------------------------------------------------------------------ run


def run(task: KafkaTaskSpec, rt: Runtime) -> KafkaTaskReport:
    """Every step in this process; records the task in the tasks table and always releases its locks."""
    sup = parse_supervisor_spec(task.supervisor)
    ds = sup.data_source
    rt.store.insert_task(task.task_id, KAFKA_TASK_TYPE, ds, group_id(ds), task.model_dump())
    scratch = rt.scratch(f"{task.task_id[:40]}-kafka-")
    segments: list[DataSegment] = []
    published = False
    spooled: Optional[kafka_client.SpoolResult] = None
    try:
        with rt.lockbox.keep_alive(task.task_id):
            spooled = read(task, sup, rt, scratch)
            index_task = sup.index_task(task.task_id, str(scratch / "messages.txt"), message_window(sup, task.created_ms))
            stats = RowStats()
            if spooled.null_messages:
                stats = RowStats(thrown_away=spooled.null_messages, thrown_away_by_reason={"nullOrEmptyRecord": spooled.null_messages})
            events: list[dict[str, Any]] = []
            if spooled.messages:
                segments, built_stats, events = build(index_task, rt, message_window(sup, task.created_ms))
                stats = stats.plus(built_stats)
            if segments or spooled.end != task.start:
                publish(task, index_task, segments, spooled.end, rt)
            published = True
            reports = ingestion_report(task.task_id, state="COMPLETED", build=(stats, events), segments_published=len(segments))
            rt.store.set_task_status(task.task_id, "SUCCESS", report=reports)
            return KafkaTaskReport(
                task_id=task.task_id, data_source=ds, status="SUCCESS", published=True, start=task.start,
                end=spooled.end, at_end=sorted(spooled.at_end), messages=spooled.messages,
                segments=[s.id for s in segments], row_stats=stats,
            )
    except BaseException as exc:
        if not published and not isinstance(exc, PublishStateUnknownError):
            _discard(ds, task.task_id, segments, rt)
        message = str(exc) or type(exc).__name__
        rt.store.set_task_status(
            task.task_id, "FAILED", report=ingestion_report(task.task_id, state="COMPLETED", error=message), error_msg=message
        )
        if isinstance(exc, DruidflowError):
            return KafkaTaskReport(
                task_id=task.task_id, data_source=ds, status="FAILED", published=False, start=task.start,
                end=spooled.end if spooled else dict(task.start), messages=spooled.messages if spooled else 0,
                error=message, error_type=type(exc).__name__,
            )
        raise
    finally:
        rt.lockbox.release_all(task.task_id)
        shutil.rmtree(scratch, ignore_errors=True)


def _discard(ds: str, task_id: str, segments: list[DataSegment], rt: Runtime) -> None:
    """Nothing was published: remove the pushed files and free the pending ids, which no one else can have."""
    for s in segments:
        try:
            rt.storage.delete(s.load_spec)
        except Exception:  # noqa: BLE001 - an orphan file is swept later; never hide the task's own error
            log.warning("could not delete unpublished segment file of %s", s.id, exc_info=True)
    try:
        rt.store.delete_pending_segments(ds, task_id)
    except Exception:  # noqa: BLE001
        log.warning("could not delete the pending segments of task %s", task_id, exc_info=True)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m druidflow.streaming.kafka_task [LEASE_SECONDS]`` with the task JSON on stdin, the metadata DB and
    deep storage in ``DRUIDFLOW_METADATA_URL`` / ``DRUIDFLOW_DEEP_STORAGE``; prints the report as JSON (how the
    supervisor runs each task in its own process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    rt = Runtime.from_urls(migrate=False)
    if args:
        rt.lockbox = TaskLockbox(rt.store.engine, lease_seconds=float(args[0]))
    task = KafkaTaskSpec.model_validate_json(sys.stdin.read())
    report = run(task, rt)
    print(report.model_dump_json())
    return 0 if report.status == "SUCCESS" else 2


def new_task(sup: KafkaSupervisorSpec, start: dict[int, int]) -> KafkaTaskSpec:
    return KafkaTaskSpec(
        task_id=sup.new_task_id(), topic=sup.io.topic, start=start, created_ms=now_ms(), supervisor=sup.model_dump()
    )


if __name__ == "__main__":
    sys.exit(main())
