"""Publishing segments: Druid's ``commitSegments`` (idempotent, all or nothing) and the concurrent append/replace
commits (``commitAppendSegments``, ``commitReplaceSegments``) on top of it."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import MetadataUnavailableError, PublishConflictError, SegmentConflictError, SpecError
from druidflow.intervals import format_instant, now_ms, umbrella
from druidflow.metadata import upgrade
from druidflow.metadata.records import PublishResult
from druidflow.metadata.segment_rows import chunks, payload_bytes, same_payload, segment_row, unique_by_id
from druidflow.metadata.store_base import StoreBase
from druidflow.metadata.tables import segments as S
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.timeline import Timeline, check_same_version_overlaps

# Rows per INSERT statement: large batches, each one executemany round trip.
_INSERT_BATCH = 5000


class SegmentPublishing(StoreBase):
    """The publish half of the store."""

    def publish_segments(self, segments: Iterable[DataSegment], *, conn: Optional[Connection] = None) -> PublishResult:
        """Insert ``segments`` (all of one dataSource) in one transaction: all of them or none.

        Safe to retry: ids already stored with the same payload are left alone and reported as
        ``already_present``; an id stored with a *different* payload raises :class:`SegmentConflictError` (terminal)
        and nothing is written; losing an insert race raises :class:`PublishConflictError` (retryable). Segments
        overshadowed by others of the same batch are stored ``used = false``
        (Druid's rule). A batch whose segments would share a version with overlapping, unequal intervals (among
        themselves or with stored segments) raises :class:`~druidflow.exceptions.TimelineConflictError`.
        """
        batch = unique_by_id(list(segments))
        if not batch:
            return PublishResult()
        data_sources = {s.data_source for s in batch.values()}
        if len(data_sources) > 1:
            raise SpecError("segments", sorted(data_sources), "one publish must hold segments of one dataSource")
        data_source = data_sources.pop()
        payloads = {sid: payload_bytes(s) for sid, s in batch.items()}
        overshadowed = {s.id for s in Timeline(batch.values()).overshadowed()}
        now = format_instant(now_ms())
        with self._write(conn) as c:
            stored = self._stored_payloads(c, data_source, batch)
            conflicts = [sid for sid, payload in stored.items() if not same_payload(payload, payloads[sid])]
            if conflicts:
                # Deterministic: the stored rows will never change, so retrying cannot help.
                raise SegmentConflictError(
                    f"{len(conflicts)} segment id(s) already published with a different payload: "
                    f"{', '.join(sorted(conflicts)[:5])}{' ...' if len(conflicts) > 5 else ''}"
                )
            new = [s for sid, s in batch.items() if sid not in stored]
            self._check_versions(c, data_source, new)
            rows = [segment_row(s, payloads[s.id], used=s.id not in overshadowed, now=now) for s in new]
            _insert_rows(c, rows)
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
        for chunk in chunks(present):
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
        for chunk in chunks(versions):
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


def _insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert segment rows on ``conn``, in its transaction: PostgreSQL's COPY (one stream, no statement to parse
    per batch of rows), batched executemany elsewhere. A duplicate id raises :class:`PublishConflictError`."""
    if not rows:
        return
    try:
        if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
            _copy_rows(conn, rows)
        else:
            for i in range(0, len(rows), _INSERT_BATCH):
                conn.execute(sa.insert(S), rows[i : i + _INSERT_BATCH])
    except sa.exc.IntegrityError as exc:
        raise PublishConflictError(f"a concurrent publish inserted some of these segments first: {exc.orig}") from exc


def _copy_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    import psycopg2

    columns = list(rows[0])
    # Column by column: one formatter per column's type instead of a type test per field.
    fields = [_copy_column([row[c] for row in rows]) for c in columns]
    text = "\n".join(map("\t".join, zip(*fields, strict=True))) + "\n"
    del fields
    quoted = ", ".join(f'"{c}"' for c in columns)
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:  # the pooled connection was invalidated under this transaction
        raise MetadataUnavailableError("the metadata connection was lost before the COPY of the segment rows")
    cursor = dbapi.cursor()
    try:
        cursor.copy_expert(f"COPY {S.name} ({quoted}) FROM STDIN", io.StringIO(text))
    except psycopg2.IntegrityError as exc:
        raise sa.exc.IntegrityError("COPY", None, exc) from exc
    finally:
        cursor.close()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_column(values: list[Any]) -> list[str]:
    """The COPY text fields of one column's values: a column of one type is formatted in bulk (text escaped by
    one ``translate`` over the whole column), a mixed one value by value."""
    kinds = set(map(type, values))
    if kinds == {str}:
        joined = "\x00".join(values)  # NUL: a character no PostgreSQL text holds, so a safe separator
        if joined.count("\x00") == len(values) - 1:  # no value holds one (it would fail in the server anyway)
            if not any(c in joined for c in "\\\t\n\r"):
                return values
            return joined.translate(_COPY_ESCAPES).split("\x00")
    elif kinds == {int}:
        return list(map(str, values))
    elif kinds == {bytes}:
        return ["\\\\x" + v.hex() for v in values]
    return list(map(_copy_value, values))


def _copy_value(value: Any) -> str:
    """One field of COPY's text format: NULL as \\N, booleans as t/f, bytea as hex, text with its specials escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (bytes, bytearray)):
        return "\\\\x" + value.hex()
    if isinstance(value, int):
        return str(value)
    return str(value).translate(_COPY_ESCAPES)
