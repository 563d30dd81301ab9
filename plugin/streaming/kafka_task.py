"""One Kafka indexing task (Druid's ``index_kafka``), as steps over the index task's machinery.

    read (spool [start, ...) per partition) ─▶ lock requests (APPEND, priority 75, per time chunk the messages
    fall in) ─▶ plan (appending build units) ─▶ build (the index build; :mod:`druidflow.streaming.kafka_build`)
    ─▶ publish (segments + offsets, one transaction)

Exactly once: the publish transaction runs inside the lock critical section and, on the same connection,
compares the committed offsets with the task's start offsets and commits its end offsets
(:func:`druidflow.streaming.offsets.compare_and_swap`) before inserting the segments. A retried or duplicated
task has the same start, so at most one of them publishes; the others fail with nothing published and their
pushed files and pending segment ids removed. A task killed anywhere has published either everything or
nothing: its locks free themselves when their lease runs out and the supervisor reads the range again.

Segments are appended as new partitions of each chunk's current version (the store's append allocation under
APPEND locks), so batch (50) and compaction (25) tasks, which cannot preempt 75, never overwrite a streaming
publish in flight; if a chunk nevertheless got a newer version between allocation and publish (a REPLACE lock of
concurrent append and replace), the publish also copies the segments into that version, as Druid's
``commitAppendSegments`` does.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import Any, Optional

from pydantic import Field

from druidflow.exceptions import (
    DruidflowError,
    PublishConflictError,
    PublishStateUnknownError,
)
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Period, condense, now_ms, parse_instant
from druidflow.locks import TaskLockbox
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import IndexTask
from druidflow.streaming import kafka_client, offsets
from druidflow.streaming.kafka_build import _discard, build, group_id
from druidflow.streaming.kafka_spec import KAFKA_TASK_TYPE, KafkaSupervisorSpec, parse_supervisor_spec
from druidflow.tasks.report import ingestion_report
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

_PUBLISH_ATTEMPTS = 5


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


def publish(
    task: KafkaTaskSpec,
    index_task: IndexTask,
    segments: list[DataSegment],
    end: dict[int, int],
    rt: Runtime,
    report: Optional[dict[str, Any]] = None,
) -> offsets.StreamOffsets:
    """Segments, offsets and the task's SUCCESS (with ``report``) in one transaction inside the critical section
    (or offsets and status alone if no segment): the task is SUCCESS exactly when its range is published."""
    ds = task.data_source
    intervals = condense(sorted({s.interval for s in segments}))
    for attempt in range(_PUBLISH_ATTEMPTS):
        written: Optional[offsets.StreamOffsets] = None
        try:
            if not segments:
                with rt.store.engine.begin() as conn:
                    committed = offsets.compare_and_swap(conn, ds, task.topic, task.start, end)
                    rt.store.set_task_status(task.task_id, "SUCCESS", report=report, conn=conn)
                    return committed
            with rt.lockbox.critical_section(index_task.task_id, intervals, datasource=ds) as cs:
                committed = offsets.compare_and_swap(cs.connection, ds, task.topic, task.start, end)
                # Appended segments of a chunk re-versioned since allocation get copies in the newer version (the
                # store's concurrent append/replace upgrade), so their rows stay visible.
                rt.store.publish_appended_segments(segments, conn=cs.connection)
                rt.store.delete_pending_segments(ds, index_task.task_id, conn=cs.connection)
                rt.store.set_task_status(task.task_id, "SUCCESS", report=report, conn=cs.connection)
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
    except Exception:
        raise PublishStateUnknownError(
            f"task {task.task_id}: the publish commit failed ({exc}) and its outcome cannot be read; segment files kept"
        ) from exc
    if all(present) and stored is not None and all(stored.offsets.get(p) == o for p, o in end.items()):
        return stored
    if not any(present):
        raise PublishConflictError(f"task {task.task_id}: the publish commit failed ({exc}); nothing was published") from exc
    raise PublishStateUnknownError(f"task {task.task_id}: the publish commit failed ({exc}) with a partial outcome") from exc


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
            reports = ingestion_report(task.task_id, state="COMPLETED", build=(stats, events), segments_published=len(segments))
            if segments or spooled.end != task.start:
                publish(task, index_task, segments, spooled.end, rt, reports)
            else:
                rt.store.set_task_status(task.task_id, "SUCCESS", report=reports)
            published = True
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
