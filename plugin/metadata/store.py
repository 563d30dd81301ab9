"""``MetadataStore``: Druidflow's segments, pending segments, tasks and retention rules in a SQL database.

The counterpart of Druid's ``IndexerSQLMetadataStorageCoordinator`` and ``SqlSegmentsMetadataManager``, on
SQLAlchemy Core, identical on SQLite and PostgreSQL. Every write is one transaction; a method given ``conn``
(the lockbox's critical-section connection) runs inside it and leaves the commit to the caller.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from druidflow.exceptions import (
    MetadataError,
    PublishConflictError,
    SegmentBeingKilledError,
    SegmentConflictError,
    SpecError,
)
from druidflow.intervals import Interval, format_instant, now_ms, parse_instant, umbrella
from druidflow.metadata import allocation, migrate, upgrade
from druidflow.metadata.engine import DEFAULT_URL, make_engine
from druidflow.metadata.load_path import load_path
from druidflow.metadata.records import (
    TASK_STATES,
    PublishResult,
    SegmentAllocation,
    SegmentRecord,
    TaskRecord,
    segment_from_payload,
    task_status_payload,
)
from druidflow.metadata.tables import pending_segments as P
from druidflow.metadata.tables import rules as R
from druidflow.metadata.tables import segments as S
from druidflow.metadata.tables import tasks as T
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import Timeline, check_same_version_overlaps

# Rows per statement for IN lists and bulk inserts: well under SQLite's bound-parameter limit.
_BATCH = 500

_SEGMENT_STATE = (S.c.used, S.c.used_status_last_updated, S.c.unused_reason, S.c.created_date, S.c.kill_task_id)


class MetadataStore:
    """Segments, pending segments, tasks and rules of every dataSource, in one SQL database.

    ``MetadataStore("sqlite:///meta.db")`` or ``MetadataStore(engine)``; call :meth:`migrate` once to create or
    upgrade the tables.
    """

    def __init__(self, url_or_engine: Union[str, Engine] = DEFAULT_URL) -> None:
        self.engine: Engine = make_engine(url_or_engine)

    def __repr__(self) -> str:
        return f"MetadataStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def migrate(self) -> None:
        """Create or upgrade Druidflow's tables (Alembic ``upgrade head``; version table ``druidflow_alembic_version``)."""
        migrate.upgrade(self.engine)

    @contextmanager
    def _write(self, conn: Optional[Connection]) -> Iterator[Connection]:
        with self._schema_errors():
            if conn is not None:
                yield conn
            else:
                with self.engine.begin() as c:
                    yield c

    @contextmanager
    def _read(self, conn: Optional[Connection]) -> Iterator[Connection]:
        with self._schema_errors():
            if conn is not None:
                yield conn
            else:
                with self.engine.connect() as c:
                    yield c

    @contextmanager
    def _schema_errors(self) -> Iterator[None]:
        """Turn "no such table" into an error that says what to do."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            text = str(exc.orig)
            if "druidflow_" in text and ("no such table" in text or "does not exist" in text):
                raise MetadataError(
                    f"Druidflow's tables are missing in {self!r} ({text.splitlines()[0]}): create them with "
                    "MetadataStore(url).migrate(), or `airflow db migrate` with the druidflow provider installed"
                ) from exc
            raise

    # ------------------------------------------------------------------------------------------------ publish

    def publish_segments(self, segments: Iterable[DataSegment], *, conn: Optional[Connection] = None) -> PublishResult:
        """Insert ``segments`` (all of one dataSource) in one transaction: all of them or none.

        Safe to retry: ids already stored with the same payload are left alone and reported as
        ``already_present``; an id stored with a *different* payload raises :class:`SegmentConflictError` (terminal)
        and nothing is written; losing an insert race raises :class:`PublishConflictError` (retryable). Segments overshadowed by others of the same batch are stored ``used = false``
        (Druid's rule). A batch whose segments would share a version with overlapping, unequal intervals (among
        themselves or with stored segments) raises :class:`~druidflow.exceptions.TimelineConflictError`.
        """
        batch = _unique_by_id(list(segments))
        if not batch:
            return PublishResult()
        data_sources = {s.data_source for s in batch.values()}
        if len(data_sources) > 1:
            raise SpecError("segments", sorted(data_sources), "one publish must hold segments of one dataSource")
        data_source = data_sources.pop()
        payloads = {sid: _payload_bytes(s) for sid, s in batch.items()}
        overshadowed = {s.id for s in Timeline(batch.values()).overshadowed()}
        now = format_instant(now_ms())
        with self._write(conn) as c:
            stored = self._stored_payloads(c, data_source, batch)
            conflicts = [sid for sid, payload in stored.items() if not _same_payload(payload, payloads[sid])]
            if conflicts:
                # Deterministic: the stored rows will never change, so retrying cannot help.
                raise SegmentConflictError(
                    f"{len(conflicts)} segment id(s) already published with a different payload: "
                    f"{', '.join(sorted(conflicts)[:5])}{' ...' if len(conflicts) > 5 else ''}"
                )
            new = [s for sid, s in batch.items() if sid not in stored]
            self._check_versions(c, data_source, new)
            rows = [_segment_row(s, payloads[s.id], used=s.id not in overshadowed, now=now) for s in new]
            try:
                for i in range(0, len(rows), 5000):
                    c.execute(sa.insert(S), rows[i : i + 5000])
            except sa.exc.IntegrityError as exc:
                raise PublishConflictError(f"a concurrent publish inserted some of these segments first: {exc.orig}") from exc
        inserted = tuple(s.id for s in new)
        return PublishResult(
            inserted=inserted,
            already_present=tuple(sid for sid in batch if sid in stored),
            inserted_unused=tuple(sid for sid in inserted if sid in overshadowed),
        )

    def publish_appended_segments(
        self, segments: Iterable[DataSegment], *, conn: Optional[Connection] = None
    ) -> PublishResult:
        """Publish segments of an APPEND-locked task (Druid's ``commitAppendSegments``), with their upgraded
        copies in any newer version committed concurrently; entries for live REPLACE locks over them are recorded
        so that those tasks' publishes copy them (:mod:`druidflow.metadata.upgrade`)."""
        segments = list(segments)
        with self._write(conn) as c:
            result = self.publish_segments(segments, conn=c)
            inserted = set(result.inserted)
            new = [s for s in segments if s.id in inserted]
            if new:
                copies = upgrade.copies_after_append(c, new[0].data_source, new)
                if copies:
                    self.publish_segments(copies, conn=c)
            return result

    def upgrade_appended_segments(
        self,
        data_source: str,
        replace_versions: Iterable[str],
        *,
        exclude: Iterable[str] = (),
        conn: Optional[Connection] = None,
    ) -> list[DataSegment]:
        """In a REPLACE-locked task's publish (after its segments are inserted on ``conn``): publish copies, in its
        versions, of the segments appended under APPEND locks meanwhile (Druid's ``commitReplaceSegments``).
        ``exclude`` names appended segments the task read as input. Returns the copies."""
        with self._write(conn) as c:
            copies = upgrade.copies_for_replace(c, data_source, replace_versions, exclude=exclude)
            if copies:
                self.publish_segments(copies, conn=c)
            return copies

    def pending_upgrades(self, data_source: str, *, conn: Optional[Connection] = None) -> list[tuple[str, str]]:
        """``(segment id, REPLACE version)`` of appended segments waiting for a replace to publish."""
        with self._read(conn) as c:
            return upgrade.pending_upgrades(c, data_source)

    def _stored_payloads(self, conn: Connection, data_source: str, batch: dict[str, DataSegment]) -> dict[str, bytes]:
        """The stored payloads of the batch's ids that are already in the table."""
        # A stored row with one of these ids has the same interval, so it lies inside the batch's span: one
        # range query finds them all (usually none), instead of an IN list per few hundred ids.
        span = umbrella([s.interval for s in batch.values()])
        known = conn.execute(
            sa.select(S.c.id).where(S.c.dataSource == data_source, S.c.start_ms >= span.start, S.c.end_ms <= span.end)
        )
        present = [r.id for r in known if r.id in batch]
        stored: dict[str, bytes] = {}
        for chunk in _chunks(present):
            for row in conn.execute(sa.select(S.c.id, S.c.payload).where(S.c.id.in_(chunk))):
                stored[row.id] = bytes(row.payload)
        return stored

    def _check_versions(self, conn: Connection, data_source: str, new: Sequence[DataSegment]) -> None:
        """Refuse segments that would put two sets of one version on overlapping, unequal intervals."""
        if not new:
            return
        span = umbrella([s.interval for s in new])
        versions = sorted({s.version for s in new})
        sets = {(s.interval.start, s.interval.end, s.version) for s in new}
        for chunk in _chunks(versions):
            rows = conn.execute(
                sa.select(S.c.start_ms, S.c.end_ms, S.c.version)
                .distinct()
                .where(
                    S.c.dataSource == data_source,
                    S.c.version.in_(chunk),
                    S.c.start_ms < span.end,
                    S.c.end_ms > span.start,
                )
            )
            sets.update((r.start_ms, r.end_ms, r.version) for r in rows)
        check_same_version_overlaps(data_source, sets)

    # ------------------------------------------------------------------------------------------------ reads

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
        query = sa.select(S.c.payload, *_SEGMENT_STATE).where(*_where(data_source, interval, contained))
        if not include_unused:
            query = query.where(S.c.used == sa.true())
        return self._records(query, conn)

    def used_segments(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> list[DataSegment]:
        """The used segments of ``data_source`` overlapping ``interval`` (all when None), overshadowed or not."""
        query = sa.select(S.c.payload).where(*_where(data_source, interval, False), S.c.used == sa.true())
        with self._read(conn) as c:
            rows = c.execute(_ordered(query)).all()
        with _gc_paused():
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
        query = sa.select(S.c.payload, *_SEGMENT_STATE).where(
            *_where(data_source, interval, True), S.c.used == sa.false()
        )
        if versions is not None:
            query = query.where(S.c.version.in_(list(versions)))
        if max_used_status_last_updated is not None:
            query = query.where(S.c.used_status_last_updated <= max_used_status_last_updated)
        return self._records(query, conn, limit=limit)

    def visible_segments(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> list[DataSegment]:
        """The segments a query of ``interval`` sees: used segments through the timeline, tombstones left out."""
        return self.timeline(data_source, interval, conn=conn).visible_segments(interval)

    def timeline(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> Timeline:
        """The timeline of the used segments overlapping ``interval`` (all when None)."""
        return Timeline(self.used_segments(data_source, interval, conn=conn))

    def datasources(self, *, used_only: bool = False, conn: Optional[Connection] = None) -> list[str]:
        """Every dataSource with a segment row (with ``used_only``, a used one), sorted."""
        query = sa.select(S.c.dataSource).distinct()
        if used_only:
            query = query.where(S.c.used == sa.true())
        with self._read(conn) as c:
            return sorted(r[0] for r in c.execute(query))

    def get_segment(self, segment_id: str, *, conn: Optional[Connection] = None) -> Optional[SegmentRecord]:
        """The row of ``segment_id``, used or not, or None."""
        records = self._records(sa.select(S.c.payload, *_SEGMENT_STATE).where(S.c.id == segment_id), conn)
        return records[0] if records else None

    def _records(self, query: sa.Select, conn: Optional[Connection], limit: Optional[int] = None) -> list[SegmentRecord]:
        query = _ordered(query)
        if limit is not None:
            query = query.limit(limit)
        with self._read(conn) as c:
            rows = c.execute(query).all()
        with _gc_paused():
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

    # ------------------------------------------------------------------------------------------------ used flag

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
        _check_reason(reason)
        where = self._selection(data_source, interval, segment_ids)
        values = {"used": False, "used_status_last_updated": format_instant(now_ms()), "unused_reason": reason}
        with self._write(conn) as c:
            return sum(
                c.execute(sa.update(S).where(*w, S.c.used == sa.true()).values(**values)).rowcount for w in where
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
                for chunk in _chunks(revived)
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
        _check_reason(reason)
        with self._write(conn) as c:
            candidates = self.used_segments(data_source, interval, conn=c)
            if not candidates:
                return 0
            # Whatever overshadows a candidate overlaps it: read the whole span the candidates cover.
            span = umbrella([s.interval for s in candidates])
            timeline = Timeline(self.used_segments(data_source, span, conn=c))
            ids = [s.id for s in timeline.overshadowed() if interval is None or s.interval.overlaps(interval)]
            values = {"used": False, "used_status_last_updated": format_instant(now_ms()), "unused_reason": reason}
            return sum(
                c.execute(sa.update(S).where(S.c.id.in_(chunk), S.c.used == sa.true()).values(**values)).rowcount
                for chunk in _chunks(ids)
            )

    @staticmethod
    def _selection(
        data_source: str, interval: Optional[Interval], segment_ids: Optional[Iterable[str]]
    ) -> list[list[Any]]:
        """WHERE clauses (one per IN-list batch) for an interval, a list of ids, or a whole dataSource."""
        if interval is not None and segment_ids is not None:
            raise SpecError("segment_ids", segment_ids, "give an interval or segment ids, not both")
        if segment_ids is not None:
            ids = sorted(set([segment_ids] if isinstance(segment_ids, str) else segment_ids))
            return [[S.c.dataSource == data_source, S.c.id.in_(chunk)] for chunk in _chunks(ids)]
        return [list(_where(data_source, interval, True))]

    # ------------------------------------------------------------------------------------------------ allocation

    def allocate_segment(
        self,
        data_source: str,
        interval: Interval,
        *,
        sequence_name: str,
        previous_segment_id: str = "",
        lock_version: str,
        task_allocator_id: Optional[str] = None,
        skip_lineage_check: bool = True,
        conn: Optional[Connection] = None,
    ) -> SegmentAllocation:
        """A new segment id for an appending task in ``interval`` (Druid's segmentAllocate), idempotent per
        request; see :mod:`druidflow.metadata.allocation` for the rules. Raises
        :class:`~druidflow.exceptions.SegmentAllocationError` when no id can be given."""
        with self._write(conn) as c:
            return allocation.allocate(
                c,
                data_source,
                interval,
                sequence_name=sequence_name,
                previous_segment_id=previous_segment_id,
                lock_version=lock_version,
                task_allocator_id=task_allocator_id,
                skip_lineage_check=skip_lineage_check,
            )

    def pending_segments(
        self, data_source: str, interval: Optional[Interval] = None, *, conn: Optional[Connection] = None
    ) -> list[SegmentAllocation]:
        """The allocated, not yet deleted pending segment ids of ``data_source`` overlapping ``interval``."""
        query = sa.select(P.c.payload).where(P.c.dataSource == data_source)
        if interval is not None:
            query = query.where(P.c.start_ms < interval.end, P.c.end_ms > interval.start)
        query = query.order_by(P.c.start_ms, P.c.end_ms, P.c.version, P.c.partition_num)
        with self._read(conn) as c:
            return [SegmentAllocation.model_validate_json(r.payload) for r in c.execute(query)]

    def delete_pending_segments(
        self, data_source: Optional[str], task_allocator_id: str, *, conn: Optional[Connection] = None
    ) -> int:
        """Forget the pending segments a task (group) allocated, once it has finished (in ``data_source``, or in
        every dataSource when None). Returns how many."""
        where = [P.c.task_allocator_id == task_allocator_id]
        if data_source is not None:
            where.append(P.c.dataSource == data_source)
        with self._write(conn) as c:
            return c.execute(sa.delete(P).where(*where)).rowcount

    # ------------------------------------------------------------------------------------------------ tasks

    def insert_task(
        self,
        task_id: str,
        type: str,
        datasource: str,
        group_id: str,
        payload: dict[str, Any],
        *,
        conn: Optional[Connection] = None,
    ) -> bool:
        """Record a submitted task as RUNNING and active (Druid's ``druid_tasks`` insert). Returns False, changing
        nothing, when a task with this id is already recorded."""
        now = format_instant(now_ms())
        row = {
            "id": task_id,
            "type": type,
            "dataSource": datasource,
            "group_id": group_id,
            "status": "RUNNING",
            "active": True,
            "payload": json.dumps(payload, separators=(",", ":")),
            "status_payload": task_status_payload(task_id, "RUNNING", -1, None),
            "created_date": now,
            "updated_date": now,
        }
        with self._write(conn) as c:
            return c.execute(_insert_ignore(c, T, row, "id")).rowcount == 1

    def set_task_status(
        self,
        task_id: str,
        status: str,
        *,
        report: Optional[dict[str, Any]] = None,
        error_msg: Optional[str] = None,
        conn: Optional[Connection] = None,
    ) -> TaskRecord:
        """Set a task's state (RUNNING, SUCCESS or FAILED): ``active`` and the duration follow from it, the error
        message is replaced, and ``report`` (when given) is stored. Returns the updated record."""
        if status not in TASK_STATES:
            raise SpecError("status", status, f"a task status is one of {', '.join(TASK_STATES)}")
        now = now_ms()
        with self._write(conn) as c:
            row = c.execute(sa.select(T.c.created_date).where(T.c.id == task_id)).first()
            if row is None:
                raise SpecError("task_id", task_id, "no such task in the metadata store")
            duration = -1 if status == "RUNNING" else max(0, now - parse_instant(row.created_date))
            values: dict[str, Any] = {
                "status": status,
                "active": status == "RUNNING",
                "status_payload": task_status_payload(task_id, status, duration, error_msg),
                "error_msg": error_msg,
                "updated_date": format_instant(now),
            }
            if report is not None:
                values["report"] = json.dumps(report, separators=(",", ":"))
            c.execute(sa.update(T).where(T.c.id == task_id).values(**values))
            return self._tasks(c, sa.select(T).where(T.c.id == task_id))[0]

    def get_task(self, task_id: str, *, conn: Optional[Connection] = None) -> Optional[TaskRecord]:
        """The task ``task_id``, or None."""
        with self._read(conn) as c:
            found = self._tasks(c, sa.select(T).where(T.c.id == task_id))
        return found[0] if found else None

    def list_tasks(
        self,
        datasource: Optional[str] = None,
        active: Optional[bool] = None,
        limit: Optional[int] = 1000,
        *,
        conn: Optional[Connection] = None,
    ) -> list[TaskRecord]:
        """Tasks, newest first, optionally of one dataSource and only active (or only complete) ones."""
        query = sa.select(T)
        if datasource is not None:
            query = query.where(T.c.dataSource == datasource)
        if active is not None:
            query = query.where(T.c.active == (sa.true() if active else sa.false()))
        query = query.order_by(T.c.created_date.desc(), T.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read(conn) as c:
            return self._tasks(c, query)

    @staticmethod
    def _tasks(conn: Connection, query: sa.Select) -> list[TaskRecord]:
        return [
            TaskRecord(
                id=r.id,
                type=r.type,
                data_source=r.dataSource,
                group_id=r.group_id,
                status=r.status,
                active=bool(r.active),
                payload=json.loads(r.payload),
                status_payload=json.loads(r.status_payload) if r.status_payload else {},
                report=json.loads(r.report) if r.report else None,
                error_msg=r.error_msg,
                created_date=r.created_date,
                updated_date=r.updated_date,
            )
            for r in conn.execute(query)
        ]

    # ------------------------------------------------------------------------------------------------ rules

    def set_rules(self, data_source: str, rules: list[dict[str, Any]], *, conn: Optional[Connection] = None) -> None:
        """Replace the retention rules of ``data_source`` (a JSON list, evaluated in order, first match wins)."""
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise SpecError("rules", rules, "rules are a list of JSON objects")
        payload = json.dumps(rules, separators=(",", ":"))
        version = format_instant(now_ms())
        with self._write(conn) as c:
            updated = c.execute(
                sa.update(R).where(R.c.dataSource == data_source).values(payload=payload, version=version)
            ).rowcount
            if not updated:
                c.execute(sa.insert(R).values(dataSource=data_source, payload=payload, version=version))

    def get_rules(self, data_source: str, *, conn: Optional[Connection] = None) -> list[dict[str, Any]]:
        """The retention rules of ``data_source``; an empty list when none were set."""
        with self._read(conn) as c:
            payload = c.execute(sa.select(R.c.payload).where(R.c.dataSource == data_source)).scalar()
        return json.loads(payload) if payload else []

    def all_rules(self, *, conn: Optional[Connection] = None) -> dict[str, list[dict[str, Any]]]:
        """Every dataSource's retention rules."""
        with self._read(conn) as c:
            return {r.dataSource: json.loads(r.payload) for r in c.execute(sa.select(R.c.dataSource, R.c.payload))}


# ---------------------------------------------------------------------------------------------------- helpers


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects at once.

    Allocating hundreds of thousands of objects triggers full collections that rescan every live object (a
    publish or read of 100k segments); the objects built here hold no cycles, so pausing only skips wasted work.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _unique_by_id(segments: list[DataSegment]) -> dict[str, DataSegment]:
    batch: dict[str, DataSegment] = {}
    for s in segments:
        seen = batch.setdefault(s.id, s)
        if seen is not s and seen.payload() != s.payload():
            raise SegmentConflictError(f"segment {s.id} appears twice in one publish with different payloads")
    return batch


def _payload_bytes(segment: DataSegment) -> bytes:
    """``segment.payload()`` as compact JSON; the interval string comes from a cache (publishes repeat intervals)."""
    data = segment.model_dump(exclude={"interval"})
    iv = segment.interval
    data = {"dataSource": data.pop("dataSource"), "interval": f"{_iso(iv.start)}/{_iso(iv.end)}", **data}
    data["identifier"] = segment.id
    return json.dumps(data, separators=(",", ":")).encode()


def _same_payload(stored: bytes, new: bytes) -> bool:
    return stored == new or json.loads(stored) == json.loads(new)


def _segment_row(segment: DataSegment, payload: bytes, *, used: bool, now: str) -> dict[str, Any]:
    iv = segment.interval
    return {
        "id": segment.id,
        "dataSource": segment.data_source,
        "created_date": now,
        "start": _iso(iv.start),
        "end": _iso(iv.end),
        "start_ms": iv.start,
        "end_ms": iv.end,
        "partitioned": segment.shard_spec.partitioned,
        "version": segment.version,
        "partition_num": segment.partition_num,
        "used": used,
        "used_status_last_updated": now,
        "unused_reason": None if used else "overshadowed",
        "kill_task_id": None,
        "size": segment.size,
        "num_rows": segment.num_rows,
        "load_path": load_path(segment.load_spec),
        "payload": payload,
    }


# Segments of one publish share few distinct bounds; formatting each once matters at 100k segments.
_iso = lru_cache(maxsize=65536)(format_instant)


def _where(data_source: str, interval: Optional[Interval], contained: bool) -> list[Any]:
    where: list[Any] = [S.c.dataSource == data_source]
    if interval is not None:
        if contained:
            where += [S.c.start_ms >= interval.start, S.c.end_ms <= interval.end]
        else:
            where += [S.c.start_ms < interval.end, S.c.end_ms > interval.start]
    return where


def _ordered(query: sa.Select) -> sa.Select:
    return query.order_by(S.c.start_ms, S.c.end_ms, S.c.version, S.c.partition_num)


def _chunks(items: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _check_reason(reason: str) -> None:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 64:
        raise SpecError("reason", reason, "a reason is a non-empty string of at most 64 characters")


def _insert_ignore(conn: Connection, table: sa.Table, row: dict[str, Any], key: str) -> Any:
    """INSERT that does nothing when ``key`` is already taken (ON CONFLICT DO NOTHING on both dialects)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**row).on_conflict_do_nothing(index_elements=[key])
