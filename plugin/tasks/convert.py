"""``convert_segment`` (alias ``version_converter``): rewrite used segments with a new ``indexSpec``.

    submit ─▶ acquire_locks ─▶ plan ─▶ build (one unit per segment) ─▶ publish ─▶ release

Druid's rules (§5.4 of the semantics reference; the seed's docs win where they differ):

* The task locks ``interval`` (widened to cover the segments overlapping it) EXCLUSIVE, priority 0.
* It converts the used segments of the interval (or only ``segment``) whose ``binaryVersion`` is not the current
  one (9), or every one of them with ``force``; without ``force`` it also skips a segment already converted (a used
  segment of the same interval whose version starts with its version and has the current binary version).
* A converted segment keeps its interval, partition and shard spec; its version is the old one with
  ``_converted`` appended (once more on each run), so it sorts above the old one and overshadows it.
* ``validate`` (default true) reads the old and the new segment back and compares them row by row: any difference
  fails the task with nothing published (and the new files deleted).
* Publish, inside the lock's critical section, requires the used segments of the interval to be unchanged and
  marks the segments the converted ones overshadow unused (``overshadowed-by-convert``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pydantic import Field

from druidflow.exceptions import NoSegmentsError, SpecError, TerminalError
from druidflow.intervals import Interval, umbrella
from druidflow.segments.descriptor import BINARY_VERSION, DataSegment
from druidflow.segments.format import read_segment, write_segment
from druidflow.segments.ids import storage_dir
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import ConvertSegmentTask
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import protocol
from druidflow.tasks.compact import held_lock_version
from druidflow.tasks.report import ingestion_report
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

SEGMENT_FILE = "index.parquet"
OVERSHADOWED_BY_CONVERT = "overshadowed-by-convert"


class ConversionValidationError(TerminalError):
    """``validate``: a converted segment does not hold exactly the rows of the original."""


class ConvertUnit(DruidModel):
    """One segment to rewrite, and the version its converted copy gets."""

    segment: DataSegment
    version: str

    @property
    def label(self) -> str:
        return f"{self.segment.interval}#{self.segment.partition_num}"


class ConvertPlan(DruidModel):
    task_id: str
    data_source: str
    interval: Interval
    lock_version: str
    used_segments: list[str]
    build_units: list[ConvertUnit] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)
    index_spec: dict[str, Any]
    validate_rows: bool = True


class ConvertResult(DruidModel):
    task_id: str
    segments: list[DataSegment]
    rows_compared: int = 0


def _used(task: ConvertSegmentTask, rt: Runtime, interval: Interval) -> list[DataSegment]:
    return [s for s in rt.store.used_segments(task.data_source, interval) if not s.is_tombstone]


def _lock_interval(task: ConvertSegmentTask, rt: Runtime) -> Interval:
    used = _used(task, rt, task.interval)
    return umbrella([task.interval] + [s.interval for s in used])


def check(task: ConvertSegmentTask, rt: Runtime) -> None:
    refuse_non_defaults(task)
    if task.index_spec.uses_lzf:
        raise SpecError("indexSpec", task.index_spec.model_dump(), "lzf has no Parquet codec; use lz4, zstd or uncompressed")
    seg = task.segment
    if seg is not None:
        record = rt.store.get_segment(seg.id)
        if record is None:
            raise SpecError("segment", seg.id, f"no such segment of dataSource {task.data_source!r}")
        if not record.used:
            raise SpecError("segment", seg.id, "the segment is unused")
        if record.segment.shard_spec.core_partitions > 1:
            raise SpecError(
                "segment", seg.id, f"its time chunk has {record.segment.shard_spec.core_partitions} partitions, which "
                "must change version together; convert the whole interval instead",
            )


def plan(task: ConvertSegmentTask, rt: Runtime) -> ConvertPlan:
    """Under the lock: which segments to convert (binary-version and already-converted rules) and to which version."""
    interval = _lock_interval(task, rt)
    lock_version = held_lock_version(task, rt, interval)
    used = _used(task, rt, interval)
    if not used:
        raise NoSegmentsError(f"dataSource {task.data_source!r} has no used segment in {task.interval}; nothing to convert")
    candidates = [s for s in used if s.interval.overlaps(task.interval)]
    if task.segment is not None:
        candidates = [s for s in candidates if s.id == task.segment.id]
    units: list[ConvertUnit] = []
    skipped: dict[str, str] = {}
    for s in candidates:
        if not task.force and s.binary_version == BINARY_VERSION:
            skipped[s.id] = f"binaryVersion is already {BINARY_VERSION} (use force to convert anyway)"
            continue
        newer = [o for o in used if o.interval == s.interval and o.version != s.version and o.version.startswith(s.version)
                 and o.binary_version == BINARY_VERSION]
        if newer and not task.force:
            skipped[s.id] = f"already converted as {newer[0].id}"
            continue
        units.append(ConvertUnit(segment=s, version=task.converted_version(s.version)))
    log.info("convert %s: %d of %d segment(s) to convert in %s", task.task_id, len(units), len(candidates), interval)
    return ConvertPlan(
        task_id=task.task_id,
        data_source=task.data_source,
        interval=interval,
        lock_version=lock_version,
        used_segments=sorted(s.id for s in used),
        build_units=units,
        skipped=skipped,
        index_spec=task.index_spec.model_dump(),
        validate_rows=task.validate_segments,
    )


def build(plan: ConvertPlan, unit: ConvertUnit, rt: Runtime) -> ConvertResult:
    """Rewrite one segment with the new indexSpec, push it, and (``validate``) compare it with the original."""
    from druidflow.specs.tuning import IndexSpec

    spec = IndexSpec.parse(plan.index_spec, "indexSpec")
    old = unit.segment
    new = old.model_copy(update={"version": unit.version, "binary_version": BINARY_VERSION})
    key = f"{storage_dir(new.data_source, new.interval, new.version, new.partition_num)}/{SEGMENT_FILE}"
    new = new.model_copy(update={"load_spec": rt.storage.load_spec_for(key)})
    scratch = rt.scratch(f"{plan.task_id[:40]}-convert-")
    try:
        with rt.storage.open_local(old.load_spec) as path:
            rows = read_segment(path, time_as_int=False)
        out = scratch / SEGMENT_FILE
        size = write_segment(
            rows,
            out,
            new,
            dimension_compression=spec.dimension_compression,
            metric_compression=spec.metric_compression,
            long_encoding=spec.long_encoding,
        )
        compared = 0
        if plan.validate_rows:
            compared = _validate(old, rows, read_segment(out, time_as_int=False))
        load_spec = rt.storage.push(out, key)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ConvertResult(task_id=plan.task_id, segments=[new.model_copy(update={"size": size, "load_spec": load_spec})], rows_compared=compared)


def _validate(old: DataSegment, before: pa.Table, after: pa.Table) -> int:
    """Row by row: the same columns, the same rows, in the same order. Returns the number of rows compared."""
    if before.column_names != after.column_names:
        raise ConversionValidationError(
            f"converting {old.id} changed its columns ({before.column_names} -> {after.column_names}); nothing was published"
        )
    if before.num_rows != after.num_rows:
        raise ConversionValidationError(
            f"converting {old.id} changed its row count ({before.num_rows} -> {after.num_rows}); nothing was published"
        )
    for name in before.column_names:
        a, b = _plain(before.column(name)), _plain(after.column(name))
        if not a.equals(b):
            diff = next((i for i, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist())) if x != y), None)
            raise ConversionValidationError(
                f"converting {old.id} changed column {name!r} (first at row {diff}); nothing was published"
            )
    return before.num_rows


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def publish_plan(plan: ConvertPlan, results: Sequence[ConvertResult]) -> protocol.PublishPlan:
    return protocol.PublishPlan(
        task_id=plan.task_id,
        data_source=plan.data_source,
        lock_intervals=[plan.interval],
        segments=[s for r in results for s in r.segments],
        overshadowed_reason=OVERSHADOWED_BY_CONVERT,
        overshadowed_among=[u.segment.id for u in plan.build_units],
        preconditions=[
            protocol.SegmentsUnchanged(interval=plan.interval, segment_ids=plan.used_segments, scope="used", what=f"convert {plan.task_id}")
        ],
    )


class ConvertDefinition(protocol.TaskDefinition):
    """``convert_segment`` on the task protocol."""

    task_types = ("convert_segment",)
    plan_model = ConvertPlan
    unit_model = ConvertUnit
    result_model = ConvertResult

    def check(self, task: ConvertSegmentTask, rt: Runtime) -> None:
        check(task, rt)

    def lock_requests(self, task: ConvertSegmentTask, rt: Runtime) -> list[protocol.LockRequest]:
        return protocol.lock_requests_for(task, [_lock_interval(task, rt)])

    def plan(self, task: ConvertSegmentTask, rt: Runtime) -> ConvertPlan:
        return plan(task, rt)

    def build(self, task: Any, plan: ConvertPlan, unit: ConvertUnit, rt: Runtime) -> ConvertResult:
        return build(plan, unit, rt)

    def build_all(self, task: Any, plan: ConvertPlan, rt: Runtime) -> list[ConvertResult]:
        results: list[ConvertResult] = []
        try:
            for unit in plan.build_units:
                results.append(build(plan, unit, rt))
        except BaseException:
            self.discard(results, rt)  # a failed validation leaves none of this run's files behind
            raise
        return results

    def publish_plan(self, task: Any, plan: ConvertPlan, results: Sequence[ConvertResult], rt: Runtime) -> protocol.PublishPlan:
        return publish_plan(plan, results)

    def report(
        self, task: Any, plan: ConvertPlan, results: Sequence[ConvertResult], outcome: protocol.PublishOutcome,
        publish: protocol.PublishPlan,
    ) -> protocol.TaskReport:
        reports = ingestion_report(plan.task_id, state="COMPLETED", segments_published=len(publish.segments),
                                   segments_read=len(plan.build_units))
        reports["convert"] = {
            "converted": {u.segment.id: u.version for u in plan.build_units},
            "skipped": dict(plan.skipped),
            "rowsCompared": sum(r.rows_compared for r in results),
            "validated": plan.validate_rows,
        }
        return protocol.TaskReport(
            task_id=plan.task_id,
            data_source=plan.data_source,
            status="SUCCESS",
            segments=publish.segments,
            input_segments=[u.segment.id for u in plan.build_units],
            marked_unused=outcome.marked_unused,
            reports=reports,
        )


DEFINITION = ConvertDefinition()


def run(spec: Any, rt: Runtime, *, timeout_s: float = 0) -> protocol.TaskReport:
    """Every step of a convert task in this process."""
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt, timeout_s=timeout_s)

