"""The console's page queries on Druidflow's tables: every one reads an index range and returns one page.

No query parses the JSON of more rows than the page shows: sizes, rows, intervals and versions come from their
own columns (the ``ix_druidflow_segments_console`` covering index), payloads only for the segments on screen.
This module needs SQLAlchemy and Druidflow only (no Airflow), so it is tested and benchmarked on its own.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.intervals import format_instant
from druidflow.metadata.tables import lock_events, rules, segments, tasks

S = segments.c
T = tasks.c

#: ``used IN (true, false)``: lets the index on (dataSource, used, start_ms, ...) range-scan start_ms for both.
_ANY_USED = S.used.in_([True, False])
#: Page sizes the API accepts at most.
MAX_PAGE = 500
#: Task types that ingest data (their latest success is a dataSource's "last ingestion").
INGESTION_TYPES = ("index", "index_parallel", "append", "merge", "same_interval_merge", "convert", "index_kafka",
                   "index_realtime")


def datasource_summaries(conn: Connection) -> list[dict[str, Any]]:
    """Per dataSource: used segments/rows/bytes and time range, unused segments (awaiting kill), retention rules,
    last ingestion. Reads the covering index, the rules table and the tasks' (type, created) index."""
    by_used = (
        sa.select(
            S.dataSource, S.used,
            sa.func.count().label("segments"),
            sa.func.coalesce(sa.func.sum(S.num_rows), 0).label("rows"),
            sa.func.coalesce(sa.func.sum(S.size), 0).label("size"),
            sa.func.min(S.start_ms).label("start_ms"),
            sa.func.max(S.end_ms).label("end_ms"),
        )
        .group_by(S.dataSource, S.used)
    )
    out: dict[str, dict[str, Any]] = {}
    for r in conn.execute(by_used).mappings():
        entry = out.setdefault(r["dataSource"], _empty_summary(r["dataSource"]))
        if r["used"]:
            entry.update(segments=int(r["segments"]), rows=int(r["rows"]), size=int(r["size"]),
                         start=format_instant(r["start_ms"]), end=format_instant(r["end_ms"]))
        else:
            entry.update(unusedSegments=int(r["segments"]), unusedSize=int(r["size"]))
    for r in conn.execute(sa.select(rules.c.dataSource, rules.c.payload)).mappings():
        if r["dataSource"] in out:
            out[r["dataSource"]]["rules"] = json.loads(r["payload"])
    last = (
        sa.select(T.dataSource, sa.func.max(T.created_date).label("created"))
        .where(T.type.in_(INGESTION_TYPES), T.status == "SUCCESS")
        .group_by(T.dataSource)
    )
    for r in conn.execute(last).mappings():
        if r["dataSource"] in out:
            out[r["dataSource"]]["lastIngestion"] = r["created"]
    return [out[k] for k in sorted(out)]


def _empty_summary(name: str) -> dict[str, Any]:
    return {"dataSource": name, "segments": 0, "rows": 0, "size": 0, "start": None, "end": None,
            "unusedSegments": 0, "unusedSize": 0, "rules": [], "lastIngestion": None}


def datasource_extent(conn: Connection, data_source: str) -> Optional[tuple[int, int]]:
    """(first start, last end) in ms over used and unused segments, or None when there are none."""
    row = conn.execute(
        sa.select(sa.func.min(S.start_ms), sa.func.max(S.end_ms)).where(S.dataSource == data_source)
    ).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def chunk_groups(conn: Connection, data_source: str, start_ms: int, end_ms: int, limit: int) -> list[dict[str, Any]]:
    """Partition sets (interval × version × used) overlapping [start, end): counts, bytes, rows, partition range.
    At most ``limit`` rows, in index order; the caller asks for one more than it shows to know when to stop."""
    query = (
        sa.select(
            S.start_ms, S.end_ms, S.version, S.used,
            sa.func.count().label("segments"),
            sa.func.coalesce(sa.func.sum(S.size), 0).label("size"),
            sa.func.coalesce(sa.func.sum(S.num_rows), 0).label("rows"),
            sa.func.min(S.partition_num).label("min_partition"),
            sa.func.max(S.partition_num).label("max_partition"),
        )
        .where(S.dataSource == data_source, _ANY_USED, S.start_ms < end_ms, S.end_ms > start_ms)
        .group_by(S.used, S.start_ms, S.end_ms, S.version)
        .order_by(S.used, S.start_ms, S.end_ms, S.version)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def first_partition_payloads(
    conn: Connection, data_source: str, start_ms: int, end_ms: int
) -> dict[tuple[int, int, str], bytes]:
    """The payload of the lowest-numbered used segment of each partition set overlapping the window (one per set:
    its shard spec gives the set's core partition count)."""
    first = (
        sa.select(S.start_ms, S.end_ms, S.version, sa.func.min(S.partition_num).label("p"))
        .where(S.dataSource == data_source, S.used.is_(True), S.start_ms < end_ms, S.end_ms > start_ms)
        .group_by(S.start_ms, S.end_ms, S.version)
        .subquery()
    )
    query = sa.select(S.start_ms, S.end_ms, S.version, S.payload).join(
        first,
        sa.and_(S.dataSource == data_source, S.used.is_(True), S.start_ms == first.c.start_ms,
                S.end_ms == first.c.end_ms, S.version == first.c.version, S.partition_num == first.c.p),
    )
    return {(int(r[0]), int(r[1]), r[2]): r[3] for r in conn.execute(query)}


def set_payloads(conn: Connection, data_source: str, start_ms: int, end_ms: int, version: str) -> list[bytes]:
    """Every used segment payload of one partition set (for the rare sets whose completeness needs them all)."""
    query = sa.select(S.payload).where(
        S.dataSource == data_source, S.used.is_(True), S.start_ms == start_ms, S.end_ms == end_ms, S.version == version
    )
    return [r[0] for r in conn.execute(query)]


def density(
    conn: Connection, data_source: str, start_ms: int, end_ms: int, bucket_ms: int
) -> list[dict[str, Any]]:
    """Segments, bytes and rows per ``bucket_ms`` bucket of segment start, used and unused apart (the zoomed-out
    timeline when the window holds too many partition sets to draw one by one)."""
    bucket = ((S.start_ms - start_ms) // bucket_ms).label("bucket")
    query = (
        sa.select(
            bucket, S.used, sa.func.count().label("segments"),
            sa.func.coalesce(sa.func.sum(S.size), 0).label("size"),
            sa.func.coalesce(sa.func.sum(S.num_rows), 0).label("rows"),
            sa.func.count(sa.distinct(S.version)).label("versions"),
        )
        .where(S.dataSource == data_source, _ANY_USED, S.start_ms < end_ms, S.end_ms > start_ms)
        .group_by(bucket, S.used)
        .order_by(bucket)
    )
    return [
        {"start": format_instant(start_ms + max(int(r["bucket"]), 0) * bucket_ms),
         "end": format_instant(min(start_ms + (max(int(r["bucket"]), 0) + 1) * bucket_ms, end_ms)),
         "used": bool(r["used"]), "segments": int(r["segments"]), "size": int(r["size"]),
         "rows": int(r["rows"]), "versions": int(r["versions"])}
        for r in conn.execute(query).mappings()
    ]


def chunk_segments(
    conn: Connection, data_source: str, start_ms: int, end_ms: int, version: str, *, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the segments of one partition set (used and unused), by partition number, and their total."""
    where = [S.dataSource == data_source, S.start_ms == start_ms, S.end_ms == end_ms, S.version == version]
    total = conn.execute(sa.select(sa.func.count()).where(*where)).scalar_one()
    query = (
        sa.select(S.id, S.used, S.partition_num, S.size, S.num_rows, S.unused_reason, S.created_date, S.payload)
        .where(*where)
        .order_by(S.partition_num, S.used.desc())
        .offset(offset)
        .limit(limit)
    )
    page = []
    for r in conn.execute(query).mappings():
        payload = json.loads(r["payload"])
        page.append({
            "id": r["id"], "used": bool(r["used"]), "partitionNum": int(r["partition_num"]), "size": int(r["size"]),
            "numRows": int(r["num_rows"]), "unusedReason": r["unused_reason"], "createdDate": r["created_date"],
            "shardSpec": payload.get("shardSpec"), "loadSpec": payload.get("loadSpec"),
            "dimensions": payload.get("dimensions"), "metrics": payload.get("metrics"),
            "lastCompactionState": payload.get("lastCompactionState"),
        })
    return page, int(total)


def writer_tasks(conn: Connection, data_source: str, version: str, limit: int = 10) -> list[dict[str, Any]]:
    """The tasks that took a lock of this version on the dataSource: the task whose lock gave the segments their
    version (REPLACE/EXCLUSIVE), and any that appended to it; oldest first, with their type and status."""
    query = (
        sa.select(lock_events.c.task_id, sa.func.min(lock_events.c.id).label("first"),
                  sa.func.min(lock_events.c.type).label("lock_type"))
        .where(lock_events.c.dataSource == data_source, lock_events.c.version == version,
               lock_events.c.event == "acquire")
        .group_by(lock_events.c.task_id)
        .order_by(sa.text("first"))
        .limit(limit)
    )
    found = [(r.task_id, r.lock_type) for r in conn.execute(query)]
    if not found:
        return []
    info = {
        r.id: (r.type, r.status)
        for r in conn.execute(sa.select(T.id, T.type, T.status).where(T.id.in_([t for t, _ in found])))
    }
    return [
        {"taskId": t, "lockType": lock_type, "type": info.get(t, (None, None))[0], "status": info.get(t, (None, None))[1]}
        for t, lock_type in found
    ]


def task_page(
    conn: Connection,
    *,
    data_source: Optional[str] = None,
    task_type: Optional[str] = None,
    status: Optional[str] = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of tasks, newest first, with the filters given; and whether more follow. Reads no spec or report
    (only the small status JSON, for the duration)."""
    query = sa.select(T.id, T.type, T.dataSource, T.group_id, T.status, T.active, T.status_payload, T.error_msg,
                      T.created_date, T.updated_date)
    if data_source:
        query = query.where(T.dataSource == data_source)
    if task_type:
        query = query.where(T.type == task_type)
    if status:
        if status == "RUNNING":
            query = query.where(T.active.is_(True))
        else:
            query = query.where(T.status == status)
    query = query.order_by(T.created_date.desc(), T.id.desc()).offset(offset).limit(limit + 1)
    rows = [_task_row(r) for r in conn.execute(query).mappings()]
    return rows[:limit], len(rows) > limit


def _task_row(r: Any) -> dict[str, Any]:
    status_payload = json.loads(r["status_payload"]) if r["status_payload"] else {}
    return {
        "id": r["id"], "type": r["type"], "dataSource": r["dataSource"], "groupId": r["group_id"],
        "status": "RUNNING" if r["active"] else r["status"], "active": bool(r["active"]),
        "duration": int(status_payload.get("duration", -1)), "errorMsg": r["error_msg"],
        "createdTime": r["created_date"], "updatedTime": r["updated_date"],
    }


def task_types(conn: Connection) -> list[str]:
    """The task types present (for the filter's drop-down): the distinct values of an indexed column."""
    return [r[0] for r in conn.execute(sa.select(T.type).distinct().order_by(T.type))]


def task_detail(conn: Connection, task_id: str) -> Optional[dict[str, Any]]:
    """One task with its spec and report."""
    r = conn.execute(sa.select(tasks).where(T.id == task_id)).mappings().first()
    if r is None:
        return None
    return {**_task_row(r), "payload": json.loads(r["payload"]), "report": json.loads(r["report"]) if r["report"] else None}


def lock_history(conn: Connection, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The revoke/release/expire events of the given tasks' locks (who revoked them and why), by task."""
    if not task_ids:
        return {}
    query = (
        sa.select(lock_events)
        .where(lock_events.c.task_id.in_(task_ids), lock_events.c.event != "acquire")
        .order_by(lock_events.c.id)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(query).mappings():
        out.setdefault(r["task_id"], []).append(
            {"at": r["at"], "event": r["event"], "interval": r["interval"], "actor": r["actor"], "detail": r["detail"]}
        )
    return out
