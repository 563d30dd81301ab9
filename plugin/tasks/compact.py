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

import hashlib
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from pydantic import Field

from druidflow.compaction.state import compaction_state
from druidflow.exceptions import (
    InputChangedError,
    LockNotHeldError,
    LockRevokedError,
    MetadataError,
    NoSegmentsError,
    SpecError,
)
from druidflow.intervals import Interval, umbrella
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import Timeline
from druidflow.specs.base import DruidModel
from druidflow.specs.task_base import DataSourceTask
from druidflow.specs.tasks import CompactTask, IndexTask, SpecificSegmentsSpec, parse_index_task
from druidflow.specs.tuning import IndexTuningConfig
from druidflow.specs.unknown_keys import spec_warnings
from druidflow.specs.unsupported import refuse_non_defaults
from druidflow.tasks import index, protocol
from druidflow.tasks.compact_schema import OutputSchema, align, infer_schema, is_aligned, target_granularity
from druidflow.tasks.index import BuildResult, BuildUnit, IndexPlan
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)

#: ``unused_reason`` of the inputs a compaction overshadowed (Druid's "overshadowed", with its cause).
OVERSHADOWED_BY_COMPACTION = "overshadowed-by-compaction"

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
    return protocol.submit(DEFINITION.parse_task(spec, ""), rt, DEFINITION)


def _check_spec(task: CompactTask) -> None:
    refuse_non_defaults(task)
    tuning = task.tuning_config
    if tuning is not None and tuning.index_spec.uses_lzf:
        raise SpecError("tuningConfig.indexSpec", tuning.index_spec.model_dump(), "lzf has no Parquet codec; use lz4, zstd or uncompressed")
    target = target_granularity(task)
    iv = task.interval
    if target is not None and iv is not None and not task.io_config.allow_non_aligned_interval and not is_aligned(iv, target):
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
    target = target_granularity(task)
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
    return protocol.acquire_locks(task, rt, DEFINITION, timeout_s=timeout_s)


def lock_requests(task: CompactTask, rt: Runtime) -> list[protocol.LockRequest]:
    """The umbrella interval of the visible input (NoSegmentsError, before locking anything, when there is none)."""
    selection = select_input(task, rt)
    if not selection.segments:
        raise NoSegmentsError(_no_segments_message(task))
    return protocol.lock_requests_for(task, [selection.read_interval])


def plan(task: CompactTask, rt: Runtime) -> CompactionPlan:
    """Under the lock: select the input again, check it, infer the output schema and plan the re-index."""
    selection = select_input(task, rt)
    if not selection.segments:
        raise NoSegmentsError(_no_segments_message(task))
    lock_version = held_lock_version(task, rt, selection.read_interval)
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
    task = parse_index_task(plan.index_task)
    return index.build_units(task, plan.build_units, rt)


def publish(plan: CompactionPlan, results: Sequence[BuildResult], rt: Runtime) -> CompactionReport:
    """Publish the output in one transaction inside the lock's critical section, after checking there, under the
    lock, that the visible input is still exactly the planned one; mark the overshadowed inputs unused in the same
    transaction. On a revoked lock or changed input nothing is written and the pushed files are deleted."""
    return protocol.publish(None, plan, results, rt, DEFINITION)


def publish_plan(plan: CompactionPlan, results: Sequence[BuildResult]) -> protocol.PublishPlan:
    """The output (stamped with ``lastCompactionState``, plus dropExisting's tombstones), on the condition that
    the visible input is unchanged; the inputs it overshadows become unused (``overshadowed-by-compaction``)."""
    built = [s for r in results for s in r.segments]
    state = plan.compaction_state
    segments = index.publish_plan(
        parse_index_task(plan.index_task),
        plan.index_plan,
        [r.model_copy(update={"segments": [s.model_copy(update={"last_compaction_state": state}) for s in r.segments]}) for r in results],
    ).segments
    if plan.drop_existing:
        segments += _tombstones(plan, built)
    intervals = [c.interval for c in plan.index_plan.chunks] or [plan.read_interval]
    return protocol.PublishPlan(
        task_id=plan.task_id,
        data_source=plan.data_source,
        lock_intervals=intervals,
        segments=segments,
        overshadowed_reason=OVERSHADOWED_BY_COMPACTION,
        overshadowed_among=plan.input_segments,
        # Appended segments the compaction read are already in its output: upgrading them too would double rows.
        upgrade_exclude=plan.input_segments,
        preconditions=[
            protocol.SegmentsUnchanged(
                interval=plan.read_interval,
                segment_ids=plan.input_segments,
                what=f"compaction {plan.task_id}",
                # Appended under an APPEND lock while this compaction held its REPLACE lock: not read, upgraded.
                upgraded_into=plan.lock_version,
            )
        ],
    )


release = protocol.release
heartbeat = protocol.heartbeat
fail = protocol.fail


class CompactDefinition(protocol.TaskDefinition):
    """``compact`` on the task protocol: lock the visible input, re-index it through index's build, publish a
    version that overshadows it if it is unchanged."""

    task_types = ("compact",)
    plan_model = CompactionPlan
    unit_model = BuildUnit
    result_model = BuildResult
    report_model = CompactionReport

    def check(self, task: CompactTask, rt: Runtime) -> None:
        _check_spec(task)

    def lock_requests(self, task: CompactTask, rt: Runtime) -> list[protocol.LockRequest]:
        return lock_requests(task, rt)

    def plan(self, task: CompactTask, rt: Runtime) -> CompactionPlan:
        return plan(task, rt)

    def build(self, task: Any, plan: CompactionPlan, unit: BuildUnit, rt: Runtime) -> BuildResult:
        return build(plan, unit, rt)

    def build_all(self, task: Any, plan: CompactionPlan, rt: Runtime) -> list[BuildResult]:
        return [build_all(plan, rt)]

    def publish_plan(self, task: Any, plan: CompactionPlan, results: Sequence[BuildResult], rt: Runtime) -> protocol.PublishPlan:
        return publish_plan(plan, results)

    def report(
        self, task: Any, plan: CompactionPlan, results: Sequence[BuildResult], outcome: protocol.PublishOutcome,
        publish: protocol.PublishPlan,
    ) -> CompactionReport:
        marked = [sid for sid in outcome.marked_unused if sid in set(plan.input_segments)]
        warnings = spec_warnings(task) if task is not None else []
        reports = _compaction_report(
            index.index_report(plan.task_id, plan.index_plan, results, len(publish.segments), warnings=warnings), plan, marked
        )
        log.info(
            "compact %s published %d segment(s) over %s; %d input segment(s) marked unused (%s)",
            plan.task_id, len(publish.segments), plan.read_interval, len(marked), OVERSHADOWED_BY_COMPACTION,
        )
        return CompactionReport(
            task_id=plan.task_id,
            data_source=plan.data_source,
            status="SUCCESS",
            interval=plan.interval,
            read_interval=plan.read_interval,
            input_segments=plan.input_segments,
            segments=publish.segments,
            marked_unused=marked,
            reports=reports,
        )


DEFINITION = CompactDefinition()


def run(spec: Any, rt: Runtime, *, timeout_s: float = 0) -> CompactionReport:
    """Every step in this process (the CLI, ``druidflow.tasks.dispatch`` and the auto-compaction operator)."""
    return DEFINITION.run(DEFINITION.parse_task(spec, ""), rt, timeout_s=timeout_s)


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


def held_lock_version(task: DataSourceTask, rt: Runtime, interval: Interval) -> str:
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
    # The tuning keeps its type: an index_parallel one's maxNumConcurrentSubTasks bounds the re-index's build units.
    tuning = (task.tuning_config or IndexTuningConfig()).model_dump()
    source: dict[str, Any] = {"type": "druid", "dataSource": task.data_source, "interval": str(selection.read_interval)}
    if task.lock_type == "REPLACE":
        # Under concurrent locks, segments appended after the plan are upgraded at publish, never re-read: the
        # build reads exactly the planned input.
        window = [str(selection.read_interval)]
        source = {
            "type": "druid",
            "dataSource": task.data_source,
            "segments": [{"segmentId": s.id, "intervals": window} for s in selection.segments],
        }
    spec = {
        "type": "index",
        "id": task.task_id,
        "context": {**task.context, "priority": task.priority},
        "spec": {
            "dataSchema": data_schema,
            "ioConfig": {
                "type": "index",
                "inputSource": source,
                "appendToExisting": False,
            },
            "tuningConfig": tuning,
        },
    }
    try:
        return parse_index_task(spec)
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
        narrowed = str(span.intersect(plan.read_interval) or span)
        if source.get("segments") is not None:
            source["segments"] = [{**w, "intervals": [narrowed]} for w in source["segments"]]
        else:
            source["interval"] = narrowed
    io["inputSource"] = source
    inner["ioConfig"] = io
    spec["spec"] = inner
    return parse_index_task(spec)


# ------------------------------------------------------------------------------------------ publishing


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
        out.append(protocol.tombstone(plan.data_source, chunk.interval, chunk.version, last_compaction_state=plan.compaction_state))
    return out


def _interval_of_id(plan: CompactionPlan, segment_id: str) -> Interval:
    from druidflow.specs.tasks import segment_id_interval

    return segment_id_interval(plan.data_source, segment_id)
