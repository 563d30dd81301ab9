"""Handing off one closed window: index its spooled events and publish them exactly once.

    spooled rows of the bucket ─▶ APPEND lock (priority 75) ─▶ JSON-lines pages on local disk (micro-batches of
    maxRowsInMemory events) ─▶ the index task's build (parse, rollup, persists, segments pushed to deep storage)
    ─▶ one transaction in the lock's critical section: delete exactly those spool rows + publish the segments
       (as an APPEND-locked index task does) + the task's SUCCESS

The segments are new partitions of the bucket's chunk (an appending index task), so a later handoff of the same
bucket (events that arrived after the first one started) only adds partitions. A crash before the transaction
leaves the spool rows in place and at most some unpublished files in deep storage (the orphan sweep's business);
the next handoff indexes the same events again under a new task id. A crash after it has nothing left to do.
Two handoffs racing for the same rows cannot both publish: the second one's delete finds rows missing and its
transaction rolls back (:func:`druidflow.push.spool.consume`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
from dataclasses import dataclass
from typing import Any, Optional

from druidflow.exceptions import LockNotHeldError, LockRevokedError, PublishConflictError
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Interval, format_instant
from druidflow.push import spool
from druidflow.push.spec import RealtimeTask
from druidflow.segments.descriptor import DataSegment
from druidflow.tasks import index
from druidflow.tasks.publisher import delete_unpublished
from druidflow.tasks.report import ingestion_report
from druidflow.tasks.runtime import Runtime

TASK_TYPE = "index_realtime"
CRASH_ENV = "DRUIDFLOW_PUSH_CRASH_AT"  # fault injection for tests: after_build | after_publish


@dataclass(frozen=True)
class HandoffReport:
    task_id: str
    data_source: str
    bucket: Interval
    events: int
    batches: int
    segments: list[DataSegment]
    row_stats: RowStats

    def to_json(self) -> dict[str, Any]:
        return {
            "taskId": self.task_id,
            "dataSource": self.data_source,
            "interval": str(self.bucket),
            "events": self.events,
            "batches": self.batches,
            "segments": [s.id for s in self.segments],
            "rowStats": self.row_stats.model_dump(),
        }


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def handoff_task_id(data_source: str, bucket: Interval) -> str:
    return f"{TASK_TYPE}_{data_source}_{format_instant(bucket.start)}_{secrets.token_hex(4)}"


def handoff(task: RealtimeTask, bucket: Interval, rt: Runtime, *, lock_timeout_s: Optional[float] = None) -> Optional[HandoffReport]:
    """Index and publish the bucket's spooled events; None when none are spooled.

    The lock is waited for ``lock_timeout_s`` (default: the spec's context ``taskLockTimeout``, Druid's 5 minutes)
    before :class:`LockUnavailableError`.
    """
    engine = rt.store.engine
    data_source = task.data_source
    spooled = spool.entries(engine, data_source, bucket)
    if not spooled:
        return None
    task_id = handoff_task_id(data_source, bucket)
    scratch = rt.scratch(f"{TASK_TYPE}-{data_source[:20]}-")
    try:
        index_task = task.index_task(bucket, scratch / "spool", task_id)
        payload = {**task.model_dump(), "handoff": {"interval": str(bucket), "spoolIds": [e.id for e in spooled]}}
        rt.store.insert_task(task_id, TASK_TYPE, data_source, index_task.group_id, payload)
        try:
            with rt.lockbox.keep_alive(task_id):
                wait_s = lock_timeout_s if lock_timeout_s is not None else index_task.lock_timeout_ms / 1000.0
                index.acquire_locks(index_task, rt, [bucket], timeout_s=wait_s)
                _write_pages(rt, spooled, scratch / "spool", task.tuning.max_rows_in_memory)
                plan = index.determine_partitions(index_task, rt)
                result = index.build_units(index_task, plan.build_units, rt)
                _crash_point("after_build")
                report = ingestion_report(
                    task_id,
                    state="COMPLETED",
                    build=(result.row_stats, result.unparseable_events),
                    segments_published=len(result.segments),
                )
                try:
                    with rt.lockbox.critical_section(task_id, [bucket]) as cs:
                        events = spool.consume(cs.connection, data_source, spooled, task_id)
                        if result.segments:
                            # As an APPEND-locked index task publishes: with copies into versions a concurrent
                            # REPLACE committed meanwhile, and entries for live REPLACE locks to copy them later.
                            rt.store.publish_appended_segments(result.segments, conn=cs.connection)
                        rt.store.delete_pending_segments(data_source, task_id, conn=cs.connection)
                        rt.store.set_task_status(task_id, "SUCCESS", report=report, conn=cs.connection)
                except (PublishConflictError, LockRevokedError, LockNotHeldError):
                    delete_unpublished(result.segments, rt)  # rolled back: nothing points at these files
                    raise
                _crash_point("after_publish")
            return HandoffReport(task_id, data_source, bucket, events, len(spooled), result.segments, result.row_stats)
        except BaseException as exc:
            index.fail(task_id, exc, rt)
            raise
        finally:
            index.release(task_id, rt)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def reap_dead_handoffs(task: RealtimeTask, rt: Runtime, *, clock_ms: Optional[int] = None) -> list[str]:
    """Mark FAILED the dataSource's RUNNING handoffs whose process died: no live lock, and older than a lock lease
    plus the lock wait. Their events are still in the spool (nothing of theirs was published), so only the task
    records are fixed; returns the task ids."""
    from druidflow.intervals import now_ms, parse_instant

    now = clock_ms if clock_ms is not None else now_ms()
    grace = rt.lockbox.lease_ms + task.template.lock_timeout_ms
    live = {lk.task_id for lk in rt.lockbox.locks(datasource=task.data_source) if lk.active}
    reaped = []
    for record in rt.store.list_tasks(datasource=task.data_source, active=True):
        if record.type != TASK_TYPE or record.id in live:
            continue
        if now - parse_instant(record.updated_date) < grace:
            continue
        index.fail(record.id, "the realtime process stopped during this handoff; its events stayed in the spool "
                   "and a later handoff published them", rt)
        reaped.append(record.id)
    return reaped


def _write_pages(rt: Runtime, spooled: list[spool.SpoolEntry], directory: Any, max_events: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ids = [e.id for e in spooled]
    read: list[int] = []
    for n, (page_ids, data) in enumerate(spool.payloads(rt.store.engine, ids, max_events)):
        (directory / f"part-{n:06d}.json").write_bytes(data)
        read.extend(page_ids)
    if len(read) != len(ids):
        raise PublishConflictError(
            f"{len(ids) - len(read)} of the {len(ids)} spool batches of {spooled[0].bucket} were handed off by another "
            "task meanwhile; nothing was published by this one"
        )
