"""``MetadataStore``: Druidflow's segments, pending segments, tasks and retention rules in a SQL database.

The counterpart of Druid's ``IndexerSQLMetadataStorageCoordinator`` and ``SqlSegmentsMetadataManager``, on
SQLAlchemy Core, identical on SQLite and PostgreSQL. Every write is one transaction; a method given ``conn``
(the lockbox's critical-section connection) runs inside it and leaves the commit to the caller. The parts, one
concept each: publishing (:mod:`~druidflow.metadata.publish`), reads and the timeline
(:mod:`~druidflow.metadata.segment_reads`), the used flag (:mod:`~druidflow.metadata.used_flag`), tasks and rules
(:mod:`~druidflow.metadata.task_rows`); segment allocation is here.
"""

from __future__ import annotations

from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.intervals import Interval
from druidflow.metadata import allocation
from druidflow.metadata.publish import SegmentPublishing
from druidflow.metadata.records import SegmentAllocation
from druidflow.metadata.tables import pending_segments as P
from druidflow.metadata.task_rows import TasksAndRules
from druidflow.metadata.used_flag import UsedFlag


class MetadataStore(SegmentPublishing, UsedFlag, TasksAndRules):
    """Segments, pending segments, tasks and rules of every dataSource, in one SQL database.

    ``MetadataStore("sqlite:///meta.db")`` or ``MetadataStore(engine)``; call :meth:`migrate` once to create or
    upgrade the tables.
    """

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

