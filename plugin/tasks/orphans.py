"""The orphan-file sweep: files in deep storage that no segment row points at.

Orphans come from index tasks that pushed files and then failed before publishing, or from deletes done by hand
in the metadata DB. A file is an orphan when it sits in Druid's segment layout
(``<dataSource>/<start>_<end>/<version>/<partitionNum>/<file>``), no row of any dataSource points at it, and no
live lock of its dataSource overlaps its interval (a running task may have pushed it and not yet published it).
Files outside that layout are listed as ``unrecognised`` and never deleted.

The three reads are ordered so that a concurrent publish cannot make a published file look orphaned: list the
files, then read the live locks, then read which files rows point at. A task holds its lock from before it
pushes until after it publishes, so a file listed in step 1 is either seen as locked in step 2 or already
published (and so referenced) by step 3.
"""

from __future__ import annotations

from typing import Any, Optional

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
    state: str = "orphan"
    locked_by: list[str] = []


class OrphanReport(DruidModel):
    """What a sweep found and (with ``delete``) removed."""

    data_source: Optional[str] = None
    files_scanned: int = 0
    orphans: list[OrphanFile] = []
    deleted: int = 0
    bytes_deleted: int = 0


def find_orphans(rt: Runtime, data_source: Optional[str] = None) -> list[OrphanFile]:
    """Files under ``<data_source>/`` (every dataSource when None) that no segment row points at."""
    return _sweep(rt, data_source).orphans


def sweep_orphans(rt: Runtime, data_source: Optional[str] = None, *, delete: bool = False) -> OrphanReport:
    """Find orphans and, with ``delete``, delete those in state ``orphan`` (never locked or unrecognised ones)."""
    report = _sweep(rt, data_source)
    if not delete:
        return report
    deleted = bytes_deleted = 0
    for orphan in report.orphans:
        if orphan.state == "orphan":
            rt.storage.delete(orphan.load_spec)
            deleted += 1
            bytes_deleted += orphan.size
    return report.model_copy(update={"deleted": deleted, "bytes_deleted": bytes_deleted})


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
    if len(parts) != 5:
        return "", None
    ds, bounds = parts[0], parts[1]
    start, sep, end = bounds.partition("_")
    if not sep:
        return "", None
    try:
        return ds, Interval(parse_instant(start), parse_instant(end))
    except Exception:  # noqa: BLE001 - anything unparseable is simply not our layout
        return "", None
