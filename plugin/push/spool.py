"""The durable spool: acknowledged events waiting for their window's handoff, in the metadata DB.

One row per (push request, segment bucket): the events as JSON lines, their count and the bucket. A push is
answered only after its rows' transaction committed (SQLite in WAL mode with ``synchronous=FULL``, PostgreSQL
with ``synchronous_commit`` on: both fsync before COMMIT returns), so an acknowledged event survives any crash
of the receiver or the indexer. A handoff removes exactly the rows it published, in the same transaction as the
segments (:func:`consume`); if any of them is already gone, another handoff published them and this one rolls
back. Row ids are positions, not a watermark: concurrent pushes may commit out of id order, so nothing ever
assumes "everything below id N is handed off".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from druidflow.exceptions import PublishConflictError, RetryableError
from druidflow.intervals import Interval, format_instant, now_ms
from druidflow.metadata.tables import push_datasources as D
from druidflow.metadata.tables import push_spool as S

_ID_BATCH = 500


class SpoolFullError(RetryableError):
    """The dataSource's spool holds its ``bufferSize`` events: the push is refused (HTTP 429), nothing is kept."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SpoolPiece:
    """The events of one request that fall into one segment bucket, as JSON lines."""

    bucket: Interval
    events: int
    payload: bytes


@dataclass(frozen=True)
class SpoolEntry:
    id: int
    bucket: Interval
    events: int


@dataclass(frozen=True)
class PendingSummary:
    data_source: str
    events: int
    batches: int
    buckets: int
    oldest_bucket: Optional[Interval]
    committed_events: int
    last_task_id: Optional[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataSource": self.data_source,
            "pendingEvents": self.events,
            "pendingBatches": self.batches,
            "pendingBuckets": self.buckets,
            "oldestPendingBucket": str(self.oldest_bucket) if self.oldest_bucket else None,
            "committedEvents": self.committed_events,
            "lastHandoffTask": self.last_task_id,
        }


def pending_events(engine: Engine, data_source: str) -> int:
    """Events spooled for the dataSource and not yet handed off."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(D.c.pending_events).where(D.c.dataSource == data_source)).scalar() or 0)


def _ensure_row(engine: Engine, data_source: str) -> None:
    with engine.connect() as conn:
        if conn.execute(sa.select(D.c.dataSource).where(D.c.dataSource == data_source)).first() is not None:
            return
    try:
        with engine.begin() as conn:
            conn.execute(D.insert().values(dataSource=data_source, pending_events=0, committed_events=0, committed_batches=0,
                                           last_spool_id=0, last_task_id=None, updated_date=format_instant(now_ms())))
    except IntegrityError:
        pass  # a concurrent first push created it


def append(engine: Engine, data_source: str, pieces: Sequence[SpoolPiece], capacity: int) -> None:
    """Spool one request's events durably, or none of them: raises :class:`SpoolFullError` when they do not fit.

    The dataSource's pending count is raised only if the events fit, in the transaction that inserts them; that
    one-row conditional update is the capacity check (atomic on every database) and costs the same however
    full the spool is.
    """
    total = sum(p.events for p in pieces)
    if not total:
        return
    _ensure_row(engine, data_source)
    now = format_instant(now_ms())
    with engine.begin() as conn:
        raised = conn.execute(
            D.update()
            .where(D.c.dataSource == data_source, D.c.pending_events + total <= capacity)
            .values(pending_events=D.c.pending_events + total)
        ).rowcount
        if not raised:
            pending = conn.execute(sa.select(D.c.pending_events).where(D.c.dataSource == data_source)).scalar()
            raise SpoolFullError(
                f"the spool of {data_source} holds {pending} events (bufferSize {capacity}); {total} more do not fit", 1
            )
        conn.execute(
            S.insert(),
            [
                {
                    "dataSource": data_source,
                    "bucket_start_ms": p.bucket.start,
                    "bucket_end_ms": p.bucket.end,
                    "received_date": now,
                    "events": p.events,
                    "payload": p.payload,
                }
                for p in pieces
                if p.events
            ],
        )


def due_buckets(engine: Engine, data_source: str, closed_before_ms: Optional[int]) -> list[Interval]:
    """Buckets with spooled events that ended at or before ``closed_before_ms`` (every bucket when None)."""
    query = sa.select(S.c.bucket_start_ms, S.c.bucket_end_ms).where(S.c.dataSource == data_source).distinct()
    if closed_before_ms is not None:
        query = query.where(S.c.bucket_end_ms <= closed_before_ms)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(S.c.bucket_start_ms)).all()
    return [Interval(int(r[0]), int(r[1])) for r in rows]


def entries(engine: Engine, data_source: str, bucket: Interval) -> list[SpoolEntry]:
    """The spool rows of one bucket (ids and counts; payloads are read by :func:`payloads`)."""
    query = (
        sa.select(S.c.id, S.c.events)
        .where(S.c.dataSource == data_source, S.c.bucket_start_ms == bucket.start, S.c.bucket_end_ms == bucket.end)
        .order_by(S.c.id)
    )
    with engine.connect() as conn:
        return [SpoolEntry(int(r[0]), bucket, int(r[1])) for r in conn.execute(query)]


def payloads(engine: Engine, ids: Sequence[int], max_events: int) -> Iterator[tuple[list[int], bytes]]:
    """The payloads of ``ids`` in pages of about ``max_events`` events: (the page's ids, its JSON lines)."""
    for i in range(0, len(ids), _ID_BATCH):
        chunk = list(ids[i : i + _ID_BATCH])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(S.c.id, S.c.events, S.c.payload).where(S.c.id.in_(chunk)).order_by(S.c.id)).all()
        page_ids: list[int] = []
        parts: list[bytes] = []
        count = 0
        for row_id, events, payload in rows:
            page_ids.append(int(row_id))
            parts.append(bytes(payload))
            count += int(events)
            if count >= max_events:
                yield page_ids, b"\n".join(parts) + b"\n"
                page_ids, parts, count = [], [], 0
        if parts:
            yield page_ids, b"\n".join(parts) + b"\n"


def consume(conn: Connection, data_source: str, spooled: Sequence[SpoolEntry], task_id: str) -> int:
    """Inside the publishing transaction: delete the handed-off rows and record the commit.

    Raises :class:`PublishConflictError` (the caller's transaction rolls back, publishing nothing) when any row
    is already gone: a concurrent handoff published those events.
    """
    ids = [e.id for e in spooled]
    deleted = 0
    for i in range(0, len(ids), _ID_BATCH):
        chunk = ids[i : i + _ID_BATCH]
        deleted += conn.execute(S.delete().where(S.c.dataSource == data_source, S.c.id.in_(chunk))).rowcount
    if deleted != len(ids):
        raise PublishConflictError(
            f"{len(ids) - deleted} of the {len(ids)} spool batches of {data_source} were handed off by another task; "
            "nothing was published by this one"
        )
    events = sum(e.events for e in spooled)
    last = max(ids)
    greatest = sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest
    conn.execute(
        D.update()
        .where(D.c.dataSource == data_source)
        .values(
            pending_events=D.c.pending_events - events,
            committed_events=D.c.committed_events + events,
            committed_batches=D.c.committed_batches + len(ids),
            last_spool_id=greatest(D.c.last_spool_id, last),
            last_task_id=task_id,
            updated_date=format_instant(now_ms()),
        )
    )
    return events


def summary(engine: Engine, data_source: Optional[str] = None) -> list[PendingSummary]:
    """Pending (spooled, not yet handed off) and committed events per dataSource."""
    pending = (
        sa.select(
            S.c.dataSource,
            sa.func.sum(S.c.events),
            sa.func.count(),
            sa.func.count(sa.distinct(S.c.bucket_start_ms)),
            sa.func.min(S.c.bucket_start_ms),
        )
        .group_by(S.c.dataSource)
    )
    committed = sa.select(D.c.dataSource, D.c.committed_events, D.c.last_task_id)
    if data_source is not None:
        pending = pending.where(S.c.dataSource == data_source)
        committed = committed.where(D.c.dataSource == data_source)
    with engine.connect() as conn:
        spooled = {r[0]: r for r in conn.execute(pending)}
        done = {r[0]: r for r in conn.execute(committed)}
        oldest: dict[str, Interval] = {}
        for ds, row in spooled.items():
            end = conn.execute(
                sa.select(sa.func.min(S.c.bucket_end_ms)).where(S.c.dataSource == ds, S.c.bucket_start_ms == row[4])
            ).scalar_one()
            oldest[ds] = Interval(int(row[4]), int(end))
    out = []
    for ds in sorted(set(spooled) | set(done)):
        p, c = spooled.get(ds), done.get(ds)
        out.append(
            PendingSummary(
                data_source=ds,
                events=int(p[1]) if p else 0,
                batches=int(p[2]) if p else 0,
                buckets=int(p[3]) if p else 0,
                oldest_bucket=oldest.get(ds),
                committed_events=int(c[1]) if c else 0,
                last_task_id=c[2] if c else None,
            )
        )
    return out
