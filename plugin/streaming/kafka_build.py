"""Building one Kafka task's spooled messages: the chunks to lock, the APPEND locks, and the index build.

The chunks come from the timestamp column alone where that is safe (:func:`quick_chunks`), else from the index
task's determine pass; a row outside the guessed chunks sends the build back to the determine pass, so the
shortcut never costs a row. A chunk that a compaction re-partitioned into a coarser one (HOUR streamed, DAY
compacted) is built into that coarser chunk, as Druid's segment allocation does.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import pyarrow.compute as pc

from druidflow.exceptions import LockRevokedError, LockUnavailableError, TerminalError
from druidflow.ingest.stats import RowStats
from druidflow.intervals import Interval, condense
from druidflow.locks.lock import APPEND_VERSION, LockType
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.io import LocalInputSource
from druidflow.specs.tasks import IndexTask
from druidflow.tasks import index
from druidflow.tasks.index_determine import scan_partitions
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)


def group_id(data_source: str) -> str:
    """The lock group of every Kafka task of a dataSource (they share APPEND locks)."""
    return f"index_kafka_{data_source}"


def lock_requests(index_task: IndexTask, rt: Runtime) -> tuple[list[Interval], RowStats, list[dict[str, Any]]]:
    """The time chunks the spooled messages fall in (one pass of the index task's determine step)."""
    chunks, _, stats, events = scan_partitions(index_task, rt, None)
    return sorted(chunks), stats, events


def acquire_locks(index_task: IndexTask, chunks: list[Interval], rt: Runtime) -> None:
    """APPEND locks on the chunks at the task's priority (75), waiting up to ``taskLockTimeout``."""
    held: list[Interval] = []
    for interval in condense(chunks):
        result = rt.lockbox.lock(
            task_id=index_task.task_id, group_id=group_id(index_task.data_source), datasource=index_task.data_source,
            interval=interval, lock_type=LockType.APPEND, priority=index_task.priority,
            timeout=index_task.lock_timeout_ms / 1000.0,
        )
        if not result.acquired:
            for iv in held:
                rt.lockbox.release(index_task.task_id, iv)
            if result.revoked:
                raise LockRevokedError(f"task {index_task.task_id}: its lock on {interval} was revoked")
            raise LockUnavailableError(
                f"task {index_task.task_id} (priority {index_task.priority}): {index_task.data_source} {interval} is "
                "locked by a task of equal or higher priority; the supervisor retries the range"
            )
        held.append(interval)


def quick_chunks(index_task: IndexTask, window: tuple[Optional[int], Optional[int]]) -> Optional[list[Interval]]:
    """The chunks of the spool from its timestamp column alone (pyarrow reads just that field), or None when that
    cannot be trusted to match the full parse: not plain JSON, a flattenSpec, a transform of the time, a line
    pyarrow cannot read. :func:`build` checks the result anyway (no row may fall outside these chunks)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.json as pj

    from druidflow.ingest.casts import parse_timestamps
    from druidflow.inputs.json_lines import screen_lines

    schema = index_task.spec.data_schema
    fmt = index_task.spec.io_config.input_format
    ts = schema.timestamp_spec
    gran = schema.granularity_spec.segment_granularity
    if getattr(fmt, "type", None) != "json" or getattr(fmt, "flatten_spec", None) is not None or gran is None:
        return None
    if any(t.name in (ts.column, "__time") for t in schema.transform_spec.transforms):
        return None
    source = index_task.spec.io_config.input_source
    if not isinstance(source, LocalInputSource) or not source.files:
        return None
    path = source.files[0]
    with open(path, "rb") as f:
        data = f.read()
    if screen_lines(data, str(path), 1).failures:
        return None  # a line pyarrow's reader would crash on (a bare null message): the full parse counts it
    kinds = [pa.int64(), pa.string()] if ts.format in ("millis", "posix", "micro", "nano") else [pa.string(), pa.int64()]
    for kind in kinds:
        try:
            table = pj.read_json(pa.py_buffer(data), parse_options=pj.ParseOptions(
                explicit_schema=pa.schema([pa.field(ts.column, kind)]), unexpected_field_behavior="ignore"))
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    else:
        return None
    times = parse_timestamps(table.column(ts.column), ts.format)
    if ts.missing_value_ms is not None:
        times = pc.fill_null(times, ts.missing_value_ms)
    ms = times.drop_null().to_numpy(zero_copy_only=False)
    lo, hi = window
    if lo is not None:
        ms = ms[ms >= lo]
    if hi is not None:
        ms = ms[ms < hi]
    if not len(ms):
        return None
    starts = np.unique(gran.truncate(ms.astype(np.int64)))
    return [gran.bucket(int(st)) for st in starts]


def build(
    index_task: IndexTask, rt: Runtime, window: tuple[Optional[int], Optional[int]]
) -> tuple[list[DataSegment], RowStats, list[dict[str, Any]]]:
    """Lock the spool's chunks and build its segments; (segments, counters, saved parse exceptions).

    The chunks come from :func:`quick_chunks` when it can tell them, else from a full determine pass. A quick
    guess that missed a chunk shows as rows thrown away "outsideIntervals": its segments are dropped and the
    build runs again on the determined chunks, so the shortcut can cost time but never a row.
    """
    chunks = quick_chunks(index_task, window)
    if chunks is not None:
        built = _build_chunks(index_task, chunks, rt)
        if built is not None:
            return built
        log.warning("task %s: the quick chunk guess missed rows; determining the chunks", index_task.task_id)
    chunks, determined, determine_events = lock_requests(index_task, rt)
    if not chunks:  # every message was thrown away or unparseable: nothing to build, the offsets still move on
        return [], determined, determine_events
    built = _build_chunks(index_task, chunks, rt)
    if built is None:
        raise TerminalError(f"task {index_task.task_id}: rows fell outside the determined chunks; nothing was published")
    return built


def _build_chunks(
    index_task: IndexTask, chunks: list[Interval], rt: Runtime
) -> Optional[tuple[list[DataSegment], RowStats, list[dict[str, Any]]]]:
    """Build the chunks, each into the time chunk that already holds it: where compaction re-partitioned an
    interval into coarser segments (HOUR streamed, DAY compacted), rows go to that coarser chunk, as Druid's
    segment allocation does. One build per segment granularity, the first counting every row no build owns.
    None (everything pushed removed again) when some row fell outside every chunk."""
    groups = _chunks_by_existing_granularity(index_task, chunks, rt)
    acquire_locks(index_task, [c for cs in groups.values() for c in cs], rt)
    segments: list[DataSegment] = []
    stats, events = RowStats(), []
    primary_outside = owned_elsewhere = 0
    for i, (granularity, group) in enumerate(groups.items()):
        task_g = index_task if granularity is None else _with_segment_granularity(index_task, granularity)
        unit = plan(task_g, group).model_copy(update={"primary": i == 0})
        built = index.build_units(task_g, [unit], rt)
        segments.extend(built.segments)
        if i == 0:
            primary_outside = built.row_stats.thrown_away_by_reason.get("outsideIntervals", 0)
            stats, events = built.row_stats, list(built.unparseable_events)
        else:
            owned = built.row_stats.processed + built.row_stats.processed_with_error
            owned_elsewhere += owned
            stats = stats.plus(built.row_stats)
    if primary_outside != owned_elsewhere:
        _discard(index_task.data_source, index_task.task_id, segments, rt)
        return None
    reasons = dict(stats.thrown_away_by_reason)
    if owned_elsewhere:  # rows of the other builds' chunks were "outside" for the first one only
        reasons["outsideIntervals"] = reasons.get("outsideIntervals", 0) - owned_elsewhere
        if not reasons["outsideIntervals"]:
            del reasons["outsideIntervals"]
        stats = stats.model_copy(update={"thrown_away": stats.thrown_away - owned_elsewhere, "thrown_away_by_reason": reasons})
    return segments, stats, events


def _chunks_by_existing_granularity(index_task: IndexTask, chunks: list[Interval], rt: Runtime) -> dict[Any, list[Interval]]:
    """``{None: chunks of the spec's granularity, <granularity>: coarser chunks that already hold segments}``."""
    from druidflow.granularity import STANDARD_PERIODS, Granularity
    from druidflow.segments.timeline import Timeline

    groups: dict[Any, list[Interval]] = {None: []}
    for chunk in chunks:
        visible = Timeline(rt.store.used_segments(index_task.data_source, chunk)).visible(chunk)
        covering = visible[0].true_interval if len(visible) == 1 else chunk
        if covering == chunk or not covering.contains(chunk):
            groups[None].append(chunk)
            continue
        for name in STANDARD_PERIODS:
            granularity = Granularity.parse(name)
            if granularity.bucket(chunk.start) == covering:
                if covering not in groups.setdefault(name, []):
                    groups[name].append(covering)
                break
        else:
            groups[None].append(chunk)  # no granularity gives that interval: allocation will say what is in the way
    if not groups[None]:
        del groups[None]
    return groups


def _with_segment_granularity(index_task: IndexTask, name: str) -> IndexTask:
    data = index_task.model_dump()
    data["spec"]["dataSchema"]["granularitySpec"]["segmentGranularity"] = name
    return IndexTask.parse(data)


def plan(index_task: IndexTask, chunks: list[Interval]) -> index.BuildUnit:
    """One appending build unit over every chunk: segment ids are allocated in each chunk's current version."""
    plans = [index.ChunkPlan(interval=c, version=APPEND_VERSION) for c in chunks]
    return index.BuildUnit(task_id=index_task.task_id, chunks=plans, all_chunks=chunks, primary=True)


def _discard(ds: str, task_id: str, segments: list[DataSegment], rt: Runtime) -> None:
    """Nothing was published: remove the pushed files and free the pending ids, which no one else can have."""
    for s in segments:
        try:
            rt.storage.delete(s.load_spec)
        except Exception:
            log.warning("could not delete unpublished segment file of %s", s.id, exc_info=True)
    try:
        rt.store.delete_pending_segments(ds, task_id)
    except Exception:
        log.warning("could not delete the pending segments of task %s", task_id, exc_info=True)
