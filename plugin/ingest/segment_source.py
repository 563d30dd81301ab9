"""The ``druid`` input source: re-read the visible rows of a dataSource's segments as input batches.

Compaction and re-indexing read Druid segments through this, exactly as Druid's ``druid`` input source (and
the classic ``ingestSegment`` firehose) does: only used, visible data (complete partition sets, highest version,
partial overshadowing honoured), trimmed to the interval, with ``dimensions``/``metrics`` selecting columns
(null means all, ``[]`` means none). ``__time`` comes back as epoch milliseconds; first/last metrics bring their
companion time columns along so that they combine correctly.

The rows' time: Druid's classic ``ingestSegment`` firehose, and its ``druid`` input source before 0.20, took every
row's time from the segment's ``__time`` and ignored the spec's ``timestampSpec`` (which described the *other*
inputs of a combining firehose); later Druid applies the ``timestampSpec``. Both are honoured: when the
``timestampSpec`` names a column the segments have (``__time``, or a dimension), it is applied; when it names a
column they do not have (``timestamp`` in Druid's update tutorial), the segment's ``__time`` is the row's time —
rather than marking every re-read row unparseable, which is what Druid >= 0.20 would do with such a spec.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Optional

import pyarrow as pa

from druidflow.exceptions import NoSegmentsError
from druidflow.inputs.batch import InputBatch
from druidflow.intervals import ETERNITY, Interval, umbrella
from druidflow.query import visible_rows
from druidflow.segments.format import TIME_COLUMN

COMPANION_PREFIX = "__time_"

log = logging.getLogger(__name__)


class SegmentInputReader:
    """Input batches from the visible segments of ``source`` (a ``DruidInputSource``)."""

    def __init__(self, source: Any, store: Any, storage: Any, timestamp_column: str = TIME_COLUMN) -> None:
        self.source = source
        self.store = store
        self.storage = storage
        self.timestamp_column = timestamp_column
        self.list_delimiter: Optional[str] = None
        self.used_segment_time = False

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
            own_time = None
            if self.timestamp_column not in batch.schema.names:
                own_time = times
                if not self.used_segment_time:
                    self.used_segment_time = True
                    log.warning(
                        "druid input %r: the segments have no column %r (timestampSpec.column); each row's time is "
                        "the segment's __time, as Druid's ingestSegment firehose does",
                        self.source.data_source,
                        self.timestamp_column,
                    )
            yield InputBatch(data=batch, bytes_read=batch.nbytes, source=f"druid:{self.source.data_source}", times=own_time)
        if not found and self.source.interval is not None and not self.store.used_segments(self.source.data_source, interval):
            raise NoSegmentsError(f"dataSource {self.source.data_source!r} has no used segment in {interval}")

    def _columns(self) -> Optional[list[str]]:
        dims, metrics = self.source.dimensions, self.source.metrics
        if dims is None or metrics is None:
            return None
        cols = list(dims) + list(metrics) + [COMPANION_PREFIX + m for m in metrics]
        return cols
