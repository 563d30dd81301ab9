"""``append``, ``merge`` and ``same_interval_merge``: several segments of a dataSource become one (Druid <= 0.14).

    submit ─▶ acquire_locks ─▶ plan ─▶ build (one unit) ─▶ publish ─▶ release

Druid's rules (§5.1–5.3 of the semantics reference) kept here:

* **Input.** ``append`` and ``merge`` name their segments (full segment objects of one dataSource, unsharded);
  ``same_interval_merge`` takes every used segment overlapping its ``interval``. Before any lock is taken, every
  listed segment must exist and be used, and the used segments overlapping their umbrella interval must be exactly
  the listed ones (Druid's ``isReady``); ``append`` also needs the segments' intervals to be adjacent (no gap).
  Each mistake is a :class:`~druidflow.exceptions.SpecError` naming ``segments[i]``.
* **Lock** EXCLUSIVE on the umbrella interval, at priority 25 (context ``priority`` overrides).
* **Output**: exactly one segment over the umbrella interval, at the lock's version (so it overshadows the inputs).
  ``merge`` re-applies the combining form of ``aggregations`` and, with ``rollup`` (default true), combines rows with
  equal timestamp and dimensions; ``append`` concatenates the visible rows of its inputs without rollup (metrics
  keep their values; ``aggregations`` name them, else the inputs' own aggregators are used). Dimensions: the longest
  input list when every input's dimensions appear in it in order, otherwise all of them sorted.
* **Publish** inside the lock's critical section, on the condition that the used segments are still the inputs;
  the inputs the new segment overshadows are marked unused in the same transaction (``overshadowed-by-merge`` /
  ``overshadowed-by-append``) so that a kill can find them.

The rows go through the index task's own build (:mod:`druidflow.tasks.index`) with the ``druid`` input source, as
compaction does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Union

from pydantic import Field

from druidflow.aggregators import merge_aggregators
from druidflow.exceptions import InputChangedError, NoSegmentsError, SpecError
from druidflow.intervals import Interval, format_instant, umbrella
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.dimensions import DimensionSchema, DimensionsSpec, DimensionType
from druidflow.specs.tasks import (
    AppendTask,
    IndexTask,
    MergeTask,
    SameIntervalMergeTask,
    parse_index_task,
)
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import index, protocol
from druidflow.tasks.compact import held_lock_version
from druidflow.tasks.compact_schema import column_types, stored_form
from druidflow.tasks.index import BuildResult, BuildUnit, IndexPlan
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

MergeLike = Union[AppendTask, MergeTask, SameIntervalMergeTask]

# The reader of a re-indexed segment: __time comes back as epoch milliseconds.
_TIMESTAMP_SPEC = {"column": "__time", "format": "millis"}
# One output segment whatever the row count (dynamic partitioning would cut at 5 million rows).
_ONE_SEGMENT = 2**31 - 1


class MergePlan(DruidModel):
    """What :func:`plan` decided under the lock: the inputs and the index task that writes their one output."""

    task_id: str
    task_type: str
    data_source: str
    interval: Interval
    lock_version: str
    input_segments: list[str]
    input_rows: int = 0
    index_task: dict[str, Any]
    index_plan: IndexPlan
    dimensions: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)

    @property
    def build_units(self) -> list[BuildUnit]:
        return list(self.index_plan.build_units)


# ---------------------------------------------------------------------------------------------------- input


def _inputs(task: MergeLike, rt: Runtime, conn: Any = None) -> tuple[Interval, list[DataSegment]]:
    """The umbrella interval and the segments the task merges (for ``same_interval_merge``: the used ones now)."""
    if isinstance(task, SameIntervalMergeTask):
        used = [s for s in rt.store.used_segments(task.data_source, task.interval, conn=conn) if not s.is_tombstone]
        if not used:
            raise NoSegmentsError(f"dataSource {task.data_source!r} has no used segment in {task.interval}; nothing to merge")
        return umbrella([task.interval] + [s.interval for s in used]), used
    return task.interval, list(task.segments)


def check_input(task: MergeLike, rt: Runtime) -> None:
    """Before any lock: the listed segments exist, are used, are all the used segments of their umbrella
    interval, and (``append``) have adjacent intervals. Each failure names the field."""
    if isinstance(task, SameIntervalMergeTask):
        return
    for i, seg in enumerate(task.segments):
        record = rt.store.get_segment(seg.id)
        if record is None:
            raise SpecError(f"segments[{i}]", seg.id, f"no such segment of dataSource {task.data_source!r}")
        if not getattr(record, "used", True):
            raise SpecError(f"segments[{i}]", seg.id, "the segment is unused (mark it used, or leave it out)")
    if isinstance(task, AppendTask):
        _check_adjacent(task.segments)
    listed = {s.id for s in task.segments}
    extra = sorted(s.id for s in rt.store.used_segments(task.data_source, task.interval) if s.id not in listed and not s.is_tombstone)
    if extra:
        raise SpecError(
            "segments", f"{len(extra)} more", f"the used segments of {task.interval} are more than the listed ones: "
            f"{', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}; list every used segment of the interval",
        )


def _check_adjacent(segments: Sequence[DataSegment]) -> None:
    order = sorted(range(len(segments)), key=lambda i: (segments[i].interval.start, segments[i].interval.end))
    reach = segments[order[0]].interval.end
    for i in order[1:]:
        iv = segments[i].interval
        if iv.start > reach:
            raise SpecError(
                f"segments[{i}].interval", str(iv), f"is not adjacent to the segments before it (they end at "
                f"{format_instant(reach)}); append needs intervals without gaps",
            )
        reach = max(reach, iv.end)


# ---------------------------------------------------------------------------------------------------- plan


def plan(task: MergeLike, rt: Runtime) -> MergePlan:
    """Under the lock: the inputs must still be the used segments of the umbrella interval; plan the one output."""
    interval, segments = _inputs(task, rt)
    lock_version = held_lock_version(task, rt, interval)
    used = sorted(s.id for s in rt.store.used_segments(task.data_source, interval) if not s.is_tombstone)
    wanted = sorted(s.id for s in segments)
    if used != wanted:
        raise InputChangedError(
            f"task {task.task_id}: the used segments of {interval} are no longer the ones to merge "
            f"({len(used)} used, {len(wanted)} listed); nothing was published"
        )
    by_id = {s.id: s for s in rt.store.used_segments(task.data_source, interval)}
    inputs = [by_id[sid] for sid in wanted]  # the stored payloads, not the spec's copies
    dims = _dimensions(inputs, rt)
    metrics = _metrics(task, inputs)
    rollup = False if isinstance(task, AppendTask) else task.rollup
    index_task = _index_task(task, interval, dims, metrics, rollup)
    index_plan = index.determine_partitions(index_task, rt)
    log.info("%s %s: %d segment(s) of %s -> one segment at version %s", task.type, task.task_id, len(inputs), interval, lock_version)
    return MergePlan(
        task_id=task.task_id,
        task_type=task.type,
        data_source=task.data_source,
        interval=interval,
        lock_version=lock_version,
        input_segments=wanted,
        input_rows=sum(s.num_rows for s in inputs),
        index_task=index_task.model_dump(),
        index_plan=index_plan,
        dimensions=[d if isinstance(d, str) else d["name"] for d in dims.model_dump()["dimensions"]],
        metrics=[m.name for m in metrics],
    )


def _dimensions(segments: Sequence[DataSegment], rt: Runtime) -> DimensionsSpec:
    """Druid's merged order: the longest input list if every input's dimensions appear in it in that order,
    otherwise every dimension sorted. Types come from the newest segment that has the dimension."""
    lists = [s.dimension_names for s in segments]
    longest = max(lists, key=len) if lists else []
    if all(_in_order(dims, longest) for dims in lists):
        order = list(longest)
    else:
        order = sorted({d for dims in lists for d in dims})
    types: dict[str, DimensionType] = {}
    for segment in sorted(segments, key=lambda s: s.version, reverse=True):
        missing = [d for d in segment.dimension_names if d not in types]
        if missing:
            found = column_types(segment, rt)
            types.update((d, found.get(d, "string")) for d in missing)
    return DimensionsSpec(dimensions=[d if types.get(d, "string") == "string" else DimensionSchema(type=types[d], name=d) for d in order])


def _in_order(dims: Sequence[str], template: Sequence[str]) -> bool:
    it = iter(template)
    return all(any(d == t for t in it) for d in dims)


def _metrics(task: MergeLike, segments: Sequence[DataSegment]) -> list[Any]:
    """The combining form of ``aggregations`` (first/last read their stored time column), else the inputs' own."""
    given = getattr(task, "aggregations", None)
    if given:
        return merge_aggregators([[stored_form(a.model_dump()) for a in given]], "aggregations")
    for s in segments:
        if s.metric_names and not s.aggregators:
            raise SpecError("aggregations", None, f"segment {s.id} records no aggregators for its metrics {s.metric_names}; give aggregations")
    return merge_aggregators([[stored_form(a) for a in s.aggregators] for s in segments], "aggregations")


def _index_task(task: MergeLike, interval: Interval, dims: DimensionsSpec, metrics: list[Any], rollup: bool) -> IndexTask:
    tuning: dict[str, Any] = {
        "type": "index",
        "partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": _ONE_SEGMENT, "maxTotalRows": _ONE_SEGMENT},
    }
    if task.index_spec is not None:
        tuning["indexSpec"] = task.index_spec.model_dump()
    spec = {
        "type": "index",
        "id": task.task_id,  # the same id: the re-index runs under this task's locks
        "context": {**task.context, "priority": task.priority},
        "spec": {
            "dataSchema": {
                "dataSource": task.data_source,
                "timestampSpec": dict(_TIMESTAMP_SPEC),
                "dimensionsSpec": dims.model_dump(),
                "metricsSpec": [m.model_dump() for m in metrics],
                "granularitySpec": {"type": "arbitrary", "intervals": [str(interval)], "queryGranularity": "NONE", "rollup": rollup},
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "druid", "dataSource": task.data_source, "interval": str(interval)},
                "appendToExisting": False,
            },
            "tuningConfig": tuning,
        },
    }
    try:
        return parse_index_task(spec)
    except SpecError as exc:
        raise SpecError(exc.path.replace("spec.dataSchema.", "", 1), exc.value, f"{exc.reason} (in the merge's re-indexing spec)") from None


# ---------------------------------------------------------------------------------------------------- the type


def publish_plan(plan: MergePlan, results: Sequence[BuildResult]) -> protocol.PublishPlan:
    segments = index.publish_plan(parse_index_task(plan.index_task), plan.index_plan, results).segments
    return protocol.PublishPlan(
        task_id=plan.task_id,
        data_source=plan.data_source,
        lock_intervals=[plan.interval],
        segments=segments,
        overshadowed_reason=f"overshadowed-by-{'append' if plan.task_type == 'append' else 'merge'}",
        overshadowed_among=plan.input_segments,
        preconditions=[
            protocol.SegmentsUnchanged(
                interval=plan.interval, segment_ids=plan.input_segments, scope="used", what=f"{plan.task_type} {plan.task_id}"
            )
        ],
    )


class MergeDefinition(protocol.TaskDefinition):
    """``append``, ``merge`` and ``same_interval_merge`` on the task protocol."""

    task_types = ("append", "merge", "same_interval_merge")
    plan_model = MergePlan
    unit_model = BuildUnit
    result_model = BuildResult

    def check(self, task: MergeLike, rt: Runtime) -> None:
        refuse_non_defaults(task)
        if task.index_spec is not None and task.index_spec.uses_lzf:
            raise SpecError("indexSpec", task.index_spec.model_dump(), "lzf has no Parquet codec; use lz4, zstd or uncompressed")
        check_input(task, rt)

    def lock_requests(self, task: MergeLike, rt: Runtime) -> list[protocol.LockRequest]:
        interval, _ = _inputs(task, rt)
        return protocol.lock_requests_for(task, [interval])

    def plan(self, task: MergeLike, rt: Runtime) -> MergePlan:
        return plan(task, rt)

    def build(self, task: Any, plan: MergePlan, unit: BuildUnit, rt: Runtime) -> BuildResult:
        return index.build(parse_index_task(plan.index_task), unit, rt)

    def publish_plan(self, task: Any, plan: MergePlan, results: Sequence[BuildResult], rt: Runtime) -> protocol.PublishPlan:
        return publish_plan(plan, results)

    def report(
        self, task: Any, plan: MergePlan, results: Sequence[BuildResult], outcome: protocol.PublishOutcome,
        publish: protocol.PublishPlan,
    ) -> protocol.TaskReport:
        reports = index.index_report(plan.task_id, plan.index_plan, results, len(publish.segments), segments_read=len(plan.input_segments))
        return protocol.TaskReport(
            task_id=plan.task_id,
            data_source=plan.data_source,
            status="SUCCESS",
            segments=publish.segments,
            input_segments=plan.input_segments,
            marked_unused=outcome.marked_unused,
            reports=reports,
        )


DEFINITION = MergeDefinition()


def run(spec: Any, rt: Runtime, *, timeout_s: float = 0) -> protocol.TaskReport:
    """Every step of an append, merge or same_interval_merge task in this process."""
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt, timeout_s=timeout_s)
