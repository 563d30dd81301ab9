"""Reading segments: rows with their state, the used segments, and the timeline built from narrow columns (a
payload is parsed only for a segment handed out in full)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.intervals import Interval, condense, umbrella
from druidflow.metadata.records import SegmentRecord, segment_from_payload
from druidflow.metadata.segment_rows import (
    SEGMENT_STATE,
    SegmentsChangedError,
    chunks,
    concat_sets,
    gc_paused,
    ids_of_sets,
    load_sets,
    ordered,
    used_sets,
    where,
)
from druidflow.metadata.store_base import StoreBase
from druidflow.metadata.tables import segments as S
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import EntrySummary, Timeline

# Tries of a read whose segments a concurrent kill deleted between its two queries.
_READ_TRIES = 3


class SegmentReads(StoreBase):
    """The read half of the store."""

    def segments(
        self,
        data_source: str,
        interval: Optional[Interval] = None,
        *,
        include_unused: bool = False,
        contained: bool = False,
        conn: Optional[Connection] = None,
    ) -> list[SegmentRecord]:
        """Segment rows of ``data_source`` overlapping ``interval`` (or inside it, with ``contained``), used ones
        only unless ``include_unused``; ordered by start, end, version, partition number."""
        query = sa.select(S.c.payload, *SEGMENT_STATE).where(*where(data_source, interval, contained))
        if not include_unused:
            query = query.where(S.c.used == sa.true())
        return self._records(query, conn)

    def used_segments(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> list[DataSegment]:
        """The used segments of ``data_source`` overlapping ``interval`` (all when None), overshadowed or not."""
        query = sa.select(S.c.payload).where(*where(data_source, interval, False), S.c.used == sa.true())
        with self._read(conn) as c:
            rows = c.execute(ordered(query)).all()
        with gc_paused():
            return [segment_from_payload(r.payload) for r in rows]

    def unused_segments(
        self,
        data_source: str,
        interval: Optional[Interval] = None,
        *,
        versions: Optional[Sequence[str]] = None,
        max_used_status_last_updated: Optional[str] = None,
        limit: Optional[int] = None,
        conn: Optional[Connection] = None,
    ) -> list[SegmentRecord]:
        """Unused segments lying entirely inside ``interval`` (what a kill may delete), oldest first.

        ``versions`` restricts the versions; ``max_used_status_last_updated`` (an ISO instant) keeps only rows
        marked unused at or before it; ``limit`` caps the count.
        """
        query = sa.select(S.c.payload, *SEGMENT_STATE).where(*where(data_source, interval, True), S.c.used == sa.false())
        if versions is not None:
            query = query.where(S.c.version.in_(list(versions)))
        if max_used_status_last_updated is not None:
            query = query.where(S.c.used_status_last_updated <= max_used_status_last_updated)
        return self._records(query, conn, limit=limit)

    def visible_segments(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> list[DataSegment]:
        """The segments a query of ``interval`` sees: used segments through the timeline, tombstones left out.
        Only these segments' payloads are read."""
        for attempt in range(_READ_TRIES):
            try:
                with self._read(conn) as c:
                    return self.timeline(data_source, interval, conn=c).visible_segments(interval)
            except SegmentsChangedError:
                if conn is not None or attempt == _READ_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def timeline(
        self,
        data_source: str,
        interval: Optional[Interval] = None,
        *,
        sizes: bool = False,
        conn: Optional[Connection] = None,
    ) -> Timeline:
        """The timeline of the used segments overlapping ``interval`` (all when None), built from the narrow
        columns aggregated per partition set; a set's payloads are read when the timeline first hands them out
        (on ``conn`` when given: use the timeline while it is open). Raises :class:`SegmentsChangedError`
        (retryable) if a segment it hands out was deleted meanwhile. ``sizes`` fills in the per-set bytes and
        rows :meth:`Timeline.visible_summary` reports (zeros otherwise)."""
        with self._read(conn) as c:
            sets = used_sets(c, data_source, interval, sizes=sizes)

        def load(positions: list[int]) -> list[list[DataSegment]]:
            with self._read(conn) as c:
                return load_sets(c, data_source, sets, positions)

        return Timeline.from_sets(data_source, sets, load)

    def timeline_around(
        self, data_source: str, intervals: Sequence[Interval], *, conn: Optional[Connection] = None
    ) -> Timeline:
        """The narrow-column timeline of the used segments overlapping ``intervals`` and of every used segment
        overlapping those: all that decides what is visible, or overshadowed, anywhere in them. One aggregate read
        per disjoint span (far-apart intervals do not read the time between them); payloads are read only for the
        sets the timeline hands out (on ``conn`` when given)."""
        with self._read(conn) as c:
            spans = []
            for iv in intervals:
                used = self.used_span(data_source, iv, conn=c)
                spans.append(iv if used is None else umbrella([iv, used]))
            sets = concat_sets([used_sets(c, data_source, span) for span in condense(spans)])

        def load(positions: list[int]) -> list[list[DataSegment]]:
            with self._read(conn) as c:
                return load_sets(c, data_source, sets, positions)

        return Timeline.from_sets(data_source, sets, load)

    def set_ids(
        self, data_source: str, keys: Sequence[tuple[int, int, str]], *, conn: Optional[Connection] = None
    ) -> list[str]:
        """The ids of the used segments of the partition sets ``keys`` (``(start_ms, end_ms, version)``), read
        from a column (no payload parsed)."""
        with self._read(conn) as c:
            return ids_of_sets(c, data_source, keys)

    def stored_ids(self, segment_ids: Sequence[str], *, conn: Optional[Connection] = None) -> set[str]:
        """Which of ``segment_ids`` have a row (used or not)."""
        out: set[str] = set()
        with self._read(conn) as c:
            for chunk in chunks(sorted(set(segment_ids))):
                out.update(r[0] for r in c.execute(sa.select(S.c.id).where(S.c.id.in_(chunk))))
        return out

    def visible_summary(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> list[EntrySummary]:
        """The visible timeline's entries with their segment counts, rows and bytes; no payload is read."""
        return self.timeline(data_source, interval, sizes=True, conn=conn).visible_summary(interval)

    def used_span(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> Optional[Interval]:
        """The span of the used segments overlapping ``interval`` (from the first start to the last end), or None
        when there are none: one aggregate over an index."""
        query = sa.select(sa.func.min(S.c.start_ms), sa.func.max(S.c.end_ms)).where(
            *where(data_source, interval, False), S.c.used == sa.true()
        )
        with self._read(conn) as c:
            lo, hi = c.execute(query).one()
        return None if lo is None else Interval(int(lo), int(hi))

    def datasources(self, *, used_only: bool = False, conn: Optional[Connection] = None) -> list[str]:
        """Every dataSource with a segment row (with ``used_only``, a used one), sorted."""
        query = sa.select(S.c.dataSource).distinct()
        if used_only:
            query = query.where(S.c.used == sa.true())
        with self._read(conn) as c:
            return sorted(r[0] for r in c.execute(query))

    def get_segment(self, segment_id: str, *, conn: Optional[Connection] = None) -> Optional[SegmentRecord]:
        """The row of ``segment_id``, used or not, or None."""
        records = self._records(sa.select(S.c.payload, *SEGMENT_STATE).where(S.c.id == segment_id), conn)
        return records[0] if records else None

    def _records(self, query: sa.Select[Any], conn: Optional[Connection], limit: Optional[int] = None) -> list[SegmentRecord]:
        query = ordered(query)
        if limit is not None:
            query = query.limit(limit)
        with self._read(conn) as c:
            rows = c.execute(query).all()
        with gc_paused():
            return [
                SegmentRecord(
                    segment=segment_from_payload(r.payload),
                    used=bool(r.used),
                    used_status_last_updated=r.used_status_last_updated,
                    unused_reason=r.unused_reason,
                    created_date=r.created_date,
                    kill_task_id=r.kill_task_id,
                )
                for r in rows
            ]
