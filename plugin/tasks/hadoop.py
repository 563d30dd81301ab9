"""The ``index_hadoop`` task on the task protocol: Druid's Hadoop batch ingestion, its build run as a Spark job.

    submit ─▶ acquire_locks ─▶ plan (one build unit: the Spark job) ─▶ build (spark_build.run_build) ─▶ publish ─▶ release

The input paths are resolved (:mod:`druidflow.tasks.hadoop_paths`) and the task becomes the ``index_parallel``
task it is (:meth:`~druidflow.specs.hadoop_task.HadoopIndexTask.index_task`); the Spark job runs that task's
scan, partial and merge phases on its executors. Locks, versions and the one-transaction publish stay with
Druidflow, in the driver, as for every task: the build's result carries the final plan (chunks found in the data
are locked while the job runs), and the publish plan and report are the index task's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.hadoop_task import HadoopIndexTask
from druidflow.specs.unknown_keys import spec_warnings
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import index, protocol
from druidflow.tasks.hadoop_paths import resolve_input
from druidflow.tasks.index import BuildResult, IndexReport
from druidflow.tasks.parallel import FinalPlan
from druidflow.tasks.publisher import delete_unpublished
from druidflow.tasks.runtime import Runtime


class SparkUnit(DruidModel):
    """The one build unit of an ``index_hadoop`` task: its Spark job."""

    task_id: str
    label: str = "spark-job"


class HadoopPlan(DruidModel):
    task_id: str
    data_source: str
    build_units: list[SparkUnit] = Field(default_factory=list)


class HadoopBuildResult(DruidModel):
    """The Spark job's pushed segments and the final plan (chunks, versions, counters) the publish needs."""

    task_id: str
    segments: list[DataSegment] = Field(default_factory=list)
    final_plan: FinalPlan


def as_index_task(task: HadoopIndexTask) -> Any:
    """The ``index_parallel`` task ``task`` runs as, over its input paths as listed now."""
    return task.index_task(resolve_input(task))


class HadoopDefinition(protocol.TaskDefinition):
    task_types = ("index_hadoop",)
    plan_model = HadoopPlan
    unit_model = SparkUnit
    result_model = HadoopBuildResult
    report_model = IndexReport

    def check(self, task: HadoopIndexTask, rt: Runtime) -> None:
        refuse_non_defaults(task)  # resource, indexSpec, dimension schemas: what Druidflow cannot honour
        itask = as_index_task(task)  # a path that matches nothing fails here, before any lock
        index.check_writable(itask, refuse=False)

    def lock_requests(self, task: HadoopIndexTask, rt: Runtime) -> list[protocol.LockRequest]:
        return protocol.lock_requests_for(task, task.spec.data_schema.granularity_spec.bucket_intervals() or [])

    def plan(self, task: HadoopIndexTask, rt: Runtime) -> HadoopPlan:
        return HadoopPlan(task_id=task.task_id, data_source=task.data_source, build_units=[SparkUnit(task_id=task.task_id)])

    def unit_label(self, unit: Any) -> str:
        return str(unit.label)

    def build(self, task: HadoopIndexTask, plan: Any, unit: Any, rt: Runtime) -> HadoopBuildResult:
        from druidflow.tasks.spark_build import run_build

        tuning = task.spec.tuning_config
        final, results = run_build(as_index_task(task), tuning.spark_conf(), rt, combine_text=tuning.combine_text)
        return HadoopBuildResult(task_id=task.task_id, segments=[s for r in results for s in r.segments], final_plan=final)

    def discard(self, results: Sequence[Any], rt: Runtime) -> None:
        delete_unpublished([s for r in results for s in _segments(r)], rt)

    def publish_plan(self, task: HadoopIndexTask, plan: Any, results: Sequence[HadoopBuildResult], rt: Runtime) -> protocol.PublishPlan:
        final = _final(task, results)
        return index.publish_plan(_publish_task(task), final, [_build_result(r) for r in results])

    def report(
        self, task: HadoopIndexTask, plan: Any, results: Sequence[HadoopBuildResult], outcome: protocol.PublishOutcome, publish: protocol.PublishPlan
    ) -> IndexReport:
        final = _final(task, results)
        build = BuildResult(task_id=task.task_id, segments=[], row_stats=final.build_row_stats, unparseable_events=final.build_unparseable_events)
        reports = index.index_report(task.task_id, final, [build], len(publish.segments), warnings=spec_warnings(task))
        return IndexReport(task_id=task.task_id, data_source=task.data_source, status="SUCCESS", segments=publish.segments, reports=reports)


def _segments(result: Any) -> list[DataSegment]:
    return list(getattr(result, "segments", []))


def _build_result(result: HadoopBuildResult) -> BuildResult:
    return BuildResult(task_id=result.task_id, segments=_segments(result))


def _final(task: HadoopIndexTask, results: Sequence[HadoopBuildResult]) -> FinalPlan:
    if len(results) != 1:
        from druidflow.exceptions import SpecError

        raise SpecError("build_results", len(results), "an index_hadoop task has exactly one build (its Spark job)")
    return results[0].final_plan


def _publish_task(task: HadoopIndexTask) -> Any:
    """The index task for the publish: its input source does not matter any more (the files were read), so the
    paths are not listed again; its ioConfig and partitioning decide the publish plan."""
    from druidflow.specs.io import InlineInputSource

    return task.index_task(InlineInputSource(data="-"))


DEFINITION = HadoopDefinition()


def run(spec: Any, rt: Runtime) -> IndexReport:
    """Every step in this process, the Spark job in local mode unless jobProperties name a master."""
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt)
