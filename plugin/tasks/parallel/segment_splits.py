"""Splits of a ``druid`` input source (re-indexing existing segments): its visible segments, whole, grouped in
timeline order, as Druid's parallel task splits a ``DruidInputSource`` by segment. A split reads its segments as
windowed segment ids — each with the source's windows of it — so that it reads exactly what the ``index`` task
would read of them, and what the source showed when the task was planned (a segment published later is no split's)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from druidflow.ingest.segment_source import SegmentInputReader
from druidflow.inputs.batch import InputBatch
from druidflow.inputs.splits import InputSplit, MaxSizeSplitHint, SegmentsSplitHint, SplitPiece
from druidflow.intervals import Interval
from druidflow.specs.io import DruidInputSource, WindowedSegmentId
from druidflow.tasks.runtime import Runtime


def segment_splits(source: DruidInputSource, hint: MaxSizeSplitHint | SegmentsSplitHint, concurrency: int, rt: Runtime) -> list[InputSplit]:
    """The source's visible segments grouped into splits of at most the hint's bytes and count (fewer bytes when
    that gives every one of ``concurrency`` sub-tasks a split)."""
    pieces = _visible_pieces(source, rt)
    if not pieces:
        return [InputSplit(index=0, pieces=[])]  # reads the source whole: no segment is what index reports too
    if isinstance(hint, SegmentsSplitHint):
        max_bytes, max_count = hint.max_input_segment_bytes_per_task, hint.max_num_segments
    else:
        max_bytes, max_count = hint.max_split_size, hint.max_num_files
    total = sum(p.size for p in pieces)
    target = min(max_bytes, max(math.ceil(total / concurrency), 1)) if concurrency > 1 else max_bytes
    groups: list[list[SplitPiece]] = [[]]
    size = 0
    for piece in pieces:
        if groups[-1] and (size + piece.size > target or len(groups[-1]) >= max_count):
            groups.append([])
            size = 0
        groups[-1].append(piece)
        size += piece.size
    return [InputSplit(index=i, pieces=g) for i, g in enumerate(groups)]


def _visible_pieces(source: DruidInputSource, rt: Runtime) -> list[SplitPiece]:
    """Each segment visible somewhere in the source, in timeline order, with the source's windows of it."""
    if source.segments is not None:
        named: dict[str, list[Interval]] = {}
        for w in source.segments:
            named.setdefault(w.segment_id, []).extend(w.intervals)
        span = Interval(min(iv.start for ivs in named.values() for iv in ivs), max(iv.end for ivs in named.values() for iv in ivs))
    else:
        assert source.interval is not None  # the model requires interval or segments
        span = source.interval
    seen: dict[str, SplitPiece] = {}
    for entry in rt.store.timeline(source.data_source, span).visible(span):
        for segment in entry.segments:
            if segment.is_tombstone or segment.id in seen:
                continue
            if source.segments is not None and segment.id not in named:
                continue
            windows = named[segment.id] if source.segments is not None else [span]
            seen[segment.id] = SplitPiece(uri=segment.id, size=segment.size or 0, windows=windows)
    return list(seen.values())


def segment_batches(source: DruidInputSource, split: InputSplit, rt: Runtime, timestamp_column: str) -> Iterator[InputBatch]:
    """The batches of one split's segments (the whole source for a split without pieces)."""
    narrowed: Any = source
    if split.pieces:
        windowed = [WindowedSegmentId(segment_id=p.uri, intervals=p.windows) for p in split.pieces]
        narrowed = source.model_copy(update={"segments": windowed, "interval": None})
    return SegmentInputReader(narrowed, rt.store, rt.storage, timestamp_column=timestamp_column).batches()
