"""``index_parallel`` on the task protocol: the checks, the publish plan and report of ``index``, and every phase
chained in one process (``druidflow run``), each sub-task retried up to ``maxRetry`` times as Druid's supervisor
task does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from druidflow.exceptions import RetryableError, SpecError
from druidflow.inputs.splits import SegmentsSplitHint, parse_split_hint
from druidflow.specs.tasks import IndexTask
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import index, protocol
from druidflow.tasks.index import BuildResult, IndexReport
from druidflow.tasks.parallel.handoffs import HONOURED, FinalPlan, MergeUnit, ParallelPlan, max_retry
from druidflow.tasks.parallel.merge_phase import cleanup, final_plan, merge, merges
from druidflow.tasks.parallel.partial_phase import partial
from druidflow.tasks.parallel.split_planning import decide, plan, scan
from druidflow.tasks.publisher import PublishPlan
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")


class ParallelDefinition(protocol.TaskDefinition):
    """``index_parallel`` on the task protocol: the publish plan, report and locks of ``index``; its own phases.

    The protocol dispatches on ``plan_model``/``unit_model``, so the hooks below take this task's own models (its
    plans and merge units) and hand ``index``'s shared steps (locks, publish plan, re-run check) to ``index``."""

    task_types = ("index_parallel",)
    plan_model = FinalPlan
    unit_model = MergeUnit
    result_model = BuildResult
    report_model = IndexReport

    def check(self, task: IndexTask, rt: Runtime) -> None:
        refuse_non_defaults(task, allowed=HONOURED)
        index.check_writable(task, refuse=False)
        index.check_local_input(task)
        source = task.spec.io_config.input_source
        if source.type not in ("druid", "local", "s3", "http", "inline"):
            raise SpecError("spec.ioConfig.inputSource.type", source.type, "index_parallel reads files or one dataSource's segments (druid)")
        if task.spec.tuning_config.type != "index_parallel":
            raise SpecError("spec.tuningConfig.type", task.spec.tuning_config.type, "an index_parallel task takes tuningConfig type index_parallel")
        hint = parse_split_hint(task.spec.tuning_config.split_hint_spec)
        if isinstance(hint, SegmentsSplitHint) and source.type != "druid":
            raise SpecError("spec.tuningConfig.splitHintSpec.type", "segments", "splits a druid input source; files take maxSize")

    def lock_requests(self, task: IndexTask, rt: Runtime) -> list[protocol.LockRequest]:
        return index.DEFINITION.lock_requests(task, rt)

    def published_before(self, task: IndexTask, rt: Runtime) -> bool:
        return index.DEFINITION.published_before(task, rt)

    def plan(self, task: IndexTask, rt: Runtime) -> ParallelPlan:
        return plan(task, rt)

    def build(self, task: IndexTask, the_plan: Any, unit: MergeUnit, rt: Runtime) -> BuildResult:
        return merge(task, unit, rt)

    def unit_label(self, unit: Any) -> str:
        return unit.label

    def publish_plan(
        self, task: IndexTask, the_plan: FinalPlan, results: Sequence[BuildResult], rt: Runtime
    ) -> PublishPlan:
        return index.publish_plan(task, the_plan, results)

    def report(
        self, task: IndexTask, the_plan: FinalPlan, results: Sequence[BuildResult], outcome: protocol.PublishOutcome, publish: PublishPlan
    ) -> IndexReport:
        build = BuildResult(task_id=task.task_id, segments=[], row_stats=the_plan.build_row_stats, unparseable_events=the_plan.build_unparseable_events)
        reports = index.index_report(task.task_id, the_plan, [build], len(publish.segments))
        return IndexReport(task_id=task.task_id, data_source=task.data_source, status="SUCCESS", segments=publish.segments, reports=reports)

    def run(self, task: IndexTask, rt: Runtime, *, timeout_s: float = 0, **options: Any) -> IndexReport:
        """Every phase in this process, one split after another (``druidflow run``)."""
        if options:
            raise SpecError("options", sorted(options), f"not accepted by {task.type}")
        protocol.submit(task, rt, self)
        try:
            with rt.lockbox.keep_alive(task.task_id):
                protocol.acquire_locks(task, rt, self, timeout_s=timeout_s)
                the_plan = plan(task, rt)
                if the_plan.scan:
                    the_plan = decide(task, the_plan, [_retrying(task, scan, task, the_plan, s, rt) for s in the_plan.splits], rt)
                partials = [_retrying(task, partial, task, the_plan, s, rt) for s in the_plan.splits]
                units = merges(task, the_plan, partials, rt)
                results = [merge(task, u, rt) for u in units]
                return protocol.publish(task, final_plan(task, the_plan, units, partials), results, rt, self)
        except BaseException as exc:
            protocol.fail(task.task_id, exc, rt)
            raise
        finally:
            cleanup(task.task_id, rt)
            protocol.release(task.task_id, rt)


def _retrying(task: IndexTask, step: Callable[..., T], *args: Any) -> T:
    """A sub-task retried up to ``maxRetry`` times on a retryable error, as Druid's supervisor task does."""
    for attempt in range(max_retry(task) + 1):
        try:
            return step(*args)
        except RetryableError as exc:
            if attempt == max_retry(task):
                raise
            log.warning("task %s: a sub-task failed (%s); retrying (%d/%d)", task.task_id, exc, attempt + 1, max_retry(task))
    raise AssertionError("unreachable")


DEFINITION = ParallelDefinition()


def run(spec: Any, rt: Runtime) -> IndexReport:
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt)
