"""The one transactional publisher: a task's :class:`PublishPlan`, executed inside its locks' critical section.

A publish plan says what a task writes — segments to insert, segments to mark unused, tombstones for dropped chunks —
and on which conditions (:class:`SegmentsUnchanged`: the input is still what was planned). :func:`execute_publish`
runs it in one metadata transaction through the store's own functions (``publish_segments``, or
``publish_appended_segments`` under an APPEND lock, ``upgrade_appended_segments`` under a REPLACE lock,
``mark_unused``, ``delete_pending_segments``), after checking every segment against the task's valid locks.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, Literal, Optional, Union

from pydantic import Field

from druidflow.exceptions import InputChangedError, LockRevokedError, SpecError
from druidflow.intervals import Interval, condense
from druidflow.locks.lock import LockType
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import TombstoneShardSpec
from druidflow.segments.timeline import Timeline
from druidflow.specs.base import DruidModel
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)


class SegmentsUnchanged(DruidModel):
    """Precondition: the ``visible`` (or ``used``) segments of ``interval`` are still exactly ``segmentIds``."""

    kind: Literal["segmentsUnchanged"] = "segmentsUnchanged"
    interval: Interval
    segment_ids: list[str]
    scope: Literal["visible", "used"] = "visible"
    what: str = "task"
    #: Segments waiting to be upgraded into this version (appended concurrently under an APPEND lock) are not
    #: changes: the publish upgrades them instead of the task reading them.
    upgraded_into: Optional[str] = None

    def check(self, store: Any, data_source: str, conn: Any, timeline: Any = None) -> None:
        """Raise :class:`InputChangedError` unless the segments are still the planned ones. ``timeline`` (one
        covering :attr:`interval`, read on ``conn``) saves reading another for a visible scope."""
        if self.scope == "visible":  # the timeline from narrow columns: only the visible sets' payloads are read
            if timeline is None:
                timeline = store.timeline(data_source, self.interval, conn=conn)
            segments = timeline.visible_segments(self.interval)
        else:
            segments = store.used_segments(data_source, self.interval, conn=conn)
        tolerated: set[str] = set()
        if self.upgraded_into is not None:
            pending = store.pending_upgrades(data_source, conn=conn)
            tolerated = {sid for sid, version in pending if version == self.upgraded_into} - set(self.segment_ids)
        current = sorted(s.id for s in segments if not s.is_tombstone and s.id not in tolerated)
        wanted = sorted(self.segment_ids)
        if current != wanted:
            gone = sorted(set(wanted) - set(current))
            new = sorted(set(current) - set(wanted))
            raise InputChangedError(
                f"{self.what}: the {self.scope} segments of {self.interval} changed after it was planned "
                f"({_some('gone', gone)}{'; ' if gone and new else ''}{_some('new', new)}); nothing was published. "
                "Run the task again."
            )


Precondition = Union[SegmentsUnchanged]


class ChunkVersion(DruidModel):
    """A time chunk and the version the task's lock gives its segments."""

    interval: Interval
    version: str


class PublishPlan(DruidModel):
    """What a task publishes, executed atomically by :func:`execute_publish` inside the lock's critical section.

    ``segments`` are inserted; ``markUnused`` ids are marked unused with ``markUnusedReason``; with
    ``overshadowedReason`` the used segments the new ones overshadow in ``lockIntervals`` (only those among
    ``overshadowedAmong`` when given) are marked unused with that reason. ``preconditions`` are checked first,
    unless the segments are all published already (a retried publish whose first attempt committed).
    ``dropExistingChunks`` (Druid's REPLACE mode): each of these chunks that gets no new segment but holds used data
    gets a tombstone in its version. Under a REPLACE lock, segments appended concurrently are upgraded into the new
    version, except ``upgradeExclude`` (a compaction's own inputs, already in its output).
    """

    task_id: str
    data_source: str
    lock_intervals: list[Interval]
    segments: list[DataSegment] = Field(default_factory=list)
    mark_unused: list[str] = Field(default_factory=list)
    mark_unused_reason: str = "overshadowed"
    overshadowed_reason: Optional[str] = None
    overshadowed_among: Optional[list[str]] = None
    preconditions: list[Precondition] = Field(default_factory=list)
    drop_existing_chunks: list[ChunkVersion] = Field(default_factory=list)
    upgrade_exclude: list[str] = Field(default_factory=list)


class PublishOutcome(DruidModel):
    """What :func:`execute_publish` wrote."""

    inserted: list[str] = Field(default_factory=list)
    already_present: list[str] = Field(default_factory=list)
    marked_unused: list[str] = Field(default_factory=list)
    republished: bool = False
    segments: list[DataSegment] = Field(default_factory=list)
    """Everything published, tombstones included."""


def execute_publish(
    plan: PublishPlan, rt: Runtime, finish: Optional[Callable[[Any, PublishOutcome], None]] = None
) -> PublishOutcome:
    """Run ``plan`` in one metadata transaction inside the critical section of the task's locks.

    Every segment must lie in a valid lock of the task whose version is at least the segment's (Druid's
    ``segmentTransactionalInsert`` check; an APPEND lock's segments take their chunk's version); a revoked or expired
    lock, or a failed precondition, raises before anything is written. In the same transaction the task's pending
    segments are forgotten and ``finish(connection, outcome)`` runs (it records the task SUCCESS with its report), so
    a task is SUCCESS exactly when its segments are in. Publishing the same segments again is a no-op.
    """
    intervals = condense(list(plan.lock_intervals))
    if not (plan.segments or plan.preconditions or plan.mark_unused or (plan.drop_existing_chunks and intervals)):
        outcome = PublishOutcome()  # nothing to write and nothing to check
        if finish is not None:
            with rt.store.engine.begin() as conn:
                finish(conn, outcome)
        return outcome
    if not intervals:
        raise SpecError("lockIntervals", [], "a publish needs the intervals of the task's locks")
    store = rt.store
    with rt.lockbox.critical_section(plan.task_id, intervals, plan.data_source) as cs:
        conn = cs.connection
        segments = list(plan.segments) + _tombstones(store, plan, conn)
        appending = any(lk.type is LockType.APPEND for lk in cs.locks)
        for s in segments:
            covering = [lk for lk in cs.locks if lk.interval.contains(s.interval)]
            if not covering or (
                not any(lk.type is LockType.APPEND for lk in covering) and max(lk.version for lk in covering) < s.version
            ):
                raise LockRevokedError(
                    f"task {plan.task_id}: no valid lock covers segment {s.id} (version {s.version}); nothing was published"
                )
        ids_wanted = {s.id for s in segments}
        republished = bool(segments) and store.stored_ids(sorted(ids_wanted), conn=conn) == ids_wanted
        checks = [] if republished else list(plan.preconditions)
        # The publish's one timeline, from narrow columns, read before anything is written: the preconditions
        # check it, and the overshadowed inputs are found in it with the new segments added (in memory).
        before = None
        if plan.overshadowed_reason is not None or any(c.scope == "visible" for c in checks):
            before = store.timeline_around(plan.data_source, [*intervals, *(c.interval for c in checks)], conn=conn)
        for condition in checks:
            condition.check(store, plan.data_source, conn, timeline=before)
        result = None
        if segments and appending:
            result = store.publish_appended_segments(segments, conn=conn)
        elif segments:
            result = store.publish_segments(segments, conn=conn)
        replace_versions = [lk.version for lk in cs.locks if lk.type is LockType.REPLACE]
        copies: list[DataSegment] = []
        if replace_versions and not appending:
            copies = store.upgrade_appended_segments(plan.data_source, replace_versions, exclude=plan.upgrade_exclude, conn=conn)
        marked: list[str] = []
        if plan.mark_unused:
            store.mark_unused(plan.data_source, segment_ids=plan.mark_unused, reason=plan.mark_unused_reason, conn=conn)
            marked += list(plan.mark_unused)
        if plan.overshadowed_reason is not None:
            assert before is not None
            inserted = set(result.inserted) - set(result.inserted_unused) if result else set()
            # Rarer writes (upgraded copies, appended upgrades, ids marked unused) change the sets in ways the
            # in-memory sum does not model: the timeline is read again for them.
            exact = not (copies or appending or plan.mark_unused)
            after = _with_segments(store, plan.data_source, before, [s for s in segments if s.id in inserted], conn) if exact else None
            if after is None:
                after = store.timeline_around(plan.data_source, intervals, conn=conn)
            ids = _overshadowed(store, plan, intervals, after, conn)
            if ids:
                store.mark_unused(plan.data_source, segment_ids=ids, reason=plan.overshadowed_reason, conn=conn)
            marked += ids
        outcome = PublishOutcome(
            inserted=list(result.inserted) if result else [],
            already_present=list(result.already_present) if result else [],
            marked_unused=sorted(set(marked)),
            republished=republished,
            segments=segments,
        )
        store.delete_pending_segments(plan.data_source, plan.task_id, conn=conn)
        if finish is not None:
            finish(conn, outcome)
    return outcome


def _tombstones(store: Any, plan: PublishPlan, conn: Any) -> list[DataSegment]:
    """``dropExistingChunks``: a tombstone for each chunk that gets no new segment but overlaps used data."""
    with_output = {s.interval for s in plan.segments}
    out = []
    for chunk in plan.drop_existing_chunks:
        if chunk.interval in with_output or store.used_span(plan.data_source, chunk.interval, conn=conn) is None:
            continue
        out.append(tombstone(plan.data_source, chunk.interval, chunk.version))
    return out


def tombstone(data_source: str, interval: Interval, version: str, **fields: Any) -> DataSegment:
    """A tombstone: a segment without rows that overshadows older data of its interval."""
    return DataSegment(
        data_source=data_source,
        interval=interval,
        version=version,
        load_spec={"type": "tombstone"},
        shard_spec=TombstoneShardSpec(partition_num=0, partitions=1),
        **fields,
    )


def _with_segments(store: Any, data_source: str, before: Any, added: Sequence[DataSegment], conn: Any) -> Any:
    """The timeline ``before`` with the partition sets of ``added`` (just inserted, used) in it, built in memory;
    None when one of them joins a set ``before`` already holds (its completeness needs the set's rows)."""
    if not added:
        return before
    from druidflow.metadata.segment_rows import concat_sets, load_sets

    old, new = before.set_columns(), Timeline(added).set_columns()
    held = set(zip(old.start.tolist(), old.end.tolist(), old.version, strict=True))
    if any(key in held for key in zip(new.start.tolist(), new.end.tolist(), new.version, strict=True)):
        return None
    sets = concat_sets([old, new])
    return Timeline.from_sets(data_source, sets, lambda ks: load_sets(conn, data_source, sets, ks))


def _overshadowed(store: Any, plan: PublishPlan, intervals: Sequence[Interval], timeline: Any, conn: Any) -> list[str]:
    """The used segments overlapping ``intervals`` that ``timeline`` (of everything overlapping them, after the
    publish's writes) finds overshadowed, among ``overshadowedAmong`` when given: ids read from a column, no
    payload parsed."""
    starts = [iv.start for iv in intervals]  # condensed: sorted and disjoint

    def overlaps(key: tuple[int, int, str]) -> bool:
        i = bisect_left(starts, key[1]) - 1  # the last interval starting before the set ends
        return i >= 0 and intervals[i].end > key[0]

    keys = [k for k in timeline.overshadowed_sets() if overlaps(k)]
    if not keys:
        return []
    ids = store.set_ids(plan.data_source, keys, conn=conn)
    among = set(plan.overshadowed_among) if plan.overshadowed_among is not None else None
    return sorted({sid for sid in ids if among is None or sid in among})


def _some(what: str, ids: Sequence[str]) -> str:
    if not ids:
        return ""
    return f"{what}: {', '.join(ids[:3])}{f' and {len(ids) - 3} more' if len(ids) > 3 else ''}"


def delete_unpublished(segments: Sequence[DataSegment], rt: Runtime) -> None:
    """Delete the pushed files of ``segments`` that no segment row points at (a publish that will never be)."""
    from druidflow.metadata import kill_queries

    files = {rt.storage.load_path(s.load_spec): s.load_spec for s in segments if s.load_spec and not s.is_tombstone}
    if not files:
        return
    try:
        with rt.store.engine.connect() as conn:
            referenced = kill_queries.referenced_paths(conn, list(files))
    except Exception:
        log.warning("could not check which pushed files are published; leaving them", exc_info=True)
        return
    for path, load_spec in files.items():
        if path in referenced:
            continue
        try:
            rt.storage.delete(load_spec)
        except Exception:
            log.warning("could not delete the unpublished segment file %s", path, exc_info=True)
