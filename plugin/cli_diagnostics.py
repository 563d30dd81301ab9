"""Why a command had nothing to do: an unknown dataSource, or a mark-used/mark-unused that changed no segment.

The command line asks these after the fact (or before touching anything) so that "0 segments" is never the whole
answer: the user learns whether the name is wrong, the interval misses every segment, or the segments already are
in the state asked for.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Optional

import sqlalchemy as sa

from druidflow.exceptions import DruidflowError
from druidflow.intervals import Interval
from druidflow.metadata.tables import rules as rules_table
from druidflow.metadata.tables import segments as segments_table


class UnknownDataSourceError(DruidflowError):
    """The dataSource named on the command line has no segment at all, used or unused."""


def datasource_summary(store: Any) -> list[tuple[str, int, int]]:
    """(dataSource, used segments, unused segments) of every dataSource with a segment row, sorted by name."""
    S = segments_table
    used = sa.func.sum(sa.case((S.c.used == sa.true(), 1), else_=0))
    query = sa.select(S.c.dataSource, used, sa.func.count()).group_by(S.c.dataSource).order_by(S.c.dataSource)
    with store.engine.connect() as conn:
        return [(r[0], int(r[1] or 0), int(r[2]) - int(r[1] or 0)) for r in conn.execute(query)]


def datasource_exists(store: Any, data_source: str) -> bool:
    query = sa.select(segments_table.c.id).where(segments_table.c.dataSource == data_source).limit(1)
    with store.engine.connect() as conn:
        return conn.execute(query).first() is not None


def has_rules(store: Any, data_source: str) -> bool:
    query = sa.select(rules_table.c.dataSource).where(rules_table.c.dataSource == data_source).limit(1)
    with store.engine.connect() as conn:
        return conn.execute(query).first() is not None


def require_datasource(store: Any, data_source: Optional[str]) -> None:
    """Raise :class:`UnknownDataSourceError` (with close matches) unless ``data_source`` has a segment row."""
    if data_source is None or datasource_exists(store, data_source):
        return
    known = [name for name, _, _ in datasource_summary(store)]
    close = difflib.get_close_matches(data_source, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = "`druidflow datasources` lists them" if known else "there is no dataSource yet"
    raise UnknownDataSourceError(
        f"dataSource {data_source!r} does not exist (it has no segments, used or unused){hint} ({listing})"
    )


def why_nothing_marked(
    store: Any,
    data_source: str,
    *,
    to_used: bool,
    interval: Optional[Interval] = None,
    segment_ids: Optional[Sequence[str]] = None,
) -> str:
    """The reason a mark-used (``to_used``) or mark-unused selection changed no segment."""
    wanted = "used" if to_used else "unused"
    if segment_ids:
        found = {r.segment.id: r for r in _records_by_id(store, data_source, segment_ids)}
        missing = [s for s in segment_ids if s not in found]
        already = [s for s, r in found.items() if r.used == to_used]
        parts = []
        if missing:
            parts.append(f"{len(missing)} id(s) are not segments of {data_source} (e.g. {missing[0]})")
        if already:
            parts.append(f"{len(already)} segment(s) already are {wanted}")
        rest = len(found) - len(already)
        if rest and to_used:
            parts.append(f"{rest} would be overshadowed by newer used segments, so they stay unused")
        return "; ".join(parts) or "no segment matched"
    inside = store.segments(data_source, interval, include_unused=True, contained=True)
    if interval is not None and not inside:
        overlapping = store.segments(data_source, interval, include_unused=True)
        if overlapping:
            return (
                f"no segment of {data_source} lies entirely inside {interval}; {len(overlapping)} only overlap it "
                f"(e.g. {overlapping[0].segment.interval}) - widen the interval to cover whole segments"
            )
        return f"no segment of {data_source} overlaps {interval}"
    where = f"inside {interval}" if interval is not None else f"of {data_source}"
    pending = [r for r in inside if r.used != to_used]
    if not pending:
        return f"all {len(inside)} segment(s) {where} already are {wanted}"
    if to_used:
        return (
            f"the {len(pending)} unused segment(s) {where} would be overshadowed by newer used segments, "
            "so they stay unused"
        )
    return f"none of the {len(inside)} segment(s) {where} could be changed"


def _records_by_id(store: Any, data_source: str, segment_ids: Sequence[str]) -> list[Any]:
    out = []
    for sid in dict.fromkeys(segment_ids):
        record = store.get_segment(sid)
        if record is not None and record.segment.data_source == data_source:
            out.append(record)
    return out
