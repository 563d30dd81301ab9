"""The automatic-compaction planner: which time chunks to compact now, and why every other chunk is left alone.

For each configured dataSource (Druid's ``NewestSegmentFirstIterator`` and ``CompactSegments`` duty):

1. Build the timeline of its used segments. The newest segment end minus ``skipOffsetFromLatest`` bounds what may
   be compacted: later chunks are still receiving data.
2. Form the candidate chunks: the visible partition sets, with overlapping ones merged (a partly overshadowed
   segment is compacted together with what overshadows it); with a target ``segmentGranularity``, each is widened to
   whole target buckets first, so HOUR segments gather into their DAY.
3. Walk the candidates newest first and give each a verdict, checking in this order:

   * ``too_recent`` — it ends after the newest segment end minus ``skipOffsetFromLatest``;
   * ``locked`` — another task holds a lock overlapping it (ingestion, a kill, or a compaction still running from
     an earlier run: the planner never waits behind it, it plans the other chunks);
   * ``empty`` — it holds no bytes;
   * ``too_big`` — its segments add up to more than ``inputSegmentSizeBytes``;
   * ``already_compacted`` — no segment is a fragment and every segment carries a compaction state equal to what
     the config asks (:func:`druidflow.compaction.state.needs_compaction` gives the reason otherwise);
   * ``compact`` — it needs compacting (the reason says why: fragmented, never compacted, state differs).

4. The chunks to compact, across all dataSources, get the free slots in the policy's order (newest first, or most
   fragmented first); ``maxCompactionTaskSlots`` minus the compactions still running is how many there are. The
   others get ``no_slot`` and are planned again next time.

Each chosen chunk becomes a ``compact`` task over its interval with ``sha256OfSortedSegmentIds``, so the task fails
cleanly (and nothing is published) if the chunk changes between planning and running.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, Literal, NamedTuple, Optional

import numpy as np
from pydantic import Field

from druidflow.compaction.config import AutoCompactionSettings, DataSourceCompactionConfig
from druidflow.compaction.state import needs_compaction
from druidflow.granularity import Granularity
from druidflow.intervals import Interval, format_instant, now_ms
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import Timeline, gc_paused
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import generate_task_id
from druidflow.tasks.compact import sha256_of_segment_ids
from druidflow.tasks.compact_schema import align

log = logging.getLogger(__name__)

Category = Literal["compact", "too_recent", "locked", "empty", "too_big", "already_compacted", "no_slot"]

#: The prefix of the ids of compaction tasks the scheduler submits (Druid: ``coordinator-issued`` / ``auto``).
TASK_ID_PREFIX = "auto"


class ChunkVerdict(DruidModel):
    """The planner's decision about one time chunk of one dataSource, with the reason in plain words."""

    data_source: str
    interval: Interval
    category: Category
    reason: str
    segments: int = 0
    bytes: int = 0
    rows: int = 0
    small_segments: int = 0
    task_id: Optional[str] = None

    @property
    def chosen(self) -> bool:
        return self.category == "compact"

    @property
    def verdict(self) -> str:
        """``compact`` or ``skipped: <category>`` (e.g. ``skipped: too recent``)."""
        return "compact" if self.chosen else "skipped: " + self.category.replace("_", " ")

    def line(self) -> str:
        """One log line: ``wikipedia 2024-01-01/2024-01-02: skipped: too recent (...)``."""
        return f"{self.data_source} {_short(self.interval)}: {self.verdict} ({self.reason})"


class AutoCompactionPlan(DruidModel):
    """What one scheduler run decided: every chunk's verdict, and the compact tasks to run (in slot order)."""

    planned_at: str
    slots: int
    running: list[str] = Field(default_factory=list)
    verdicts: list[ChunkVerdict] = Field(default_factory=list)
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        """How many chunks got each verdict category."""
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.category] = out.get(v.category, 0) + 1
        return out


def _short(interval: Interval) -> str:
    return str(interval).replace("T00:00:00.000Z", "").replace(":00.000Z", "Z")


# ----------------------------------------------------------------------------------------------------- planning


def plan_auto_compaction(
    settings: AutoCompactionSettings,
    store: Any,
    lockbox: Any,
    *,
    data_sources: Optional[Iterable[str]] = None,
    task_id_prefix: str = TASK_ID_PREFIX,
) -> AutoCompactionPlan:
    """Plan one scheduler run over every configured dataSource (or only ``data_sources``)."""
    # A plan builds hundreds of thousands of acyclic objects next to the timeline's segments: the cyclic
    # collector's full passes would rescan all of them, again and again, for nothing.
    with gc_paused():
        return _plan(settings, store, lockbox, data_sources, task_id_prefix)


def _plan(
    settings: AutoCompactionSettings,
    store: Any,
    lockbox: Any,
    data_sources: Optional[Iterable[str]],
    task_id_prefix: str,
) -> AutoCompactionPlan:
    wanted = None if data_sources is None else set(data_sources)
    configs = [c for c in settings.compaction_configs if wanted is None or c.data_source in wanted]
    locks = {c.data_source: [lk for lk in lockbox.locks(datasource=c.data_source) if lk.active] for c in configs}
    task_types = _task_types(store, {lk.task_id for held in locks.values() for lk in held})
    running = sorted({lk.task_id for held in locks.values() for lk in held if task_types.get(lk.task_id) == "compact"})
    slots = max(0, settings.max_compaction_task_slots - len(running))

    drafts: list[ChunkVerdict | _Draft] = []
    notes: list[str] = []
    eligible: list[tuple[_Draft, DataSourceCompactionConfig, list[DataSegment]]] = []
    for config in configs:
        found, chosen, note = _plan_data_source(config, store, locks[config.data_source], task_types)
        drafts.extend(found)
        eligible.extend(chosen)
        if note:
            notes.append(note)

    if settings.compaction_policy.type == "mostFragmentedFirst":
        eligible.sort(key=lambda e: (-e[0].counts[3], -e[0].interval.start, e[0].data_source))
    else:  # newestSegmentFirst: dataSources interleaved, newest interval first
        eligible.sort(key=lambda e: (-e[0].interval.start, -e[0].interval.end, e[0].data_source))

    # The chunks to compact got a draft verdict; each becomes its final one here, built once (a copy per chunk
    # cost as much as the verdict itself, 160k times at 1M segments).
    tasks: list[dict[str, Any]] = []
    taken = (
        f"but all {settings.max_compaction_task_slots} compaction slots are taken ({len(running)} running, {slots} "
        "given to newer or more fragmented chunks); planned again next run"
    )
    final: dict[int, ChunkVerdict] = {}
    for rank, (draft, config, segments) in enumerate(eligible):
        if rank < slots:
            task_id = f"{task_id_prefix}_{generate_task_id('compact', config.data_source, draft.interval)}"
            tasks.append(config.compact_task(task_id, draft.interval, sha256_of_segment_ids([s.id for s in segments])))
            final[id(draft)] = draft.verdict("compact", draft.reason, task_id)
        else:
            final[id(draft)] = draft.verdict("no_slot", f"needs compacting ({draft.reason}) {taken}")
    verdicts = [final[id(v)] if isinstance(v, _Draft) else v for v in drafts]
    return AutoCompactionPlan(
        planned_at=format_instant(now_ms()), slots=slots, running=running, verdicts=verdicts, tasks=tasks, notes=notes
    )


class _Draft(NamedTuple):
    """A chunk that needs compacting, before the slots are handed out decide its final verdict."""

    data_source: str
    interval: Interval
    reason: str
    counts: tuple[int, int, int, int]  # segments, bytes, rows, small segments

    def verdict(self, category: Category, reason: str, task_id: Optional[str] = None) -> ChunkVerdict:
        n_segments, n_bytes, n_rows, n_small = self.counts
        return ChunkVerdict.model_construct(
            data_source=self.data_source, interval=self.interval, category=category, reason=reason,
            segments=n_segments, bytes=n_bytes, rows=n_rows, small_segments=n_small, task_id=task_id,
        )


def _task_types(store: Any, task_ids: Iterable[str]) -> dict[str, str]:
    out = {}
    for task_id in sorted(task_ids):
        record = store.get_task(task_id)
        if record is not None:
            out[task_id] = record.type
    return out


def _plan_data_source(
    config: DataSourceCompactionConfig, store: Any, locks: Sequence[Any], task_types: dict[str, str]
) -> tuple[list[ChunkVerdict | _Draft], list[tuple[_Draft, DataSourceCompactionConfig, list[DataSegment]]], Optional[str]]:
    ds = config.data_source
    timeline = Timeline(store.used_segments(ds))
    entries = [e for e in timeline.visible() if not e.is_tombstone]
    if not entries:
        return [], [], f"{ds}: no used segments; nothing to compact"
    latest_end = max(e.interval.end for e in entries)
    horizon = config.skip_offset.add_to(latest_end, times=-1)
    target = config.granularity_spec.segment_granularity if config.granularity_spec else None
    wanted = config.wanted

    candidates = candidate_intervals(entries, target)
    grouped = chunk_segments(candidates, entries)
    blocking_locks = overlapping_locks(candidates, locks)

    stats = _chunk_stats(grouped, wanted.target_rows_per_segment)
    verdicts: list[ChunkVerdict | _Draft] = []
    chosen = []
    for k in range(len(candidates) - 1, -1, -1):
        interval, segments, blocking = candidates[k], grouped[k], blocking_locks[k]
        n_segments, n_bytes, n_rows, n_small = stats[k]

        def verdict(
            category: Category, reason: str, interval: Interval = interval,
            counts: tuple[int, int, int, int] = stats[k],
        ) -> ChunkVerdict:
            # Built from values computed here, not parsed input: no validation to pay 160k times per run.
            n_segments, n_bytes, n_rows, n_small = counts
            return ChunkVerdict.model_construct(
                data_source=ds, interval=interval, category=category, reason=reason, segments=n_segments,
                bytes=n_bytes, rows=n_rows, small_segments=n_small,
            )

        if interval.end > horizon:
            found = verdict(
                "too_recent",
                f"ends after {format_instant(horizon)}: the newest segment ends {format_instant(latest_end)} and "
                f"skipOffsetFromLatest is {config.skip_offset_from_latest}",
            )
        elif blocking:
            found = verdict("locked", _lock_reason(blocking, task_types))
        elif n_bytes <= 0:
            found = verdict("empty", "its segments hold no bytes")
        elif n_bytes > config.input_segment_size_bytes:
            found = verdict(
                "too_big",
                f"{n_bytes:,} bytes in {n_segments} segment(s) is more than inputSegmentSizeBytes "
                f"{config.input_segment_size_bytes:,}",
            )
        else:
            why = needs_compaction(segments, wanted, small=n_small)
            if why is None:
                found = verdict("already_compacted", f"{n_segments} segment(s) already compacted as configured")
            else:
                draft = _Draft(ds, interval, why, stats[k])
                chosen.append((draft, config, segments))
                verdicts.append(draft)
                continue
        verdicts.append(found)
    return verdicts, chosen, None


def _chunk_stats(grouped: Sequence[Sequence[DataSegment]], target_rows: int) -> list[tuple[int, int, int, int]]:
    """Per chunk: its segments, bytes, rows, and segments below ``target_rows``, summed over all chunks at once."""
    counts = np.fromiter(map(len, grouped), np.int64, len(grouped))
    flat = [s for segments in grouped for s in segments]
    size = np.fromiter(map(attrgetter("size"), flat), np.int64, len(flat))
    rows = np.fromiter(map(attrgetter("num_rows"), flat), np.int64, len(flat))
    bounds = np.concatenate([[0], np.cumsum(counts)])

    def per_chunk(values: np.ndarray) -> list[int]:
        running = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
        return (running[bounds[1:]] - running[bounds[:-1]]).tolist()

    return list(zip(counts.tolist(), per_chunk(size), per_chunk(rows), per_chunk(rows < target_rows), strict=True))


def _lock_reason(blocking: Sequence[Any], task_types: dict[str, str]) -> str:
    parts = []
    for lk in blocking[:3]:
        kind = task_types.get(lk.task_id)
        what = "being compacted by" if kind == "compact" else f"locked by {kind or 'task'}"
        parts.append(f"{what} {lk.task_id} ({lk.type.value} lock on {_short(lk.interval)}, priority {lk.priority})")
    more = f" and {len(blocking) - 3} more" if len(blocking) > 3 else ""
    return "; ".join(parts) + more


def candidate_intervals(entries: Sequence[Any], target: Optional[Granularity]) -> list[Interval]:
    """The chunks to judge: visible partition sets' intervals, widened to whole ``target`` buckets when one is set,
    with overlapping ones merged (abutting ones stay apart)."""
    intervals = []
    for entry in entries:
        iv = entry.true_interval
        if target is not None:
            iv = align(iv, target)
        intervals.append(iv)
    merged: list[Interval] = []
    for iv in sorted(intervals):
        if merged and iv.start < merged[-1].end:
            if iv.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, iv.end)
        else:
            merged.append(iv)
    return merged


def chunk_segments(candidates: Sequence[Interval], entries: Sequence[Any]) -> list[list[DataSegment]]:
    """The visible segments (tombstones left out) of each candidate chunk, in one pass over the entries.

    ``candidates`` are :func:`candidate_intervals` of ``entries``: sorted, disjoint, and each entry's partition set
    lies inside exactly one of them, so an entry belongs to the last candidate starting at or before it.
    """
    starts = [c.start for c in candidates]
    keys: list[list[tuple[int, int, str]]] = [[] for _ in candidates]
    members: dict[tuple[int, int, str], tuple[DataSegment, ...]] = {}
    for entry in entries:
        key = (entry.true_interval.start, entry.true_interval.end, entry.version)
        if key not in members:  # a partly overshadowed set shows in several entries
            members[key] = entry.segments
            keys[bisect_right(starts, entry.interval.start) - 1].append(key)
    out = []
    for found in keys:
        if len(found) > 1:
            found.sort()
        out.append([s for key in found for s in members[key] if not s.is_tombstone])
    return out


def overlapping_locks(candidates: Sequence[Interval], locks: Sequence[Any]) -> list[list[Any]]:
    """The locks overlapping each of the sorted, disjoint ``candidates``, by a sweep: each lock enters the open set
    once and leaves it once, so the cost is the candidates plus the locks plus what actually overlaps."""
    pending = sorted(locks, key=lambda lk: lk.interval.start)
    open_locks: list[Any] = []
    nxt = 0
    out = []
    for iv in candidates:
        while nxt < len(pending) and pending[nxt].interval.start < iv.end:
            open_locks.append(pending[nxt])
            nxt += 1
        open_locks = [lk for lk in open_locks if lk.interval.end > iv.start]
        out.append([lk for lk in open_locks if lk.interval.overlaps(iv)])
    return out


def run_report(plan: AutoCompactionPlan, store: Any) -> dict[str, Any]:
    """The final report of a scheduler run: each chunk's verdict, with the outcome of the compactions it started.

    A chosen chunk's verdict becomes ``compacted`` (its task succeeded), ``failed`` (with the task's error),
    ``running`` or ``not run``; every other chunk keeps its ``skipped: ...`` verdict and reason.
    """
    chunks = []
    for v in plan.verdicts:
        entry: dict[str, Any] = {
            "dataSource": v.data_source,
            "interval": str(v.interval),
            "verdict": v.verdict,
            "category": v.category,
            "reason": v.reason,
            "segments": v.segments,
            "bytes": v.bytes,
            "rows": v.rows,
        }
        if v.chosen and v.task_id:
            entry["taskId"] = v.task_id
            record = None if plan.dry_run else store.get_task(v.task_id)
            if plan.dry_run:
                entry.update(verdict="compact (dry run)", reason=f"{v.reason}; not started: dry run")
            elif record is None:
                entry.update(verdict="not run", reason=f"planned ({v.reason}) but the compaction never started")
            elif record.status == "SUCCESS":
                payload = ((record.report or {}).get("ingestionStatsAndErrors") or {}).get("payload") or {}
                published = payload.get("segmentsPublished")
                entry.update(
                    verdict="compacted",
                    reason=f"{v.reason}; {v.segments} segment(s) compacted into {published if published is not None else '?'}",
                )
            elif record.status == "FAILED":
                entry.update(verdict="failed", reason=record.error_msg or "the compaction failed")
            else:
                entry.update(verdict="running", reason=f"still running ({v.reason})")
        chunks.append(entry)
    counts: dict[str, int] = {}
    for c in chunks:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return {
        "plannedAt": plan.planned_at,
        "slots": plan.slots,
        "running": plan.running,
        "notes": plan.notes,
        "dryRun": plan.dry_run,
        "counts": counts,
        "chunks": chunks,
    }
