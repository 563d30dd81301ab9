"""Committed stream offsets per dataSource, and Druid's DataSourceMetadata compare-and-swap.

A Kafka task reads ``[start, end)`` of some partitions. When it publishes, the same metadata transaction that
inserts its segments calls :func:`compare_and_swap`: every partition the task read must have exactly ``start``
committed (or nothing committed yet), and then ``end`` becomes the committed offset. So a retried or duplicated
task (same start) can publish at most once, and a task never publishes past a gap: the only way to move a
partition's offset is to publish the range that begins where the last one ended.

The row is Druid's ``druid_dataSource``: the payload is Druid's ``KafkaDataSourceMetadata`` JSON
``{"type": "kafka", "partitions": {"type": "end", "stream": topic, "partitionOffsetMap": {"0": 42}}}`` and the
update is conditional on the SHA-1 of the payload read, so two publishers racing on one dataSource cannot both win
(the loser's transaction changes nothing and rolls back).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from druidflow.exceptions import PublishConflictError, TerminalError
from druidflow.intervals import format_instant, now_ms
from druidflow.metadata.tables import datasource_metadata as D


class OffsetsMismatchError(TerminalError):
    """The task's start offsets are not the committed ones: its range was already published (a duplicate or
    retried task) or the supervisor was reset. Nothing was published; the supervisor plans a new task."""


@dataclass(frozen=True)
class StreamOffsets:
    """The committed offsets of one dataSource: the next offset to read, per partition."""

    stream: str
    offsets: dict[int, int]
    updated: Optional[str] = None

    def payload(self) -> str:
        return _payload(self.stream, self.offsets)


def _payload(stream: str, offsets: Mapping[int, int]) -> str:
    ordered = {str(p): int(offsets[p]) for p in sorted(offsets)}
    body = {"type": "kafka", "partitions": {"type": "end", "stream": stream, "partitionOffsetMap": ordered}}
    return json.dumps(body, separators=(",", ":"))


def _sha1(payload: str) -> str:
    return hashlib.sha1(payload.encode()).hexdigest().upper()


def _parse(payload: str, updated: Optional[str]) -> StreamOffsets:
    body = json.loads(payload)
    partitions = body["partitions"]
    offsets = {int(p): int(o) for p, o in partitions["partitionOffsetMap"].items()}
    return StreamOffsets(partitions["stream"], offsets, updated)


def _conn(bind: Union[Engine, Connection]) -> AbstractContextManager[Connection]:
    return bind.begin() if isinstance(bind, Engine) else _Same(bind)


class _Same:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


def committed(bind: Union[Engine, Connection], data_source: str) -> Optional[StreamOffsets]:
    """The committed offsets of ``data_source``, or None when nothing was ever committed (or after a reset)."""
    with _conn(bind) as conn:
        row = conn.execute(
            sa.select(D.c.commit_metadata_payload, D.c.updated_date).where(D.c.dataSource == data_source)
        ).first()
    return None if row is None else _parse(row.commit_metadata_payload, row.updated_date)


def compare_and_swap(
    conn: Connection, data_source: str, stream: str, start: Mapping[int, int], end: Mapping[int, int]
) -> StreamOffsets:
    """Inside the publish transaction: check ``start`` against the committed offsets and commit ``end``.

    Raises :class:`OffsetsMismatchError` when a partition's committed offset differs from ``start`` (or the
    committed offsets are of another topic), and :class:`PublishConflictError` when another transaction changed
    the row between our read and our write (retry the publish).
    """
    if set(start) != set(end):
        raise ValueError("start and end offsets must name the same partitions")
    for p in start:
        if end[p] < start[p]:
            raise ValueError(f"partition {p}: end offset {end[p]} is before start offset {start[p]}")
    now = format_instant(now_ms())
    row = conn.execute(
        sa.select(D.c.commit_metadata_payload, D.c.commit_metadata_sha1).where(D.c.dataSource == data_source)
    ).first()
    if row is None:
        payload = _payload(stream, end)
        try:  # the transaction is rolled back as a whole when this raises
            conn.execute(
                sa.insert(D).values(
                    dataSource=data_source, created_date=now, updated_date=now,
                    commit_metadata_payload=payload, commit_metadata_sha1=_sha1(payload),
                )
            )
        except sa.exc.IntegrityError as exc:
            raise PublishConflictError(f"{data_source}: offsets were committed concurrently; retry the publish") from exc
        return StreamOffsets(stream, dict(end), now)
    stored = _parse(row.commit_metadata_payload, None)
    if stored.stream != stream:
        raise OffsetsMismatchError(
            f"{data_source}: the committed offsets are of topic {stored.stream!r}, not {stream!r}; "
            "reset the supervisor to switch topics"
        )
    wrong = {p: (stored.offsets[p], start[p]) for p in start if p in stored.offsets and stored.offsets[p] != start[p]}
    if wrong:
        detail = ", ".join(f"partition {p}: committed {c}, task started at {s}" for p, (c, s) in sorted(wrong.items()))
        raise OffsetsMismatchError(
            f"{data_source}: the task's start offsets are not the committed ones ({detail}); its range was "
            "already published or the supervisor was reset, so nothing was published"
        )
    merged = {**stored.offsets, **{p: int(o) for p, o in end.items()}}
    payload = _payload(stream, merged)
    done = conn.execute(
        sa.update(D)
        .where(D.c.dataSource == data_source, D.c.commit_metadata_sha1 == row.commit_metadata_sha1)
        .values(commit_metadata_payload=payload, commit_metadata_sha1=_sha1(payload), updated_date=now)
    ).rowcount
    if done != 1:
        raise PublishConflictError(f"{data_source}: offsets were committed concurrently; retry the publish")
    return StreamOffsets(stream, merged, now)


def reset(engine: Engine, data_source: str, stream: Optional[str] = None, offsets: Optional[Mapping[int, int]] = None) -> None:
    """Forget the committed offsets (``offsets`` None: the supervisor starts again from useEarliestOffset), or
    set them outright. Druid's supervisor ``reset``; in-flight tasks of the old offsets then fail their CAS."""
    now = format_instant(now_ms())
    with engine.begin() as conn:
        conn.execute(sa.delete(D).where(D.c.dataSource == data_source))
        if offsets is not None:
            if stream is None:
                raise ValueError("setting offsets needs the stream (topic)")
            payload = _payload(stream, offsets)
            conn.execute(
                sa.insert(D).values(
                    dataSource=data_source, created_date=now, updated_date=now,
                    commit_metadata_payload=payload, commit_metadata_sha1=_sha1(payload),
                )
            )
