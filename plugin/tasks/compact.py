"""The ``compact`` task: re-index the visible segments of an interval into fewer, better segments.

    submit ─▶ acquire_locks ─▶ plan ─▶ build (one call per BuildUnit) ─▶ publish ─▶ release

Druid's rules (§3 of the semantics reference) kept here:

* **Lock the umbrella interval.** The requested interval is widened until it covers every segment visible in it
  (and, with a target ``segmentGranularity``, whole output buckets), so no row of a segment being replaced is left
  out; that interval is locked EXCLUSIVE (or REPLACE with ``useConcurrentLocks``) at priority 25 by default, so
  batch (50) and realtime (75) ingestion preempt a compaction.
* **Read only visible segments**, through the ``druid`` input source (complete partition sets, highest version,
  partial overshadowing honoured).
* **Check the input.** A ``segments`` inputSpec must equal the visible set, a ``sha256OfSortedSegmentIds`` must
  match it; otherwise :class:`~druidflow.exceptions.InputChangedError`. An interval with no segment fails with
  :class:`~druidflow.exceptions.NoSegmentsError`. Both checks run again inside the publish transaction, under
  the lock, right before the new segments are written.
* **Infer what is not given**: dimensions newest segment first (each takes its position and type from the newest
  segment that has it), metrics in their combining form (``count`` becomes ``longSum`` of ``count``), rollup only
  if every input was rolled up, the finest query granularity, and the inputs' own segment intervals unless a
  ``segmentGranularity`` is given (so HOUR segments can become DAY segments).
* **Re-index through the index task's own steps** (:mod:`druidflow.tasks.index`): same build, same publish
  (one transaction in the lock's critical section, core partition sets filled in, so each chunk switches to the
  new version atomically). The new version is the compaction lock's, newer than every input's, so the output
  overshadows the inputs.
* In that same publish transaction the inputs the output now overshadows are marked unused with the reason
  ``overshadowed-by-compaction`` (so a later kill can find them), and every output segment records
  ``lastCompactionState`` (:mod:`druidflow.compaction.state`) for the auto-compaction scheduler.

A revoked lock, changed input or missing lock fails the publish before anything is written; the files the build
pushed are then deleted, since no segment row can ever point at them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from pydantic import Field

from druidflow.aggregators import merge_aggregators
from druidflow.compaction.state import compaction_state
from druidflow.exceptions import (
    InputChangedError,
    LockNotHeldError,
    LockRevokedError,
    MetadataError,
    NoSegmentsError,
    SpecError,
)
from druidflow.granularity import Granularity
from druidflow.ingest.rollup import companion_time_column
from druidflow.intervals import ETERNITY, Interval, umbrella
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import TombstoneShardSpec
from druidflow.segments.timeline import Timeline
from druidflow.specs.base import DruidModel
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.tasks import CompactTask, IndexTask, SpecificSegmentsSpec, parse_task
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.specs.tuning import IndexTuningConfig
from druidflow.tasks import index
from druidflow.tasks.index import BuildResult, BuildUnit, IndexPlan
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

#: ``unused_reason`` of the inputs a compaction overshadowed (Druid's "overshadowed", with its cause).
OVERSHADOWED_BY_COMPACTION = "overshadowed-by-compaction"

# Standard granularities, finest first: the one a kept segment interval is a single bucket of names it.
_STANDARD_GRANULARITIES = tuple(
    Granularity.parse(name)
    for name in ("SECOND", "MINUTE", "FIVE_MINUTE", "TEN_MINUTE", "FIFTEEN_MINUTE", "THIRTY_MINUTE", "HOUR",
                 "SIX_HOUR", "EIGHT_HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR")
)  # fmt: skip

# The reader of a re-indexed segment: __time comes back as epoch milliseconds.
_TIMESTAMP_SPEC = {"column": "__time", "format": "millis"}


class CompactionPlan(DruidModel):
    """What :func:`plan` decided under the lock: the input segments, the index task that re-indexes them and its plan.

    Serialisable, so the Airflow steps hand it over as JSON.
    """

    task_id: str
    data_source: str
    interval: Interval
    read_interval: Interval
    lock_version: str
    input_segments: list[str]
    input_rows: int = 0
    input_bytes: int = 0
    index_task: dict[str, Any]
    index_plan: IndexPlan
    compaction_state: Optional[dict[str, Any]] = None
    drop_existing: bool = False
    inferred: list[str] = Field(default_factory=list)

    @property
    def build_units(self) -> list[BuildUnit]:
        return list(self.index_plan.build_units)


class CompactionReport(DruidModel):
    """The outcome of a published compaction."""

    task_id: str
    data_source: str
    status: str
    interval: Interval
    read_interval: Interval
    input_segments: list[str]
    segments: list[DataSegment]
    marked_unused: list[str] = Field(default_factory=list)
    reports: dict[str, Any]


class InputSelection(NamedTuple):
    """The visible segments a compaction reads, and the interval that covers them."""

    read_interval: Interval
    segments: list[DataSegment]
    """Every non-tombstone segment visible in ``read_interval`` (what is read and replaced)."""
    requested: list[DataSegment]
    """The non-tombstone segments visible in the *requested* interval (what the segment list / hash checks see)."""


def sha256_of_segment_ids(ids: Sequence[str]) -> str:
    """SHA-256 over the sorted segment ids, concatenated (UTF-8), in hex: Druid's ``SegmentUtils.hashIds``, except
    that Druid decodes the digest bytes as UTF-8 (a lossy string no JSON client can reproduce) where Druidflow
    writes the hex digest, which is what ``sha256OfSortedSegmentIds`` is validated as."""
    digest = hashlib.sha256()
    for sid in sorted(ids):
        digest.update(sid.encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------- steps


def submit(spec: Any, rt: Runtime) -> CompactTask:
    """Parse and validate a compact task (a :class:`SpecError` before any work) and record it as RUNNING."""
    task = spec if isinstance(spec, CompactTask) else parse_task(spec)
    if not isinstance(task, CompactTask):
        raise SpecError("type", task.type, "not a compact task")
    _check_spec(task)
    rt.store.insert_task(task.task_id, task.task_type, task.data_source, task.group_id, task.model_dump())
    return task


def _check_spec(task: CompactTask) -> None:
    refuse_non_defaults(task)
    tuning = task.tuning_config
    if tuning is not None and tuning.index_spec.uses_lzf:
        raise SpecError("tuningConfig.indexSpec", tuning.index_spec.model_dump(), "lzf has no Parquet codec; use lz4, zstd or uncompressed")
    target = _target_granularity(task)
    iv = task.interval
    if target is not None and iv is not None and not task.io_config.allow_non_aligned_interval and not _is_aligned(iv, target):
        raise SpecError(
            "ioConfig.inputSpec.interval",
            str(iv),
            f"is not aligned with segmentGranularity {target}; align it, or set ioConfig.allowNonAlignedInterval=true "
            "to compact the whole buckets it touches",
        )


def select_input(task: CompactTask, rt: Runtime, *, conn: Any = None) -> InputSelection:
    """The visible segments of the task's interval, widened until the interval covers all of them (and, with a
    target segment granularity, whole buckets). Tombstones hide older data but are not read."""
    requested = task.requested_interval
    target = _target_granularity(task)
    interval = align(requested, target) if target is not None else requested
    for _ in range(64):
        timeline = Timeline(rt.store.used_segments(task.data_source, interval, conn=conn))
        segments = timeline.visible_segments(interval)
        widened = umbrella([interval] + [s.interval for s in segments]) if segments else interval
        if target is not None:
            widened = align(widened, target)
        if widened == interval:
            return InputSelection(interval, segments, timeline.visible_segments(requested))
        interval = widened
    raise MetadataError(f"{task.data_source}: the interval to compact kept growing past {interval}; the timeline is malformed")


def acquire_locks(task: CompactTask, rt: Runtime, *, timeout_s: float = 0) -> list[Any]:
    """Lock the umbrella interval of the task's visible input (EXCLUSIVE, or REPLACE with ``useConcurrentLocks``).

    Raises :class:`NoSegmentsError` when there is nothing to compact (before locking anything),
    :class:`~druidflow.exceptions.LockUnavailableError` (retry later) or :class:`LockRevokedError`.
    """
    selection = select_input(task, rt)
    if not selection.segments:
        raise NoSegmentsError(_no_segments_message(task))
    return index.acquire_locks(task, rt, [selection.read_interval], timeout_s=timeout_s)  # type: ignore[arg-type]


def plan(task: CompactTask, rt: Runtime) -> CompactionPlan:
    """Under the lock: select the input again, check it, infer the output schema and plan the re-index."""
    selection = select_input(task, rt)
    if not selection.segments:
        raise NoSegmentsError(_no_segments_message(task))
    lock_version = _held_lock_version(task, rt, selection.read_interval)
    _verify_requested(task, selection)
    newest_input = max(s.version for s in selection.segments)
    if lock_version <= newest_input:
        raise MetadataError(
            f"task {task.task_id}: its lock version {lock_version} does not sort after the input version {newest_input}, "
            "so the output could not overshadow the input (segment versions from a clock ahead of this one?)"
        )
    schema, inferred = infer_schema(task, selection.segments, rt)
    index_task = _index_task(task, selection, schema)
    index_plan = index.determine_partitions(index_task, rt)
    store_state = task.context_flag("storeCompactionState", True)
    state = (
        compaction_state(
            tuning=task.tuning_config,
            segment_granularity=schema.segment_granularity,
            query_granularity=schema.query_granularity,
            rollup=schema.rollup,
            dimensions_spec=schema.dimensions_spec,
            metrics_spec=schema.metrics_spec,
            transform_spec=task.transform_spec,
        )
        if store_state
        else None
    )
    result = CompactionPlan(
        task_id=task.task_id,
        data_source=task.data_source,
        interval=task.requested_interval,
        read_interval=selection.read_interval,
        lock_version=lock_version,
        input_segments=sorted(s.id for s in selection.segments),
        input_rows=sum(s.num_rows for s in selection.segments),
        input_bytes=sum(s.size for s in selection.segments),
        index_task=index_task.model_dump(),
        index_plan=index_plan,
        compaction_state=state,
        drop_existing=task.io_config.drop_existing,
        inferred=inferred,
    )
    log.info(
        "compact %s: %d visible segment(s), %d rows, in %s -> %d chunk(s) at version %s; inferred %s",
        task.task_id, len(selection.segments), result.input_rows, selection.read_interval,
        len(index_plan.chunks), lock_version, ", ".join(inferred) or "nothing",
    )
    return result


def build(plan: CompactionPlan, unit: BuildUnit, rt: Runtime) -> BuildResult:
    """Build one unit: the visible rows of its chunks only (the ``druid`` input is narrowed to them)."""
    task = _index_task_for(plan, unit.chunks)
    return index.build(task, unit, rt)


def build_all(plan: CompactionPlan, rt: Runtime) -> BuildResult:
    """Build every unit in one pass over the input (what :func:`run` does)."""
    task = parse_task(plan.index_task)
    return index.build_units(task, plan.build_units, rt)  # type: ignore[arg-type]


def publish(plan: CompactionPlan, results: Sequence[BuildResult], rt: Runtime) -> CompactionReport:
    """Publish the output in one transaction inside the lock's critical section, after checking there, under the
    lock, that the visible input is still exactly the planned one; mark the overshadowed inputs unused in the same
    transaction. On a revoked lock or changed input nothing is written and the pushed files are deleted."""
    task = parse_task(plan.index_task)
    built = [s for r in results for s in r.segments]
    state = plan.compaction_state
    stamped = [
        r.model_copy(update={"segments": [s.model_copy(update={"last_compaction_state": state}) for s in r.segments]})
        for r in results
    ]
    tombstones = _tombstones(plan, built) if plan.drop_existing else []
    if tombstones:
        stamped.append(BuildResult(task_id=plan.task_id, segments=tombstones))
    guard = _PublishGuard(rt.store, plan)
    try:
        if not built and not tombstones:
            _check_under_lock(plan, rt)  # nothing to write, but a revoked lock or changed input still fails the task
        report = index.publish(task, plan.index_plan, stamped, dataclasses.replace(rt, store=guard))  # type: ignore[arg-type]
    except (InputChangedError, LockRevokedError, LockNotHeldError):
        _delete_pushed(built, rt)
        raise
    log.info(
        "compact %s published %d segment(s) over %s; %d input segment(s) marked unused (%s)",
        plan.task_id, len(report.segments), plan.read_interval, len(guard.marked_unused), OVERSHADOWED_BY_COMPACTION,
    )
    return CompactionReport(
        task_id=plan.task_id,
        data_source=plan.data_source,
        status=report.status,
        interval=plan.interval,
        read_interval=plan.read_interval,
        input_segments=plan.input_segments,
        segments=report.segments,
        marked_unused=guard.marked_unused,
        reports=guard.report or report.reports,
    )


release = index.release
heartbeat = index.heartbeat
fail = index.fail


def run(spec: Any, rt: Runtime, *, timeout_s: float = 0) -> CompactionReport:
    """Every step in this process (the CLI, ``druidflow.tasks.dispatch`` and the auto-compaction operator)."""
    task = submit(spec, rt)
    try:
        with rt.lockbox.keep_alive(task.task_id):  # a compaction may outlast the lock lease
            acquire_locks(task, rt, timeout_s=timeout_s)
            the_plan = plan(task, rt)
            result = build_all(the_plan, rt)
            return publish(the_plan, [result], rt)
    except BaseException as exc:
        fail(task.task_id, exc, rt)
        raise
    finally:
        release(task.task_id, rt)


def run_local(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    """Run a compact task in-process against the given metadata DB and deep storage; return the report."""
    rt = Runtime.from_urls(metadata_url, deep_storage)
    return run(spec, rt).model_dump()


# ------------------------------------------------------------------------------------------ input checks


def _no_segments_message(task: CompactTask) -> str:
    return f"dataSource {task.data_source!r} has no visible segment in {task.requested_interval}; nothing to compact"


def _verify_requested(task: CompactTask, selection: InputSelection) -> None:
    """The segment-list and hash checks of Druid's ``validateSegments`` (time-chunk locking)."""
    current = sorted(s.id for s in selection.requested)
    spec = task.io_config.input_spec
    if isinstance(spec, SpecificSegmentsSpec):
        wanted = set(spec.segments)
        missing = sorted(wanted - set(current))
        extra = sorted(set(current) - wanted)
        if missing or extra:
            raise InputChangedError(
                f"task {task.task_id}: the visible segments of {task.requested_interval} are not the ones listed in "
                f"ioConfig.inputSpec.segments ({_some('no longer visible', missing)}{'; ' if missing and extra else ''}"
                f"{_some('not listed', extra)}). The data changed since the spec was written; nothing was published."
            )
    expected = task.sha256_of_sorted_segment_ids
    if expected is not None:
        actual = sha256_of_segment_ids(current)
        if actual != expected:
            raise InputChangedError(
                f"task {task.task_id}: sha256OfSortedSegmentIds is {expected} but the {len(current)} segments visible in "
                f"{task.requested_interval} hash to {actual}. The data changed since the spec was written; nothing was published."
            )


def _some(what: str, ids: Sequence[str]) -> str:
    if not ids:
        return ""
    return f"{what}: {', '.join(ids[:3])}{f' and {len(ids) - 3} more' if len(ids) > 3 else ''}"


def _verify_unchanged(plan: CompactionPlan, store: Any, conn: Any) -> None:
    """Inside the publish transaction: the visible input must still be exactly the planned one."""
    timeline = Timeline(store.used_segments(plan.data_source, plan.read_interval, conn=conn))
    current = sorted(s.id for s in timeline.visible_segments(plan.read_interval))
    if current != plan.input_segments:
        gone = sorted(set(plan.input_segments) - set(current))
        new = sorted(set(current) - set(plan.input_segments))
        raise InputChangedError(
            f"compaction {plan.task_id}: the visible segments of {plan.read_interval} changed after it was planned "
            f"({_some('gone', gone)}{'; ' if gone and new else ''}{_some('new', new)}); nothing was published. "
            "Run the compaction again."
        )


def _check_under_lock(plan: CompactionPlan, rt: Runtime) -> None:
    intervals = [c.interval for c in plan.index_plan.chunks] or [plan.read_interval]
    with rt.lockbox.critical_section(plan.task_id, intervals, plan.data_source) as cs:
        _verify_unchanged(plan, rt.store, cs.connection)


def _held_lock_version(task: CompactTask, rt: Runtime, interval: Interval) -> str:
    mine = [lk for lk in rt.lockbox.locks(datasource=task.data_source, task_id=task.task_id) if lk.interval.contains(interval)]
    live = [lk for lk in mine if lk.active]
    if not live:
        if mine:
            raise LockRevokedError(
                f"task {task.task_id}: its lock on {task.data_source} {mine[0].interval} was {mine[0].state}; nothing was published"
            )
        held = [str(lk.interval) for lk in rt.lockbox.locks(datasource=task.data_source, task_id=task.task_id)]
        if held:
            raise InputChangedError(
                f"task {task.task_id}: the segments to compact now span {interval}, beyond its lock on {', '.join(held)} "
                "(new segments appeared while it was locking); run the compaction again"
            )
        raise LockNotHeldError(f"task {task.task_id} holds no lock on {task.data_source} {interval}; acquire locks first")
    return max(lk.version for lk in live)


# ------------------------------------------------------------------------------------------ the output schema


class OutputSchema(NamedTuple):
    """The dataSchema parts a compaction writes with (given or inferred)."""

    dimensions_spec: DimensionsSpec
    metrics_spec: list[Any]
    rollup: bool
    query_granularity: Granularity
    segment_granularity: Optional[Granularity]
    chunks: list[Interval]
    """The output time chunks: target-granularity buckets, or the inputs' own (unioned) intervals."""


def infer_schema(task: CompactTask, segments: Sequence[DataSegment], rt: Runtime) -> tuple[OutputSchema, list[str]]:
    """The output schema: what the task gives, the rest inferred from the segments as Druid does.

    Returns the schema and the names of the fields that were inferred.
    """
    inferred: list[str] = []
    newest_first = sorted(segments, key=lambda s: (s.interval.start, s.interval.end, s.version, s.partition_num), reverse=True)
    gran = task.granularity_spec

    given_dims = task.dimensions_spec
    if given_dims is not None and given_dims.dimensions:
        dims_spec = given_dims
    else:
        excluded = set(given_dims.dimension_exclusions) if given_dims is not None else set()
        dims_spec = _infer_dimensions(newest_first, excluded, rt)
        inferred.append("dimensionsSpec")

    if task.metrics_spec is not None:
        metrics = list(task.metrics_spec)
        if any(m.type == "count" for m in metrics) and any(s.rollup for s in segments):
            log.warning(
                "compact %s: metricsSpec has a 'count', which counts the rolled-up rows of the input segments, not the "
                "original events; use {\"type\": \"longSum\", \"name\": ..., \"fieldName\": <count column>} to add counts up",
                task.task_id,
            )
    else:
        metrics = _infer_metrics(newest_first)
        inferred.append("metricsSpec")

    rollup = gran.rollup if gran is not None and gran.rollup is not None else None
    if rollup is None:
        rollup = all(s.rollup is True for s in segments)
        inferred.append("rollup")

    query = gran.query_granularity if gran is not None and gran.query_granularity is not None else None
    if query is None:
        query = Granularity.finest(_query_granularity(s) for s in segments)
        inferred.append("queryGranularity")

    target = _target_granularity(task)
    if target is not None:
        chunks = target.expand([s.interval for s in segments])  # only the buckets some input touches
        segment_granularity: Optional[Granularity] = target
    else:
        chunks = _union_overlapping([s.interval for s in segments])
        segment_granularity = _common_granularity(chunks)
        inferred.append("segmentGranularity")
    return OutputSchema(dims_spec, metrics, rollup, query, segment_granularity, chunks), inferred


def _infer_dimensions(newest_first: Sequence[DataSegment], excluded: set[str], rt: Runtime) -> DimensionsSpec:
    """Newest segment first: each dimension takes its position and type from the newest segment that has it."""
    order: list[str] = []
    types: dict[str, str] = {}
    for segment in newest_first:
        new = [d for d in segment.dimension_names if d not in types and d not in excluded]
        if not new:
            continue
        found = _column_types(segment, rt)
        for name in new:
            types[name] = found.get(name, "string")
            order.append(name)
    return DimensionsSpec(dimensions=[name if types[name] == "string" else {"type": types[name], "name": name} for name in order])


def _column_types(segment: DataSegment, rt: Runtime) -> dict[str, str]:
    """Druid dimension types of a segment file's columns (read from its Parquet footer only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with rt.storage.open_local(segment.load_spec) as path:
        schema = pq.read_schema(path)
    out: dict[str, str] = {}
    for field in schema:
        t = field.type
        if pa.types.is_integer(t):
            out[field.name] = "long"
        elif pa.types.is_float32(t):
            out[field.name] = "float"
        elif pa.types.is_floating(t):
            out[field.name] = "double"
        else:
            out[field.name] = "string"
    return out


def _infer_metrics(newest_first: Sequence[DataSegment]) -> list[Any]:
    """The combining forms of the segments' aggregators, merged by name (a mismatch is a SpecError)."""
    for s in newest_first:
        if s.metric_names and not s.aggregators:
            raise SpecError(
                "metricsSpec",
                None,
                f"segment {s.id} has metric columns {s.metric_names} but records no aggregators to re-aggregate them "
                "with; give metricsSpec",
            )
    return merge_aggregators([[_stored_form(a) for a in s.aggregators] for s in newest_first])


def _stored_form(aggregator: dict[str, Any]) -> dict[str, Any]:
    """First/last metrics are stored with their time in ``__time_<name>``: their combining form must read it. A
    filtered metric's column holds its inner aggregator's values, re-combined without the filter."""
    kind = str(aggregator.get("type", ""))
    if kind == "filtered":
        inner = dict(aggregator.get("aggregator") or {})
        return _stored_form({**inner, "name": aggregator.get("name", inner.get("name"))})
    if kind.endswith(("First", "Last")):
        name = aggregator.get("name")
        return {**aggregator, "fieldName": name, "timeColumn": companion_time_column(str(name))}
    return aggregator


def _query_granularity(segment: DataSegment) -> Granularity:
    try:
        return Granularity.parse(segment.query_granularity) if segment.query_granularity is not None else Granularity.parse("NONE")
    except SpecError:
        return Granularity.parse("NONE")


def _target_granularity(task: CompactTask) -> Optional[Granularity]:
    gran = task.granularity_spec
    return gran.segment_granularity if gran is not None else None


def _is_aligned(interval: Interval, granularity: Granularity) -> bool:
    if granularity.kind == "all":
        return True
    return granularity.bucket_start(interval.start) == interval.start and granularity.bucket_start(interval.end) == interval.end


def align(interval: Interval, granularity: Granularity) -> Interval:
    """The smallest run of whole ``granularity`` buckets covering ``interval``."""
    if granularity.kind == "all":
        return ETERNITY
    start = granularity.bucket_start(interval.start)
    end_bucket = granularity.bucket_start(interval.end)
    end = end_bucket if end_bucket == interval.end else granularity.next_bucket_start(end_bucket)
    return Interval(start, end)


def _union_overlapping(intervals: Sequence[Interval]) -> list[Interval]:
    """Overlapping intervals merged (abutting ones stay apart): the chunks of a compaction that keeps granularity."""
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start < out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def _common_granularity(chunks: Sequence[Interval]) -> Optional[Granularity]:
    """The standard granularity every chunk is exactly one bucket of, or None."""
    for g in _STANDARD_GRANULARITIES:
        if all(g.bucket(c.start) == c for c in chunks):
            return g
    return None


def _index_task(task: CompactTask, selection: InputSelection, schema: OutputSchema) -> IndexTask:
    """The ``index`` task that re-indexes the input: same id (so it uses the compaction's locks), druid input."""
    if schema.segment_granularity is not None:
        granularity_spec: dict[str, Any] = {
            "type": "uniform",
            "segmentGranularity": schema.segment_granularity.to_json(),
            "intervals": [str(c) for c in schema.chunks],
        }
    else:
        granularity_spec = {"type": "arbitrary", "intervals": [str(c) for c in schema.chunks]}
    granularity_spec.update(queryGranularity=schema.query_granularity.to_json(), rollup=schema.rollup)
    data_schema: dict[str, Any] = {
        "dataSource": task.data_source,
        "timestampSpec": dict(_TIMESTAMP_SPEC),
        "dimensionsSpec": schema.dimensions_spec.model_dump(),
        "metricsSpec": [m.model_dump() for m in schema.metrics_spec],
        "granularitySpec": granularity_spec,
    }
    if task.transform_spec is not None:
        data_schema["transformSpec"] = task.transform_spec.model_dump()
    tuning = (task.tuning_config or IndexTuningConfig()).model_dump()
    tuning["type"] = "index"
    spec = {
        "type": "index",
        "id": task.task_id,
        "context": {**task.context, "priority": task.priority},
        "spec": {
            "dataSchema": data_schema,
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "druid", "dataSource": task.data_source, "interval": str(selection.read_interval)},
                "appendToExisting": False,
            },
            "tuningConfig": tuning,
        },
    }
    try:
        return parse_task(spec)  # type: ignore[return-value]
    except SpecError as exc:
        raise SpecError(exc.path.replace("spec.dataSchema.", "", 1), exc.value, f"{exc.reason} (in the re-indexing spec)") from None


def _index_task_for(plan: CompactionPlan, chunks: Sequence[Any]) -> IndexTask:
    """The plan's index task with its druid input narrowed to ``chunks`` (a build unit reads only its own rows)."""
    spec = dict(plan.index_task)
    inner = dict(spec["spec"])
    io = dict(inner["ioConfig"])
    source = dict(io["inputSource"])
    if chunks:
        span = umbrella([c.interval for c in chunks])
        narrowed = span.intersect(plan.read_interval)
        source["interval"] = str(narrowed or span)
    io["inputSource"] = source
    inner["ioConfig"] = io
    spec["spec"] = inner
    return parse_task(spec)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ publishing


class _PublishGuard:
    """The metadata store as :func:`druidflow.tasks.index.publish` sees it during a compaction's publish.

    Its ``publish_segments`` runs inside the lock's critical section (on its connection): it re-checks the input,
    inserts the output, and marks the inputs the output overshadows unused, all in that one transaction. Its
    ``set_task_status`` adds the compaction's figures to the task report. Everything else is the real store.
    """

    def __init__(self, store: Any, plan: CompactionPlan) -> None:
        self._store = store
        self._plan = plan
        self.marked_unused: list[str] = []
        self.report: Optional[dict[str, Any]] = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def publish_segments(self, segments: Sequence[DataSegment], *, conn: Any = None) -> Any:
        segments = list(segments)
        plan = self._plan
        # A retried publish finds its own output already there (and its inputs overshadowed): nothing to check.
        republish = bool(segments) and self._store.get_segment(segments[0].id, conn=conn) is not None
        if not republish:
            _verify_unchanged(plan, self._store, conn)
        result = self._store.publish_segments(segments, conn=conn)
        timeline = Timeline(self._store.used_segments(plan.data_source, plan.read_interval, conn=conn))
        inputs = set(plan.input_segments)
        overshadowed = sorted(s.id for s in timeline.overshadowed() if s.id in inputs)
        if overshadowed:
            self._store.mark_unused(plan.data_source, segment_ids=overshadowed, reason=OVERSHADOWED_BY_COMPACTION, conn=conn)
        self.marked_unused = overshadowed
        return result

    def upgrade_appended_segments(self, data_source: str, replace_versions: Any, *, exclude: Any = (), conn: Any = None) -> Any:
        # Appended segments the compaction read are already in its output: copying them too would double rows.
        exclude = [*exclude, *self._plan.input_segments]
        return self._store.upgrade_appended_segments(data_source, replace_versions, exclude=exclude, conn=conn)

    def set_task_status(self, task_id: str, status: str, *, report: Optional[dict[str, Any]] = None, **kwargs: Any) -> Any:
        if report is not None:
            report = _compaction_report(report, self._plan, self.marked_unused)
            self.report = report
        return self._store.set_task_status(task_id, status, report=report, **kwargs)


def _compaction_report(report: dict[str, Any], plan: CompactionPlan, marked_unused: Sequence[str]) -> dict[str, Any]:
    out = dict(report)
    stats = dict(out.get("ingestionStatsAndErrors") or {})
    payload = dict(stats.get("payload") or {})
    payload["segmentsRead"] = len(plan.input_segments)
    stats["payload"] = payload
    out["ingestionStatsAndErrors"] = stats
    out["compaction"] = {
        "interval": str(plan.interval),
        "readInterval": str(plan.read_interval),
        "inputSegments": len(plan.input_segments),
        "inputRows": plan.input_rows,
        "inputBytes": plan.input_bytes,
        "segmentsMarkedUnused": len(marked_unused),
        "inferred": list(plan.inferred),
        "compactionStateFingerprint": (plan.compaction_state or {}).get("fingerprint"),
    }
    return out


def _tombstones(plan: CompactionPlan, built: Sequence[DataSegment]) -> list[DataSegment]:
    """``dropExisting``: a tombstone for every output chunk that got no rows but hides input data."""
    with_output = {s.interval for s in built}
    inputs = [_interval_of_id(plan, sid) for sid in plan.input_segments]
    out = []
    for chunk in plan.index_plan.chunks:
        if chunk.interval in with_output or not any(iv.overlaps(chunk.interval) for iv in inputs):
            continue
        out.append(
            DataSegment(
                data_source=plan.data_source,
                interval=chunk.interval,
                version=chunk.version,
                load_spec={"type": "tombstone"},
                shard_spec=TombstoneShardSpec(partition_num=0, partitions=1),
                last_compaction_state=plan.compaction_state,
            )
        )
    return out


def _interval_of_id(plan: CompactionPlan, segment_id: str) -> Interval:
    from druidflow.specs.tasks import segment_id_interval

    return segment_id_interval(plan.data_source, segment_id)


def _delete_pushed(segments: Sequence[DataSegment], rt: Runtime) -> None:
    """Delete files that were pushed for segments that will never be published (their version is this task's).

    Nothing is deleted if any of them is in the metadata store (a retried publish whose first attempt committed).
    """
    try:
        if any(rt.store.get_segment(s.id) is not None for s in segments):
            return
    except Exception:  # noqa: BLE001 - when in doubt, keep the files
        return
    for s in segments:
        if not s.load_spec or s.load_spec.get("type") == "tombstone":
            continue
        try:
            rt.storage.delete(s.load_spec)
        except Exception:  # noqa: BLE001 - the publish failure is what matters; an orphan file is harmless
            log.warning("could not delete the unpublished segment file of %s", s.id, exc_info=True)
