"""The ``kill`` task: permanently delete unused segments (their rows and their files), safely.

What it deletes (Druid §4): only segments with ``used = false`` whose interval lies entirely inside the task's
``interval``, of the given ``versions``, marked unused at or before ``maxUsedStatusLastUpdatedTime`` (and, for the
scheduled kill, before the buffer period). Never a used segment, never a file another row still points at.

How (one batch of at most ``batchSize`` segments at a time, at most ``ceil(limit / batchSize)`` batches)::

    lock the interval ─▶ per batch: claim ─▶ delete files ─▶ delete rows ─▶ … ─▶ release

1. **claim**, in one transaction inside the lock's critical section (which is the per-batch "is my lock still
   valid" check): set ``kill_task_id`` on the batch's rows. From then on ``mark_used`` refuses them.
2. **files**: delete every file of the batch that no row outside the batch points at (a missing file counts as
   deleted; emptied directories are removed by the storage).
3. **rows**: delete the claimed rows.

A crash anywhere leaves either untouched rows, or claimed rows (unused for good) whose files may be partly gone;
never a file without a row. Any later kill whose lock covers them (a retry of this task, or a new kill) finishes
claimed rows first, whatever its filters say: holding the lock proves the kill that claimed them is gone.

A revoked lock stops the kill between batches; the report says what was done and what was left. A dry run
(context ``dryRun: true``, or ``run(..., dry_run=True)``) takes no lock and writes nothing: it computes the same
batches from the same queries and reports exactly the segments and files a real run would delete.

``skipLockedIntervals`` (context, or argument) locks only the intervals that hold segments to delete and skips
the parts another task holds, reporting them, instead of failing when the whole interval cannot be locked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from druidflow.exceptions import LockRevokedError, LockUnavailableError, SpecError
from druidflow.intervals import Interval, Period, condense, format_instant, now_ms, parse_instant
from druidflow.metadata import kill_queries as q
from druidflow.specs.tasks import KillTask, parse_task
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import protocol
from druidflow.tasks.kill_files import delete_files, has_file
from druidflow.tasks.kill_report import MAX_LISTED, SKIP_REASONS, KillReport, SkipEntry
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

#: Druid's ``druid.coordinator.kill.bufferPeriod``: how long a segment stays recoverable after being marked unused.
DEFAULT_BUFFER_PERIOD = "P30D"
#: The ``unused_reason`` of segments a kill with ``markAsUnused`` marked unused.
MARK_AS_UNUSED_REASON = "dropped-by-kill"
#: The steps a :data:`Checkpoint` is called at, in order, for each batch.
STEPS = ("claimed", "file_deleted", "files_deleted", "rows_deleted")


@dataclass(frozen=True)
class KillStep:
    """What a :data:`Checkpoint` is told: the step just completed, the batch, and (for ``file_deleted``) the file."""

    step: str
    batch: int
    interval: Interval
    segment_ids: tuple[str, ...]
    files: tuple[str, ...]
    file: Optional[str] = None


#: Called after each step of each batch (see :data:`STEPS`); raising from it simulates a crash at that point.
Checkpoint = Callable[[KillStep], None]


# ---------------------------------------------------------------------------------------------------- entry points


def run(
    spec: Any,
    rt: Runtime,
    *,
    dry_run: Optional[bool] = None,
    buffer_period: Optional[str] = None,
    skip_locked_intervals: Optional[bool] = None,
    lock_timeout_s: float = 0.0,
    clock: Callable[[], int] = now_ms,
    checkpoint: Optional[Checkpoint] = None,
) -> KillReport:
    """Run a kill task (a :class:`KillTask`, a dict or JSON text) and return its report.

    ``dry_run`` overrides the context's ``dryRun``; ``buffer_period`` (an ISO period, e.g. ``P30D``) keeps
    segments marked unused more recently than that; ``skip_locked_intervals`` overrides the context key of that
    name; ``lock_timeout_s`` is how long to wait for the lock (default: try once). ``clock`` gives "now" in epoch
    ms. A real run records the task and its report (Druid's ``killUnusedSegments`` shape) in the tasks table.

    Raises :class:`LockUnavailableError` when the interval is locked by a task of equal or higher priority
    (nothing was done), and :class:`LockRevokedError` when the lock was revoked part-way (its ``report``
    attribute and the tasks table say what was done).
    """
    task = _parse(spec)
    dry = task.dry_run if dry_run is None else bool(dry_run)
    skip_locked = task.context_flag("skipLockedIntervals") if skip_locked_intervals is None else bool(skip_locked_intervals)
    if skip_locked and task.mark_as_unused:
        raise SpecError("context.skipLockedIntervals", True, "cannot be combined with markAsUnused=true")
    cutoff, cutoff_reason = _cutoff(task, buffer_period, clock())
    kill = _Kill(task, rt, cutoff, cutoff_reason, skip_locked, clock, checkpoint)
    return kill.plan() if dry else kill.execute(lock_timeout_s)


def fail(task_id: str, error: BaseException | str, rt: Runtime) -> None:
    """Record a kill as FAILED (keeping the report it stored, if any); a task never recorded is left alone."""
    if rt.store.get_task(task_id) is None:
        return
    rt.store.set_task_status(task_id, "FAILED", error_msg=str(error))


class KillDefinition(protocol.TaskDefinition):
    """``kill`` on the task protocol: it locks its interval (or, with ``skipLockedIntervals``, the free parts
    holding segments to delete) and builds nothing; instead of one publish it deletes in batches, each batch
    claimed inside the lock's critical section (see the module docstring), so it brings its own :meth:`run`."""

    task_types = ("kill",)
    report_model = KillReport

    def lock_requests(self, task: KillTask, rt: Runtime) -> list[protocol.LockRequest]:
        return protocol.lock_requests_for(task, [task.interval])

    def run(self, task: KillTask, rt: Runtime, *, timeout_s: float = 0, **options: Any) -> KillReport:
        return run(task, rt, lock_timeout_s=timeout_s, **options)


DEFINITION = KillDefinition()


def scheduled_kill(
    rt: Runtime,
    data_source: str,
    *,
    buffer_period: str = DEFAULT_BUFFER_PERIOD,
    duration_to_retain: Optional[str] = None,
    max_segments: Optional[int] = None,
    batch_size: int = 100,
    dry_run: bool = False,
    clock: Callable[[], int] = now_ms,
    task_id: Optional[str] = None,
) -> Optional[KillReport]:
    """The Coordinator's auto-kill for one dataSource: kill unused segments marked unused at least
    ``buffer_period`` ago and (with ``duration_to_retain``) whose interval ended at least that long ago.

    The kill's interval is the umbrella of the dataSource's unused segments (within ``duration_to_retain``); only
    the parts holding segments to delete are locked, and parts held by other tasks are skipped and reported
    (``skipLockedIntervals``). ``max_segments`` is the kill's ``limit``. Returns None when no segment is unused.
    """
    now = clock()
    period_before(now, buffer_period, "bufferPeriod")  # a bad period fails before anything else
    end_before = None if duration_to_retain is None else period_before(now, duration_to_retain, "durationToRetain")
    with rt.store.engine.connect() as conn:
        # Every unused segment counts for the interval, so that those still in the buffer period are reported.
        bounds = q.unused_bounds(conn, data_source, end_before=end_before)
    if bounds is None:
        return None
    spec: dict[str, Any] = {
        "type": "kill",
        "dataSource": data_source,
        "interval": str(bounds),
        "batchSize": batch_size,
        "context": {"skipLockedIntervals": True},
    }
    if task_id:
        spec["id"] = task_id
    if max_segments is not None:
        spec["limit"] = max_segments
    return run(spec, rt, dry_run=dry_run, buffer_period=buffer_period, clock=clock)


def period_before(ms: int, period: str, path: str = "period") -> int:
    """``ms`` minus an ISO period (calendar-aware, UTC)."""
    Period.parse(period, path)
    return Interval.parse(f"{period}/{format_instant(ms)}", path).start


# ---------------------------------------------------------------------------------------------------- the run


def _parse(spec: Any) -> KillTask:
    task = spec if isinstance(spec, KillTask) else parse_task(spec)
    if not isinstance(task, KillTask):
        raise SpecError("type", task.type, "not a kill task")
    refuse_non_defaults(task)
    return task


def _cutoff(task: KillTask, buffer_period: Optional[str], now: int) -> tuple[Optional[str], str]:
    """The latest ``used_status_last_updated`` a segment may have to be killed, and the skip reason it implies."""
    candidates: list[tuple[str, str]] = []
    if task.max_used_status_last_updated_time is not None:
        at = parse_instant(task.max_used_status_last_updated_time, "maxUsedStatusLastUpdatedTime")
        candidates.append((format_instant(at), "markedUnusedAfterMaxUsedStatusLastUpdatedTime"))
    if buffer_period is not None:
        candidates.append((format_instant(period_before(now, buffer_period, "bufferPeriod")), "withinBufferPeriod"))
    if not candidates:
        return None, ""
    return min(candidates)


@dataclass
class _Batch:
    rows: list[q.KillRow]
    files: dict[str, dict[str, Any]]  # load path -> loadSpec, to delete
    kept: dict[str, str]  # load path -> skip reason


@dataclass
class _Kill:
    task: KillTask
    rt: Runtime
    cutoff: Optional[str]
    cutoff_reason: str
    skip_locked: bool
    clock: Callable[[], int]
    checkpoint: Optional[Checkpoint]
    killed: int = 0
    batches: int = 0
    bytes_killed: int = 0
    files_deleted: int = 0
    marked_unused: int = 0
    segments: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    truncated: bool = False
    resumed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, SkipEntry] = field(default_factory=dict)
    units: list[Interval] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)

    @property
    def ds(self) -> str:
        return self.task.data_source

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def limit(self) -> Optional[int]:
        return self.task.limit

    def _room(self) -> int:
        """How many segments the next batch may take; 0 when the batch or segment cap is reached."""
        max_batches = self.task.max_batches
        if max_batches is not None and self.batches >= max_batches:
            return 0
        n = self.task.batch_size
        if self.limit is not None:
            n = min(n, self.limit - self.killed)
        return max(n, 0)

    # -- dry run ----------------------------------------------------------------------------------------------

    def plan(self) -> KillReport:
        """What a real run would delete, from the same queries, writing nothing and locking nothing."""
        blocking = self._blocking_locks()
        with self.rt.store.engine.connect() as conn:
            if self.task.mark_as_unused:
                self.marked_unused = len(q.used_rows_inside(conn, self.ds, self.task.interval))
            self._static_skips(conn, simulate_mark_unused=self.task.mark_as_unused)
            self.units = self._plan_units(conn, blocking)
            gone: set[str] = set()
            for unit in self.units:
                claimed = q.claimed_rows(conn, self.ds, unit)
                eligible = q.eligible_rows(conn, self.ds, unit, versions=self.task.versions, cutoff=self.cutoff)
                if self.task.mark_as_unused:
                    eligible = self._with_marked(conn, unit, eligible)
                queue = claimed + eligible
                while queue:
                    n = self._room()
                    if not n:
                        break
                    rows, queue = queue[:n], queue[n:]
                    batch = self._batch(conn, rows, gone)
                    gone.update(r.id for r in rows)
                    self._account(batch)
                if queue:
                    examples = tuple(r.id for r in queue[: q.SAMPLE_SIZE])
                    self._skip("beyondLimit", q.SkipCount(len(queue), sum(r.size for r in queue), examples))
        return self._report("DRY_RUN", dry_run=True)

    def _with_marked(self, conn: Any, unit: Interval, eligible: list[q.KillRow]) -> list[q.KillRow]:
        """The eligible rows once markAsUnused has marked the used ones inside ``unit`` unused (now)."""
        now = format_instant(self.clock())
        if self.cutoff is not None and now > self.cutoff:
            return eligible  # marked unused "now": too recent for this kill
        marked = [replace(r, used_status_last_updated=now) for r in q.used_rows_inside(conn, self.ds, unit)]
        return sorted(eligible + marked, key=lambda r: (r.start_ms, r.end_ms, r.version, r.id))

    def _blocking_locks(self) -> list[Any]:
        """Other tasks' live locks on the dataSource that this kill's lock could neither share nor preempt."""
        from druidflow.locks.lock import LockType
        from druidflow.locks.rules import Posse, compatible

        kind = LockType.parse(self.task.lock_type)
        out = []
        for lk in self.rt.lockbox.locks(datasource=self.ds):
            if not lk.active or lk.group_id == self.task.group_id or lk.priority < self.task.priority:
                continue
            posse = Posse(
                lk.posse_id, lk.group_id, lk.interval, lk.type, lk.version, lk.priority, lk.revoked, frozenset([lk.task_id])
            )
            if not compatible(posse, kind, self.task.interval):
                out.append(lk)
        return out

    def _plan_units(self, conn: Any, blocking: list[Any]) -> list[Interval]:
        """The intervals a real run would lock, given the locks other tasks hold now."""
        if not self.skip_locked:
            self.blocked_by = sorted({lk.task_id for lk in blocking if lk.interval.overlaps(self.task.interval)})
            return [self.task.interval]
        units: list[Interval] = []
        for chunk in self._candidate_chunks(conn):
            blockers = [lk for lk in blocking if lk.interval.overlaps(chunk)]
            units += [chunk] if not blockers else self._pieces_avoiding(conn, chunk, blockers)
        self._skip_unlocked(conn, units, blocking)
        return units

    # -- real run ---------------------------------------------------------------------------------------------

    def execute(self, lock_timeout_s: float) -> KillReport:
        store, box = self.rt.store, self.rt.lockbox
        if not store.insert_task(self.task_id, self.task.task_type, self.ds, self.task.group_id, self.task.model_dump()):
            store.set_task_status(self.task_id, "RUNNING")
        try:
            with box.keep_alive(self.task_id):
                self.units = self._lock(lock_timeout_s)
                if self.task.mark_as_unused:
                    with box.critical_section(self.task_id, self.units, self.ds) as cs:
                        self.marked_unused = store.mark_unused(
                            self.ds, interval=self.task.interval, reason=MARK_AS_UNUSED_REASON, conn=cs.connection
                        )
                with store.engine.connect() as conn:
                    self._static_skips(conn, simulate_mark_unused=False)
                self._batches()
        except LockRevokedError as exc:
            report = self._stopped("lockRevoked", exc)
            revoked = LockRevokedError(
                f"kill {self.task_id}: its lock on {self.ds} was revoked by a higher-priority task; it stopped after "
                f"{self.batches} batch(es) and {self.killed} segment(s) deleted ({exc})"
            )
            revoked.report = report
            raise revoked from exc
        except LockUnavailableError as exc:
            self._finish("FAILED", error=str(exc))
            raise
        except BaseException as exc:
            self._finish("FAILED", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            box.release_all(self.task_id)
        return self._finish("SUCCESS")

    def _lock(self, timeout_s: float) -> list[Interval]:
        if not self.skip_locked:
            self._acquire(self.task.interval, timeout_s, required=True)
            return [self.task.interval]
        with self.rt.store.engine.connect() as conn:
            chunks = self._candidate_chunks(conn)
        units: list[Interval] = []
        for chunk in chunks:
            blockers = self._acquire(chunk, timeout_s, required=False)
            if blockers is None:
                units.append(chunk)
                continue
            with self.rt.store.engine.connect() as conn:
                pieces = self._pieces_avoiding(conn, chunk, blockers)
            units += [p for p in pieces if self._acquire(p, 0.0, required=False) is None]
        others = [lk for lk in self.rt.lockbox.locks(datasource=self.ds) if lk.active and lk.task_id != self.task_id]
        with self.rt.store.engine.connect() as conn:
            self._skip_unlocked(conn, units, others)
        return units

    def _acquire(self, interval: Interval, timeout_s: float, *, required: bool) -> Optional[list[Any]]:
        """Lock ``interval``; None when held, else the blocking locks (or, when ``required``, raise)."""
        task = self.task
        request = protocol.LockRequest(interval=interval, lock_type=task.lock_type, priority=task.priority)
        result = protocol.try_lock(task, self.rt, request, timeout_s=timeout_s)
        if result.acquired:
            return None
        if required and result.revoked:
            raise LockRevokedError(f"kill {task.task_id}: its lock on {self.ds} {interval} was revoked")
        if required:
            holders = ", ".join(f"{lk.task_id} (priority {lk.priority}, {lk.type})" for lk in result.conflicts) or "another task"
            raise LockUnavailableError(
                f"kill {task.task_id} (priority {task.priority}): {self.ds} {interval} is locked by {holders}; nothing "
                "was deleted. Retry later, or use skipLockedIntervals to kill around locked intervals."
            )
        return list(result.conflicts) or ([result.lock] if result.lock else [])

    def _batches(self) -> None:
        for unit in self.units:
            # Rows left claimed by a dead kill come first. While this kill holds the unit's lock no other kill can
            # claim rows in it, so once a batch finds fewer than it asked for, there are no more to look for.
            claimed_left = True
            while True:
                n = self._room()
                if not n:
                    break
                with self.rt.lockbox.critical_section(self.task_id, [unit], self.ds) as cs:
                    rows = q.claimed_rows(cs.connection, self.ds, unit, n) if claimed_left else []
                    claimed_left = len(rows) == n
                    if len(rows) < n:
                        rows += q.eligible_rows(
                            cs.connection, self.ds, unit, versions=self.task.versions, cutoff=self.cutoff, limit=n - len(rows)
                        )
                    if not rows:
                        break
                    for r in rows:
                        if r.kill_task_id and r.kill_task_id != self.task_id:
                            log.warning(
                                "kill %s: finishing segment %s left claimed by kill %s", self.task_id, r.id, r.kill_task_id
                            )
                    previous = {r.id: r.kill_task_id for r in rows}
                    held = q.claim(cs.connection, self.task_id, [r.id for r in rows])
                if not held:
                    continue  # every selected row was marked used meanwhile
                for r in held:
                    owner = previous.get(r.id)
                    if owner and owner != self.task_id:
                        self.resumed[owner] = self.resumed.get(owner, 0) + 1
                self._delete(unit, held)
        if self._room() == 0:
            with self.rt.store.engine.connect() as conn:
                left = q.count_remaining(conn, self.ds, self.units, versions=self.task.versions, cutoff=self.cutoff)
            self._skip("beyondLimit", left)

    def _delete(self, unit: Interval, held: list[q.KillRow]) -> None:
        """Files, then rows, of one claimed batch (the claim already made it irrevocable)."""
        with self.rt.store.engine.connect() as conn:
            batch = self._batch(conn, held, set())
        ids = tuple(r.id for r in held)
        number = self.batches + 1
        files = tuple(sorted(batch.files))

        def check(name: str, path: Optional[str] = None) -> None:
            if self.checkpoint is not None:
                self.checkpoint(KillStep(name, number, unit, ids, files, path))

        check("claimed")
        delete_files(self.rt.storage, batch.files, lambda path: check("file_deleted", path))
        check("files_deleted")
        with self.rt.store.engine.begin() as conn:
            gone = q.delete_claimed(conn, self.task_id, ids)
        if gone != len(ids):
            log.warning("kill %s: %d of %d claimed rows were already deleted", self.task_id, len(ids) - gone, len(ids))
        self._account(batch)
        check("rows_deleted")
        log.info("kill %s: batch %d deleted %d segment(s), %d file(s)", self.task_id, number, len(ids), len(batch.files))

    # -- shared by both ---------------------------------------------------------------------------------------

    def _batch(self, conn: Any, rows: list[q.KillRow], gone: set[str]) -> _Batch:
        """Which files of ``rows`` to delete: those no row outside the batch (and not in ``gone``) points at."""
        specs = q.load_specs(conn, [r.id for r in rows])
        paths = {r.load_path: specs.get(r.id, {}) for r in rows if has_file(r.load_path, specs.get(r.id, {}))}
        inside = gone | {r.id for r in rows}
        files: dict[str, dict[str, Any]] = {}
        kept: dict[str, str] = {}
        for path, sharers in q.sharers(conn, list(paths)).items():
            others = [s for s in sharers if s.id not in inside]
            if not others:
                files[path] = paths[path]
            elif any(s.used for s in others):
                kept[path] = "fileSharedWithUsedSegment"
            else:
                kept[path] = "fileSharedWithOtherSegment"
        return _Batch(rows, files, kept)

    def _account(self, batch: _Batch) -> None:
        self.batches += 1
        self.killed += len(batch.rows)
        self.bytes_killed += sum(r.size for r in batch.rows)
        self.files_deleted += len(batch.files)
        room = MAX_LISTED - len(self.segments)
        self.segments += [r.id for r in batch.rows[:room]]
        self.truncated |= len(batch.rows) > room
        room = MAX_LISTED - len(self.files)
        new_files = sorted(batch.files)
        self.files += new_files[:room]
        self.truncated |= len(new_files) > room
        for path, reason in sorted(batch.kept.items()):
            entry = self.skipped.get(reason) or SkipEntry(why=SKIP_REASONS[reason])
            examples = entry.examples + ([path] if len(entry.examples) < q.SAMPLE_SIZE else [])
            self.skipped[reason] = entry.model_copy(update={"files": entry.files + 1, "examples": examples})

    def _static_skips(self, conn: Any, *, simulate_mark_unused: bool) -> None:
        counts = q.skip_counts(conn, self.ds, self.task.interval, versions=self.task.versions, cutoff=self.cutoff)
        if simulate_mark_unused:
            # markAsUnused marks the used segments inside the interval unused (now); those overlapping it stay used.
            used = counts.pop("used", None)
            if used is not None and used.segments > self.marked_unused:
                counts["used"] = q.SkipCount(used.segments - self.marked_unused, 0, ())
            if self.cutoff is not None and format_instant(self.clock()) > self.cutoff and self.marked_unused:
                recent = counts.get("markedUnusedTooRecently", q.SkipCount(0, 0, ()))
                counts["markedUnusedTooRecently"] = q.SkipCount(recent.segments + self.marked_unused, recent.bytes, recent.examples)
        for reason, count in counts.items():
            key = self.cutoff_reason if reason == "markedUnusedTooRecently" else reason
            self._skip(key, count)

    def _skip(self, reason: str, count: q.SkipCount) -> None:
        if not count.segments:
            return
        entry = self.skipped.get(reason) or SkipEntry(why=SKIP_REASONS[reason])
        self.skipped[reason] = entry.model_copy(
            update={
                "segments": entry.segments + count.segments,
                "bytes": entry.bytes + count.bytes,
                "examples": (entry.examples + list(count.examples))[: q.SAMPLE_SIZE],
            }
        )

    def _candidate_chunks(self, conn: Any) -> list[Interval]:
        """The condensed intervals of the segments this kill would delete (claimed ones and eligible ones)."""
        intervals = {r.interval for r in q.claimed_rows(conn, self.ds, self.task.interval)}
        intervals.update(
            r.interval
            for r in q.eligible_rows(conn, self.ds, self.task.interval, versions=self.task.versions, cutoff=self.cutoff)
        )
        return condense(sorted(intervals))

    def _pieces_avoiding(self, conn: Any, chunk: Interval, blockers: Sequence[Any]) -> list[Interval]:
        """The condensed candidate intervals inside ``chunk`` that overlap none of the ``blockers``' intervals."""
        rows = q.claimed_rows(conn, self.ds, chunk) + q.eligible_rows(
            conn, self.ds, chunk, versions=self.task.versions, cutoff=self.cutoff
        )
        free = {r.interval for r in rows if not any(b.interval.overlaps(r.interval) for b in blockers)}
        return condense(sorted(free))

    def _skip_unlocked(self, conn: Any, units: list[Interval], foreign: list[Any]) -> None:
        """Count the candidates that fall in no locked unit (their interval is held by another task)."""
        rows = q.claimed_rows(conn, self.ds, self.task.interval) + q.eligible_rows(
            conn, self.ds, self.task.interval, versions=self.task.versions, cutoff=self.cutoff
        )
        left = [r for r in rows if not any(u.contains(r.interval) for u in units)]
        if not left:
            return
        holders = sorted({lk.task_id for lk in foreign if any(lk.interval.overlaps(r.interval) for r in left)})
        examples = [f"{r.id} (locked by {', '.join(holders) or 'another task'})" for r in left[: q.SAMPLE_SIZE]]
        self._skip("intervalLocked", q.SkipCount(len(left), sum(r.size for r in left), tuple(examples)))

    def _stopped(self, reason: str, exc: BaseException) -> KillReport:
        with self.rt.store.engine.connect() as conn:
            units = self.units or [self.task.interval]
            left = q.count_remaining(conn, self.ds, units, versions=self.task.versions, cutoff=self.cutoff)
        self._skip(reason, left)
        return self._finish("FAILED", error=str(exc))

    def _finish(self, status: str, error: Optional[str] = None) -> KillReport:
        report = self._report(status, error=error)
        try:
            self.rt.store.set_task_status(self.task_id, status, report=report.druid_report(), error_msg=error)
        except Exception:
            log.exception("kill %s: could not record its %s report", self.task_id, status)
        return report

    def _report(self, status: str, *, dry_run: bool = False, error: Optional[str] = None) -> KillReport:
        return KillReport(
            task_id=self.task_id,
            data_source=self.ds,
            interval=self.task.interval,
            status=status,
            dry_run=dry_run,
            num_segments_killed=self.killed,
            num_batches_processed=self.batches,
            num_segments_marked_as_unused=self.marked_unused,
            bytes_killed=self.bytes_killed,
            num_files_deleted=self.files_deleted,
            segments=self.segments,
            files=self.files,
            listing_truncated=self.truncated,
            locked_intervals=self.units,
            resumed=self.resumed,
            skipped=self.skipped,
            blocked_by=self.blocked_by,
            error=error,
        )
