"""The used flag: marking segments unused (drop, retention, overshadowed) and used again (Druid's
``markNonOvershadowedSegmentsAsUsed``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import SegmentBeingKilledError, SpecError
from druidflow.intervals import Interval, format_instant, now_ms, umbrella
from druidflow.metadata.records import segment_from_payload
from druidflow.metadata.segment_reads import SegmentReads
from druidflow.metadata.segment_rows import check_reason, chunks, load_sets, used_sets, where
from druidflow.metadata.tables import segments as S
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import Timeline


class UsedFlag(SegmentReads):
    """Changes of the used flag."""

    def mark_unused(
        self,
        data_source: str,
        *,
        interval: Optional[Interval] = None,
        segment_ids: Optional[Iterable[str]] = None,
        reason: str,
        conn: Optional[Connection] = None,
    ) -> int:
        """Mark used segments unused: those lying entirely inside ``interval``, those of ``segment_ids``, or (with
        neither) every segment of ``data_source``. ``reason`` says why (``dropped-by-user``, ``dropped-by-rule``,
        ``overshadowed-by-compaction``, ...). Returns how many rows changed; their files stay until a kill."""
        check_reason(reason)
        selection = self._selection(data_source, interval, segment_ids)
        values = {"used": False, "used_status_last_updated": format_instant(now_ms()), "unused_reason": reason}
        with self._write(conn) as c:
            return sum(
                c.execute(sa.update(S).where(*w, S.c.used == sa.true()).values(**values)).rowcount for w in selection
            )

    def mark_used(
        self,
        data_source: str,
        *,
        interval: Optional[Interval] = None,
        segment_ids: Optional[Iterable[str]] = None,
        conn: Optional[Connection] = None,
    ) -> int:
        """Mark unused segments used again (inside ``interval``, by ``segment_ids``, or all of ``data_source``).

        As Druid's ``markNonOvershadowedSegmentsAsUsed``, only segments that would not be overshadowed come back.
        Raises :class:`SegmentBeingKilledError`, changing nothing, if any selected row is claimed by a kill.
        Returns how many rows changed.
        """
        with self._write(conn) as c:
            candidates: list[tuple[str, DataSegment, Optional[str]]] = []
            for w in self._selection(data_source, interval, segment_ids):
                rows = c.execute(sa.select(S.c.id, S.c.payload, S.c.kill_task_id).where(*w, S.c.used == sa.false()))
                candidates += [(r.id, segment_from_payload(r.payload), r.kill_task_id) for r in rows]
            claimed = sorted(f"{sid} (kill {k})" for sid, _, k in candidates if k is not None)
            if claimed:
                raise SegmentBeingKilledError(
                    f"{len(claimed)} segment(s) are being deleted by a kill and cannot be marked used: "
                    f"{', '.join(claimed[:5])}{' ...' if len(claimed) > 5 else ''}"
                )
            if not candidates:
                return 0
            unused = [s for _, s, _ in candidates]
            span = umbrella([s.interval for s in unused])
            timeline = Timeline([*self.used_segments(data_source, span, conn=c), *unused])
            overshadowed = {id(s) for s in timeline.overshadowed()}
            revived = [sid for sid, s, _ in candidates if id(s) not in overshadowed]
            values = {"used": True, "used_status_last_updated": format_instant(now_ms()), "unused_reason": None}
            return sum(
                c.execute(
                    sa.update(S).where(S.c.id.in_(chunk), S.c.used == sa.false(), S.c.kill_task_id.is_(None)).values(**values)
                ).rowcount
                for chunk in chunks(revived)
            )

    def mark_overshadowed_unused(
        self,
        data_source: str,
        interval: Optional[Interval] = None,
        reason: str = "overshadowed",
        *,
        conn: Optional[Connection] = None,
    ) -> int:
        """Mark unused every used segment (overlapping ``interval``, or anywhere) overshadowed by complete sets of
        higher versions (the Coordinator's ``MarkOvershadowedSegmentsAsUnused``). Returns how many changed."""
        check_reason(reason)
        with self._write(conn) as c:
            sets = used_sets(c, data_source, interval)
            if not len(sets.start):
                return 0
            if interval is not None:
                # Whatever overshadows a candidate overlaps it: read the whole span the candidates cover.
                sets = used_sets(c, data_source, Interval(int(sets.start.min()), int(sets.end.max())))
            timeline = Timeline.from_sets(data_source, sets, lambda ks: load_sets(c, data_source, sets, ks))
            shadowed = [k for k in timeline.overshadowed_sets() if interval is None or (k[0] < interval.end and k[1] > interval.start)]
            if not shadowed:
                return 0
            values = {"used": False, "used_status_last_updated": format_instant(now_ms()), "unused_reason": reason}
            update = (
                sa.update(S)
                .where(
                    S.c.dataSource == data_source, S.c.used == sa.true(), S.c.start_ms == sa.bindparam("s"),
                    S.c.end_ms == sa.bindparam("e"), S.c.version == sa.bindparam("v"),
                )
                .values(**values)
            )
            # executemany: one statement per overshadowed set, by its (interval, version) key.
            result = c.execute(update, [{"s": s, "e": e, "v": v} for s, e, v in shadowed])
            return int(result.rowcount)

    @staticmethod
    def _selection(
        data_source: str, interval: Optional[Interval], segment_ids: Optional[Iterable[str]]
    ) -> list[list[Any]]:
        """WHERE clauses (one per IN-list batch) for an interval, a list of ids, or a whole dataSource."""
        if interval is not None and segment_ids is not None:
            raise SpecError("segment_ids", segment_ids, "give an interval or segment ids, not both")
        if segment_ids is not None:
            ids = sorted(set([segment_ids] if isinstance(segment_ids, str) else segment_ids))
            return [[S.c.dataSource == data_source, S.c.id.in_(chunk)] for chunk in chunks(ids)]
        return [list(where(data_source, interval, True))]
