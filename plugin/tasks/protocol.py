"""The task protocol: what every task type declares, and the generic steps that drive any of them.

    submit ─▶ acquire_locks ─▶ plan ─▶ build (one call per build unit, any process) ─▶ publish ─▶ release

A task type is a :class:`TaskDefinition` (one engine module each, registered in :mod:`druidflow.tasks.registry`)
that says

* :meth:`~TaskDefinition.check` — what must hold before any lock is taken (field-named :class:`SpecError`);
* :meth:`~TaskDefinition.lock_requests` — which intervals it locks, with which lock type and priority (Druid's
  defaults: realtime 75, batch index 50, compact/merge/append 25, others 0; context ``priority`` overrides);
* :meth:`~TaskDefinition.plan` — under the lock: its build units (each independently buildable);
* :meth:`~TaskDefinition.build` — how one unit is built (segments pushed to deep storage, not yet published);
* :meth:`~TaskDefinition.publish_plan` — a :class:`PublishPlan`: the segments to insert, the segments to mark
  unused, and the preconditions (e.g. "the input segments are unchanged") that must hold at publish time;
* :meth:`~TaskDefinition.report` — the task report from the outcome.

:func:`~druidflow.tasks.publisher.execute_publish` is the one transactional publisher: it runs a publish plan inside
the lock's critical section (nothing can revoke the locks meanwhile), checks every segment against the locks and
every precondition, and then writes everything in that one transaction through the metadata store's own functions. Every hand-off
(task, plan, unit, build result, report) is a frozen model that dumps to JSON, so each step can run in its own
Airflow task and pass its output through XCom.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Optional

from pydantic import Field

from druidflow.exceptions import (
    InputChangedError,
    LockNotHeldError,
    LockRevokedError,
    LockUnavailableError,
    SegmentConflictError,
    SpecError,
    TimelineConflictError,
)
from druidflow.intervals import Interval, condense
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import parse_task
from druidflow.specs.unknown_keys import spec_warnings
from druidflow.tasks.publisher import (  # noqa: F401 - the publish plan is part of the protocol a task type speaks
    ChunkVersion,
    Precondition,
    delete_unpublished,
    execute_publish,
)
from druidflow.tasks.publisher import (
    PublishOutcome as PublishOutcome,
)
from druidflow.tasks.publisher import (
    PublishPlan as PublishPlan,
)
from druidflow.tasks.publisher import (
    SegmentsUnchanged as SegmentsUnchanged,
)
from druidflow.tasks.publisher import (
    tombstone as tombstone,
)
from druidflow.tasks.report import ingestion_report
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- hand-offs


class LockRequest(DruidModel):
    """One time-chunk lock a task needs: the interval, the lock type and the priority it asks with."""

    interval: Interval
    lock_type: str = "EXCLUSIVE"
    priority: int = 0


def lock_requests_for(task: Any, intervals: Sequence[Interval]) -> list[LockRequest]:
    """The task's own lock type and priority (from its type's default or its context) on ``intervals``, condensed."""
    return [LockRequest(interval=iv, lock_type=task.lock_type, priority=task.priority) for iv in condense(list(intervals))]


class TaskPlan(DruidModel):
    """The plan of a task type without a plan model of its own: build units plus whatever the type needs."""

    task_id: str
    data_source: str
    build_units: list[dict[str, Any]] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)


class TaskReport(DruidModel):
    """The outcome of a published task of the protocol: its segments, what it marked unused, Druid's report."""

    task_id: str
    data_source: str
    status: str
    segments: list[DataSegment] = Field(default_factory=list)
    input_segments: list[str] = Field(default_factory=list)
    marked_unused: list[str] = Field(default_factory=list)
    reports: dict[str, Any] = Field(default_factory=dict)


# ------------------------------------------------------------------------------------------- a task type


class TaskDefinition:
    """What one task type tells the protocol. Subclass it in the task's engine module and register it.

    ``plan_model``, ``unit_model`` and ``result_model`` parse the JSON hand-offs back (XComs); the defaults suit
    a task whose build units are plain dicts. A task type that does not build segments (``kill``) overrides
    :meth:`run` and declares no build units.
    """

    task_types: ClassVar[tuple[str, ...]] = ()
    plan_model: ClassVar[type[DruidModel]] = TaskPlan
    unit_model: ClassVar[Optional[type[DruidModel]]] = None
    result_model: ClassVar[Optional[type[DruidModel]]] = None
    report_model: ClassVar[type[DruidModel]] = TaskReport

    # -- overridable steps ----------------------------------------------------------------------------------

    def check(self, task: Any, rt: Runtime) -> None:
        """Refuse, with a field-named :class:`SpecError`, what can be known wrong before any lock is taken."""

    def lock_requests(self, task: Any, rt: Runtime) -> list[LockRequest]:
        raise NotImplementedError

    def plan(self, task: Any, rt: Runtime) -> Any:
        raise NotImplementedError

    def build_units(self, plan: Any) -> list[Any]:
        return list(getattr(plan, "build_units", []))

    def unit_label(self, unit: Any) -> str:
        return str(getattr(unit, "label", "") or "")

    def build(self, task: Any, plan: Any, unit: Any, rt: Runtime) -> Any:
        raise NotImplementedError

    def build_all(self, task: Any, plan: Any, rt: Runtime) -> list[Any]:
        """Every unit in this process (the CLI); a type may do it in one pass instead."""
        return [self.build(task, plan, unit, rt) for unit in self.build_units(plan)]

    def publish_plan(self, task: Any, plan: Any, results: Sequence[Any], rt: Runtime) -> PublishPlan:
        raise NotImplementedError

    def report(self, task: Any, plan: Any, results: Sequence[Any], outcome: PublishOutcome, publish: PublishPlan) -> Any:
        return TaskReport(
            task_id=task.task_id,
            data_source=task.data_source,
            status="SUCCESS",
            segments=publish.segments,
            marked_unused=outcome.marked_unused,
            reports=ingestion_report(task.task_id, state="COMPLETED", segments_published=len(publish.segments)),
        )

    def discard(self, results: Sequence[Any], rt: Runtime) -> None:
        """Delete the files the builds pushed that no row points at (after a build step failed half-way)."""
        delete_unpublished([s for r in results for s in getattr(r, "segments", [])], rt)

    def published_before(self, task: Any, rt: Runtime) -> bool:
        """Whether a later publish of this task must publish nothing (an appending task that already succeeded)."""
        return False

    # -- parsing hand-offs ----------------------------------------------------------------------------------

    def parse_task(self, data: Any, path: str = "task") -> Any:
        task = parse_task(data, path) if not hasattr(data, "task_id") else data
        if task.type not in self.task_types:
            raise SpecError(f"{path}.type" if path else "type", task.type, f"not a {'/'.join(self.task_types)} task")
        return task

    def parse_plan(self, data: Any) -> Any:
        return data if isinstance(data, self.plan_model) else self.plan_model.parse(data, "plan")

    def parse_unit(self, data: Any) -> Any:
        if self.unit_model is None or isinstance(data, self.unit_model):
            return data
        return self.unit_model.parse(data, "build_unit")

    def parse_result(self, data: Any) -> Any:
        if self.result_model is None or isinstance(data, self.result_model):
            return data
        return self.result_model.parse(data, "build_results")

    # -- the whole task in one process ----------------------------------------------------------------------

    def run(self, task: Any, rt: Runtime, *, timeout_s: float = 0, **options: Any) -> Any:
        """Every step in this process: the CLI's ``druidflow run``."""
        if options:
            raise SpecError("options", sorted(options), f"not accepted by {task.type}")
        submit(task, rt, self)
        try:
            with rt.lockbox.keep_alive(task.task_id):
                acquire_locks(task, rt, self, timeout_s=timeout_s)
                the_plan = self.plan(task, rt)
                results = self.build_all(task, the_plan, rt)
                return publish(task, the_plan, results, rt, self)
        except BaseException as exc:
            fail(task.task_id, exc, rt)
            raise
        finally:
            release(task.task_id, rt)


# ------------------------------------------------------------------------------------------ generic steps


def definition_for(task_or_type: Any) -> TaskDefinition:
    from druidflow.tasks.registry import definition

    kind = task_or_type if isinstance(task_or_type, str) else task_or_type.type
    return definition(kind)


def submit(spec: Any, rt: Runtime, definition: Optional[TaskDefinition] = None) -> Any:
    """Parse and validate a task, run its pre-lock checks, and record it as RUNNING (no lock is taken)."""
    task = parse_task(spec) if not hasattr(spec, "task_id") else spec
    definition = definition or definition_for(task)
    task = definition.parse_task(task)
    definition.check(task, rt)
    for warning in spec_warnings(task):
        log.warning("task %s: %s", task.task_id, warning)
    if not rt.store.insert_task(task.task_id, task.task_type, task.data_source, task.group_id, task.model_dump()):
        rt.store.set_task_status(task.task_id, "RUNNING")
    return task


def acquire_locks(
    task: Any,
    rt: Runtime,
    definition: Optional[TaskDefinition] = None,
    *,
    requests: Optional[Sequence[LockRequest]] = None,
    timeout_s: float = 0,
) -> list[Any]:
    """Take every lock the task requests, all or none (partial locks are released).

    Raises :class:`LockUnavailableError` (held by a task of equal or higher priority: retry later) or
    :class:`LockRevokedError` (give up).
    """
    if requests is None:
        requests = (definition or definition_for(task)).lock_requests(task, rt)
    held = []
    for request in requests:
        result = try_lock(task, rt, request, timeout_s=timeout_s)
        if result.acquired:
            held.append(result.lock)
            continue
        for lock in held:
            rt.lockbox.release(task.task_id, lock.interval, task.data_source)
        raise lock_error(task, request, result)
    return held


def try_lock(task: Any, rt: Runtime, request: LockRequest, *, timeout_s: float = 0) -> Any:
    """One lock request of ``task`` (waiting up to ``timeout_s``); the lockbox's result."""
    kwargs = dict(
        task_id=task.task_id,
        group_id=task.group_id,
        datasource=task.data_source,
        interval=request.interval,
        lock_type=request.lock_type,
        priority=request.priority,
    )
    return rt.lockbox.lock(**kwargs, timeout=timeout_s) if timeout_s > 0 else rt.lockbox.try_lock(**kwargs)


def lock_error(task: Any, request: LockRequest, result: Any) -> Exception:
    if result.revoked:
        return LockRevokedError(
            f"task {task.task_id}: its lock on {task.data_source} {request.interval} was revoked by a higher-priority "
            "task; nothing was published. Run the task again when the other task is done."
        )
    holders = ", ".join(f"{lk.task_id} (priority {lk.priority})" for lk in getattr(result, "conflicts", ()) or ())
    return LockUnavailableError(
        f"task {task.task_id} (priority {request.priority}): {task.data_source} {request.interval} is locked by "
        f"{holders or 'a task of equal or higher priority'}; retry later"
    )


def plan(task: Any, rt: Runtime, definition: Optional[TaskDefinition] = None) -> Any:
    return (definition or definition_for(task)).plan(task, rt)


def build(task: Any, the_plan: Any, unit: Any, rt: Runtime, definition: Optional[TaskDefinition] = None) -> Any:
    definition = definition or definition_for(task)
    the_plan = None if the_plan is None else definition.parse_plan(the_plan)  # index builds from the unit alone
    return definition.build(task, the_plan, definition.parse_unit(unit), rt)


def publish(task: Any, the_plan: Any, results: Sequence[Any], rt: Runtime, definition: Optional[TaskDefinition] = None) -> Any:
    """Build the task's publish plan, execute it (recording SUCCESS with the report in the same transaction), and
    return the report. ``task`` may be None for a type whose plan names its task (``compact``).

    A publish that failed for good (revoked lock, changed input, conflict) deletes the files the builds pushed. Segment
    ids another attempt of this task already published stand: this attempt's files go and the stored segments are
    reported. A task that already published once (``published_before``) publishes nothing more.
    """
    definition = definition or definition_for(task)
    the_plan = definition.parse_plan(the_plan)
    results = [definition.parse_result(r) for r in results]
    publish_plan = definition.publish_plan(task, the_plan, results, rt)
    built = list(publish_plan.segments)
    reported: list[Any] = []

    def record(conn: Any, outcome: PublishOutcome) -> None:
        report = definition.report(task, the_plan, results, outcome, publish_plan.model_copy(update={"segments": outcome.segments}))
        reports = report.reports if hasattr(report, "reports") else report.druid_report()
        message = (reports.get("ingestionStatsAndErrors") or {}).get("payload", {}).get("errorMsg") if isinstance(reports, dict) else None
        rt.store.set_task_status(publish_plan.task_id, "SUCCESS", report=reports, error_msg=message, conn=conn)
        reported.append(report)

    if task is not None and definition.published_before(task, rt):
        delete_unpublished(built, rt)
        log.warning("task %s already published; the segments of this later attempt were discarded", publish_plan.task_id)
        with rt.store.engine.begin() as conn:
            record(conn, PublishOutcome())
        return reported[-1]
    try:
        execute_publish(publish_plan, rt, record)
    except SegmentConflictError:
        delete_unpublished(built, rt)
        stored = [rt.store.get_segment(s.id) for s in built]
        present = [r for r in stored if r is not None and r.used]
        if len(present) != len(stored):
            raise
        # Another attempt of this task published these very ids: that publish stands, this attempt's files go.
        with rt.store.engine.begin() as conn:
            record(conn, PublishOutcome(already_present=[s.id for s in built], segments=[r.segment for r in present]))
    except (InputChangedError, LockRevokedError, LockNotHeldError, TimelineConflictError, SpecError) as exc:
        log.warning("task %s: publish refused (%s); deleting the files its builds pushed", publish_plan.task_id, exc)
        delete_unpublished(built, rt)  # the transaction rolled back: nothing points at these files
        raise
    return reported[-1]


def release(task_id: str, rt: Runtime) -> int:
    """Release every lock of the task and forget the segment ids it allocated (idempotent): the task is over."""
    rt.store.delete_pending_segments(None, task_id)
    return rt.lockbox.release_all(task_id)


def heartbeat(task_id: str, rt: Runtime) -> int:
    """Renew the task's lock leases; raises :class:`LockRevokedError` once one was revoked (stop working)."""
    return rt.lockbox.heartbeat(task_id, raise_revoked=True)


def fail(task_id: str, error: BaseException | str, rt: Runtime) -> None:
    """Record the task as FAILED with the error's message (a task never recorded is left alone)."""
    message = str(error) if not isinstance(error, str) else error
    record = rt.store.get_task(task_id)
    if record is None:
        return
    report = record.report if getattr(record, "report", None) else ingestion_report(task_id, state="COMPLETED", error=message)
    rt.store.set_task_status(task_id, "FAILED", report=report, error_msg=message)
    rt.store.delete_pending_segments(None, task_id)


def run(spec: Any, rt: Runtime, **options: Any) -> Any:
    """Validate and run any registered task type in this process; returns its report."""
    task = parse_task(spec) if not hasattr(spec, "task_id") else spec
    return definition_for(task).run(task, rt, **options)
