"""Reading data back: the visible rows of a dataSource and interval, as Arrow record batches.

Only what a Druid query would see is returned: used segments, complete partition sets, the highest version
at each instant, and a partly overshadowed segment only for the part of its interval still visible.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from druidflow.intervals import ETERNITY, Interval, condense
from druidflow.metadata.store import MetadataStore
from druidflow.segments.format import TIME_COLUMN
from druidflow.storage import DeepStorage


def visible_rows(
    store: MetadataStore,
    storage: DeepStorage,
    data_source: str,
    interval: Optional[Interval] = None,
    *,
    columns: Optional[list[str]] = None,
    only: Optional[Mapping[str, Sequence[Interval]]] = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the visible rows, in time order; ``__time`` is ``timestamp[ms, UTC]``.

    ``only`` (segment id -> the intervals of it to read) restricts the result to those segments' visible rows
    within those intervals (Druid's windowed segment ids); segments it does not name are skipped.
    """
    interval = interval or ETERNITY
    timeline = store.timeline(data_source, interval)  # only the visible sets' payloads are read
    for entry in timeline.visible(interval):
        for segment in entry.segments:
            if segment.is_tombstone:
                continue
            if only is None:
                pieces = [entry.interval]
            else:
                windows = condense(list(only.get(segment.id, ())))  # overlapping windows must not read a row twice
                pieces = [p for w in windows if (p := entry.interval.intersect(w)) is not None]
                if not pieces:
                    continue
            with storage.open_local(segment.load_spec) as path:
                parquet = pq.ParquetFile(path)
                wanted = None if columns is None else [c for c in [TIME_COLUMN, *columns] if c in parquet.schema_arrow.names]
                for batch in parquet.iter_batches(columns=wanted):
                    times = batch.column(TIME_COLUMN).cast(pa.int64())
                    for piece in pieces:
                        keep = pc.and_(pc.greater_equal(times, piece.start), pc.less(times, piece.end))
                        out = batch.filter(keep)
                        if out.num_rows:
                            yield out
