"""The console's timeline of one dataSource over a window: partition sets (chunk × version) and their state.

A set's state over the window follows Druid's timeline rules (:mod:`druidflow.segments.timeline`):

* ``incomplete`` — used, but its core partitions ``0..N-1`` are not all there: never visible;
* ``visible`` / ``partly visible`` — used, complete, and the highest complete version on all / part of its time
  inside the window;
* ``overshadowed`` — used and complete, but higher complete versions cover all of its time inside the window;
* ``unused`` — marked unused (awaiting kill).

Completeness is decided from the set's counts and the shard spec of its first partition (one payload per set,
read with the engine's own shard-spec model);
only a set whose partition numbers have holes, or a ``single``/``range`` set of unknown core size, has all its
payloads read. Visibility then runs the engine's own :class:`Timeline` over one stand-in segment per complete set.
Gaps are the stretches of the window no visible set covers. A window holding more than ``max_sets`` sets is
answered with per-bucket density instead (zoom in to see the sets).
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy.engine import Connection

from druidflow.airflow.console import queries as q
from druidflow.exceptions import DruidflowError
from druidflow.intervals import Interval, format_instant
from druidflow.metadata.records import segment_from_payload
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.segments.timeline import Timeline

#: Partition sets drawn one by one at most; beyond that the window is shown as density.
MAX_SETS = 2000
#: Buckets of the density view.
DENSITY_BUCKETS = 120


def timeline_window(
    conn: Connection, data_source: str, start_ms: Optional[int], end_ms: Optional[int], *, max_sets: Optional[int] = None
) -> dict[str, Any]:
    """The timeline JSON for [start, end) (the dataSource's whole extent when not given)."""
    max_sets = MAX_SETS if max_sets is None else max_sets
    extent = q.datasource_extent(conn, data_source)
    if extent is None:
        return {"dataSource": data_source, "mode": "empty", "sets": [], "gaps": [], "extent": None}
    start_ms = extent[0] if start_ms is None else start_ms
    end_ms = extent[1] if end_ms is None else end_ms
    base = {
        "dataSource": data_source,
        "extent": {"start": format_instant(extent[0]), "end": format_instant(extent[1]),
                   "startMs": extent[0], "endMs": extent[1]},
        "window": {"start": format_instant(start_ms), "end": format_instant(end_ms),
                   "startMs": start_ms, "endMs": end_ms},
    }
    groups = q.chunk_groups(conn, data_source, start_ms, end_ms, max_sets + 1)
    if len(groups) > max_sets:
        bucket = max((end_ms - start_ms) // DENSITY_BUCKETS, 1)
        return {**base, "mode": "density", "bucketMs": bucket, "maxSets": max_sets,
                "buckets": q.density(conn, data_source, start_ms, end_ms, bucket)}
    sets = _classify(conn, data_source, start_ms, end_ms, groups, extent)
    return {**base, "mode": "sets", **sets}


def _classify(
    conn: Connection, data_source: str, w0: int, w1: int, groups: list[dict[str, Any]], extent: tuple[int, int]
) -> dict[str, Any]:
    firsts = q.first_partition_payloads(conn, data_source, w0, w1)
    out: list[dict[str, Any]] = []
    stand_ins: list[DataSegment] = []
    for g in groups:
        key = (int(g["start_ms"]), int(g["end_ms"]), g["version"])
        entry = {
            "start": format_instant(key[0]), "end": format_instant(key[1]), "startMs": key[0], "endMs": key[1],
            "version": g["version"], "used": bool(g["used"]), "segments": int(g["segments"]),
            "size": int(g["size"]), "rows": int(g["rows"]),
        }
        if not g["used"]:
            out.append({**entry, "state": "unused", "complete": None, "corePartitions": None, "shardType": None})
            continue
        first = firsts.get(key)
        spec = segment_from_payload(first).shard_spec if first is not None else NumberedShardSpec()
        complete, core = _complete(conn, data_source, key, g, spec)
        entry.update(complete=complete, corePartitions=core, shardType=spec.type, tombstone=spec.type == "tombstone")
        out.append(entry)
        if complete:
            stand_ins.append(DataSegment(
                data_source=data_source, interval=Interval(key[0], key[1]), version=key[2],
                shard_spec=NumberedShardSpec(partition_num=0, partitions=0),
            ))
    # Gaps only within the dataSource's extent: before its first and after its last segment is not a hole.
    visible_ms, gaps, conflict = _visibility(stand_ins, max(w0, extent[0]), min(w1, extent[1]))
    for entry in out:
        if "state" in entry:
            continue
        if not entry["complete"]:
            entry["state"] = "incomplete"
            continue
        inside = min(entry["endMs"], w1) - max(entry["startMs"], w0)
        shown = visible_ms.get((entry["startMs"], entry["endMs"], entry["version"]), 0)
        entry["visibleMs"] = shown
        entry["state"] = "visible" if shown >= inside else ("partly visible" if shown > 0 else "overshadowed")
    return {"sets": out, "gaps": gaps, "conflict": conflict,
            "versions": sorted({e["version"] for e in out}, reverse=True)}


def _complete(
    conn: Connection, data_source: str, key: tuple[int, int, str], g: dict[str, Any], spec: Any
) -> tuple[bool, Optional[int]]:
    """(complete, core partition count) of a used partition set, by the engine's shard-spec rules: the core
    count comes from the first partition's shard spec; ``0`` means any non-empty set is complete."""
    if spec.type in ("single", "range") and getattr(spec, "num_core_partitions", None) is None:
        return _complete_from_payloads(conn, data_source, key), None
    core = spec.core_partitions
    if core == 0:
        return True, 0
    count, lo, hi = int(g["segments"]), int(g["min_partition"]), int(g["max_partition"])
    if lo == 0 and hi + 1 == count:  # partition numbers 0..hi without holes
        return count >= core, core
    return _complete_from_payloads(conn, data_source, key), core


def _complete_from_payloads(conn: Connection, data_source: str, key: tuple[int, int, str]) -> bool:
    segments = [segment_from_payload(p) for p in q.set_payloads(conn, data_source, *key)]
    return bool(segments) and bool(Timeline(segments).visible())


def _visibility(
    stand_ins: list[DataSegment], w0: int, w1: int
) -> tuple[dict[tuple[int, int, str], int], list[dict[str, Any]], Optional[str]]:
    """Visible ms inside the window per set, the window's gaps, and a timeline conflict message if any."""
    if w1 <= w0:
        return {}, [], None
    try:
        entries = Timeline(stand_ins).visible(Interval(w0, w1))
    except DruidflowError as exc:  # two sets of one version overlapping unequally: show the sets, say why
        return {}, [], str(exc)
    visible: dict[tuple[int, int, str], int] = {}
    gaps: list[dict[str, Any]] = []
    cursor = w0
    for e in entries:
        key = (e.true_interval.start, e.true_interval.end, e.version)
        visible[key] = visible.get(key, 0) + (e.interval.end - e.interval.start)
        if e.interval.start > cursor:
            gaps.append(_gap(cursor, e.interval.start))
        cursor = max(cursor, e.interval.end)
    if cursor < w1:
        gaps.append(_gap(cursor, w1))
    return visible, gaps, None


def _gap(a: int, b: int) -> dict[str, Any]:
    return {"start": format_instant(a), "end": format_instant(b), "startMs": a, "endMs": b}
