"""The orphan-file sweep: files in deep storage that no segment row points at.

Orphans come from index tasks that pushed files and then died before publishing, or from deletes done by hand
in the metadata DB. A file is an orphan when it sits in Druid's segment layout
(``<dataSource>/<start>_<end>/<version>/<partitionNum>[/<attempt>]/<file>``), no row of any dataSource points at it,
no live lock of its dataSource overlaps its interval (a running task may have pushed it and not yet published it),
and it is older than a grace period. Files outside that layout are listed as ``unrecognised`` and never deleted.

Finding is a plain read (list the files, then the locks, then the rows, in that order, so that a concurrent publish
cannot make a published file look orphaned). Deleting decides again, per dataSource, while holding the lockbox's
mutex of that dataSource, with the database's clock: no lock can be granted or renewed and no publish can commit
meanwhile, and a clock skewed on this machine cannot make a live lease look expired. Each file is re-checked against
the rows and the live locks on that same transaction just before it is deleted. The grace period covers what no
lock says: a file pushed moments ago by a task whose lease a far-off clock judges differently.
"""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa

from druidflow.intervals import Interval, parse_instant
from druidflow.metadata import kill_queries as q
from druidflow.specs.base import DruidModel
from druidflow.tasks.runtime import Runtime


class OrphanFile(DruidModel):
    """A file in deep storage that no segment row points at."""

    key: str
    path: str
    size: int
    load_spec: dict[str, Any]
    data_source: str = ""
    interval: Optional[Interval] = None
    #: ``orphan`` (safe to delete), ``locked`` (its interval is locked by a running task: left alone) or
    #: ``unrecognised`` (not in the segment layout: never deleted).
    #: After a deleting sweep, a file left alone is ``locked``, ``recent`` (younger than the grace period),
    #: ``published`` (a publish pointed at it meanwhile) or ``gone``.
    state: str = "orphan"
    locked_by: list[str] = []


class OrphanReport(DruidModel):
    """What a sweep found and (with ``delete``) removed."""

    data_source: Optional[str] = None
    files_scanned: int = 0
    orphans: list[OrphanFile] = []
    deleted: int = 0
    bytes_deleted: int = 0


#: Files younger than this are never deleted by the sweep.
DEFAULT_GRACE_SECONDS = 3600.0


def find_orphans(rt: Runtime, data_source: Optional[str] = None) -> list[OrphanFile]:
    """Files under ``<data_source>/`` (every dataSource when None) that no segment row points at."""
    return _sweep(rt, data_source).orphans


def sweep_orphans(
    rt: Runtime,
    data_source: Optional[str] = None,
    *,
    delete: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> OrphanReport:
    """Find orphans and, with ``delete``, delete those in state ``orphan`` that are older than ``grace_seconds``
    and still orphans when re-checked under their dataSource's lockbox mutex (never locked, recent or
    unrecognised ones)."""
    report = _sweep(rt, data_source)
    if not delete:
        return report
    by_ds: dict[str, list[OrphanFile]] = {}
    for orphan in report.orphans:
        if orphan.state == "orphan":
            by_ds.setdefault(orphan.data_source, []).append(orphan)
    deleted = bytes_deleted = 0
    states: dict[str, str] = {}
    grace_ms = int(grace_seconds * 1000)
    for ds, candidates in sorted(by_ds.items()):
        with rt.lockbox.mutex(ds) as (conn, now):
            referenced = q.referenced_paths(conn, [o.path for o in candidates])
            # A lease stamped by a clock behind the database's may look lapsed while its task still beats.
            live = _live_lock_rows(conn, ds, now - grace_ms)
            for orphan in candidates:
                if orphan.path in referenced:
                    states[orphan.path] = "published"
                    continue
                holders = sorted({task for task, iv in live if orphan.interval is not None and iv.overlaps(orphan.interval)})
                if holders:
                    states[orphan.path] = "locked"
                    continue
                modified = rt.storage.modified_ms(orphan.load_spec)
                if modified is None:
                    states[orphan.path] = "gone"
                    continue
                if now - modified < grace_ms:
                    states[orphan.path] = "recent"
                    continue
                rt.storage.delete(orphan.load_spec)
                deleted += 1
                bytes_deleted += orphan.size
    orphans = [o.model_copy(update={"state": states[o.path]}) if o.path in states else o for o in report.orphans]
    return report.model_copy(update={"orphans": orphans, "deleted": deleted, "bytes_deleted": bytes_deleted})


def _live_lock_rows(conn: Any, data_source: str, now: int) -> list[tuple[str, Interval]]:
    """``(task id, interval)`` of the lock rows of ``data_source`` not recorded as expired whose lease runs past
    ``now`` (revoked ones too: their task may still be running)."""
    from druidflow.metadata.tables import task_locks as L

    rows = conn.execute(
        sa.select(L.c.task_id, L.c.start_ms, L.c.end_ms).where(
            L.c.dataSource == data_source, L.c.expired_at_ms.is_(None), L.c.lease_expires_ms > now
        )
    )
    return [(r.task_id, Interval(r.start_ms, r.end_ms)) for r in rows]


def _sweep(rt: Runtime, data_source: Optional[str]) -> OrphanReport:
    prefix = f"{data_source}/" if data_source else ""
    listed = [(key, size, spec, rt.storage.load_path(spec)) for key, size, spec in rt.storage.list_keys(prefix)]
    locks = [lk for lk in rt.lockbox.locks(datasource=data_source) if lk.active]
    with rt.store.engine.connect() as conn:
        referenced = q.referenced_paths(conn, [path for *_, path in listed])
    orphans: list[OrphanFile] = []
    for key, size, spec, path in listed:
        if path in referenced:
            continue
        ds, interval = _layout(key)
        if interval is None:
            orphans.append(OrphanFile(key=key, path=path, size=size, load_spec=spec, state="unrecognised"))
            continue
        holders = sorted({lk.task_id for lk in locks if lk.datasource == ds and lk.interval.overlaps(interval)})
        orphans.append(
            OrphanFile(
                key=key,
                path=path,
                size=size,
                load_spec=spec,
                data_source=ds,
                interval=interval,
                state="locked" if holders else "orphan",
                locked_by=holders,
            )
        )
    return OrphanReport(data_source=data_source, files_scanned=len(listed), orphans=orphans)


def _layout(key: str) -> tuple[str, Optional[Interval]]:
    """``(dataSource, interval)`` of a key in the segment layout, or ``("", None)``."""
    parts = key.split("/")
    if len(parts) not in (5, 6):  # 6: with the push attempt's unique directory
        return "", None
    ds, bounds = parts[0], parts[1]
    start, sep, end = bounds.partition("_")
    if not sep:
        return "", None
    try:
        return ds, Interval(parse_instant(start), parse_instant(end))
    except Exception:
        return "", None
