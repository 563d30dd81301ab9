"""The ``druid`` input source: re-read the visible rows of a dataSource's segments as input batches.

Compaction and re-indexing read Druid segments through this, exactly as Druid's ``druid`` input source (and
the classic ``ingestSegment`` firehose) does: only used, visible data (complete partition sets, highest version,
partial overshadowing honoured), trimmed to the interval, with ``dimensions``/``metrics`` selecting columns
(null means all, ``[]`` means none). ``__time`` comes back as epoch milliseconds; first/last metrics bring their
companion time columns along so that they combine correctly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import pyarrow as pa

from druidflow.exceptions import NoSegmentsError
from druidflow.inputs.batch import InputBatch
from druidflow.intervals import ETERNITY, Interval, umbrella
from druidflow.query import visible_rows
from druidflow.segments.format import TIME_COLUMN

COMPANION_PREFIX = "__time_"


class SegmentInputReader:
    """Input batches from the visible segments of ``source`` (a ``DruidInputSource``)."""

    def __init__(self, source: Any, store: Any, storage: Any) -> None:
        self.source = source
        self.store = store
        self.storage = storage
        self.list_delimiter: Optional[str] = None

    def interval(self) -> Interval:
        if self.source.interval is not None:
            return self.source.interval
        return umbrella([iv for w in self.source.segments for iv in w.intervals]) if self.source.segments else ETERNITY

    def batches(self) -> Iterator[InputBatch]:
        interval = self.interval()
        wanted = self._columns()
        found = False
        # Windowed segment ids: exactly those segments, within their intervals (what is visible of them there).
        only = {w.segment_id: w.intervals for w in self.source.segments} if self.source.segments is not None else None
        for batch in visible_rows(self.store, self.storage, self.source.data_source, interval, columns=wanted, only=only):
            found = True
            times = batch.column(TIME_COLUMN).cast(pa.int64())
            batch = batch.set_column(batch.schema.get_field_index(TIME_COLUMN), TIME_COLUMN, times)
            yield InputBatch(data=batch, bytes_read=batch.nbytes, source=f"druid:{self.source.data_source}")
        if not found and self.source.interval is not None and not self.store.used_segments(self.source.data_source, interval):
            raise NoSegmentsError(f"dataSource {self.source.data_source!r} has no used segment in {interval}")

    def _columns(self) -> Optional[list[str]]:
        dims, metrics = self.source.dimensions, self.source.metrics
        if dims is None or metrics is None:
            return None
        cols = list(dims) + list(metrics) + [COMPANION_PREFIX + m for m in metrics]
        return cols
