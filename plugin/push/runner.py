"""The realtime process of one pushed dataSource: hand off each window once it has closed.

A bucket's window closes ``windowPeriod`` after the bucket ends (no event for it is accepted after that, by the
server clock); ``handoffDelay`` more, and its spooled events are indexed and published (:mod:`druidflow.push.handoff`).
The runner wakes every ``intermediatePersistPeriod`` or when the next bucket becomes due, whichever is first. It
holds no state of its own: the spool is the truth, so the process can be killed at any moment and restarted, and
several runners of one dataSource may run at once (a handoff they race for is published by exactly one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Optional

import sqlalchemy as sa

from druidflow.exceptions import LockRevokedError, LockUnavailableError, PublishConflictError
from druidflow.intervals import now_ms
from druidflow.metadata.tables import push_spool as S
from druidflow.push import spool
from druidflow.push.handoff import HandoffReport, handoff, reap_dead_handoffs
from druidflow.push.spec import RealtimeTask
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

MIN_SLEEP_S = 0.05
MAX_SLEEP_S = 60.0


class RealtimeRunner:
    def __init__(self, task: RealtimeTask, rt: Runtime, *, clock: Callable[[], int] = now_ms, poll_s: Optional[float] = None) -> None:
        self.task = task
        self.rt = rt
        self.clock = clock
        self.poll_s = poll_s

    def closed_before(self) -> int:
        """Buckets ending at or before this instant are due for handoff."""
        tuning = self.task.tuning
        return self.clock() - tuning.window_ms - tuning.handoff_delay_ms

    def run_once(self, *, drain: bool = False) -> list[HandoffReport]:
        """Hand off every due bucket (every spooled bucket when ``drain``: the end of the process)."""
        reports = []
        for task_id in reap_dead_handoffs(self.task, self.rt):
            log.info("handoff task %s of %s had died; marked FAILED", task_id, self.task.data_source)
        buckets = spool.due_buckets(self.rt.store.engine, self.task.data_source, None if drain else self.closed_before())
        for bucket in buckets:
            try:
                report = handoff(self.task, bucket, self.rt)
            except (LockUnavailableError, LockRevokedError, PublishConflictError) as exc:
                # The events stay in the spool: a later pass hands them off (a revoked lock is a higher-priority
                # task's turn on the chunk, not a reason to give up on the events).
                log.warning("handoff of %s %s: %s; retrying later", self.task.data_source, bucket, exc)
                continue
            if report is not None:
                log.info("handed off %s %s: %d events in %d segments (task %s)", report.data_source, bucket,
                         report.events, len(report.segments), report.task_id)
                reports.append(report)
        return reports

    def sleep_s(self) -> float:
        """Until the next bucket is due or one intermediatePersistPeriod, whichever is sooner."""
        if self.poll_s is not None:
            return self.poll_s
        period = self.task.tuning.persist_period_ms / 1000.0
        with self.rt.store.engine.connect() as conn:
            next_end = conn.execute(
                sa.select(sa.func.min(S.c.bucket_end_ms)).where(S.c.dataSource == self.task.data_source)
            ).scalar_one()
        if next_end is not None:
            period = min(period, (int(next_end) - self.closed_before()) / 1000.0)
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, period))

    def run(self, stop: Optional[threading.Event] = None, *, drain_on_stop: bool = True, until_empty: bool = False) -> int:
        """Loop until ``stop`` is set (then drain, when asked) or, with ``until_empty``, until the spool is empty.
        Returns the number of events handed off."""
        stop = stop or threading.Event()
        handed = 0
        log.info("realtime runner of %s: watching the spool (window %s, handoff delay %s)", self.task.data_source,
                 self.task.tuning.window_period, self.task.tuning.handoff_delay)
        while not stop.is_set():
            handed += sum(r.events for r in self.run_once())
            if until_empty and spool.pending_events(self.rt.store.engine, self.task.data_source) == 0:
                return handed
            stop.wait(self.sleep_s())
        if drain_on_stop:
            handed += sum(r.events for r in self.run_once(drain=True))
        return handed


def drain(task: RealtimeTask, rt: Runtime, *, attempts: int = 50) -> int:
    """Hand off everything spooled now, whatever the windows (a runner's shutdown); returns the events published."""
    runner = RealtimeRunner(task, rt)
    handed = 0
    for _ in range(attempts):
        handed += sum(r.events for r in runner.run_once(drain=True))
        if spool.pending_events(rt.store.engine, task.data_source) == 0:
            return handed
        time.sleep(0.1)
    return handed
