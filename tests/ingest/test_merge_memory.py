"""The final merge shares maxRowsInMemory between its threads: rows merged at once are bounded by the configured
limit, not by (cores x limit)."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

from druidflow.ingest.builder import IncrementalIndex
from druidflow.ingest.parse import BUCKET, STRING_DIMENSION, TIME
from druidflow.ingest.rollup import MetricColumn

LIMIT = 1_000
ROWS_PER_CHUNK = 6_000
CHUNKS = 4


def _batch(chunk: int, lo: int, n: int) -> pa.Table:
    i = np.arange(lo, lo + n, dtype=np.int64)
    return pa.table({
        TIME: pa.array(chunk * 10_000_000 + i * 10, pa.int64()),
        "page": pa.array([f"p{v}" for v in i % 50]).cast(STRING_DIMENSION),
        "count": pa.array(np.ones(n, dtype=np.int64)),
        BUCKET: pa.array(np.full(n, chunk, dtype=np.int64)),
    })  # fmt: skip


def _merge(tmp_path, threads: int) -> tuple[int, int, int]:
    """(largest merge piece, most rows being merged at one moment, rows received) of one build."""
    lock = threading.Lock()
    pieces: list[int] = []
    active = {"rows": 0, "peak": 0}
    barrier = threading.Barrier(min(threads, CHUNKS), timeout=5)

    def sink(chunk: int, table: pa.Table) -> None:
        with lock:
            pieces.append(table.num_rows)
            active["rows"] += table.num_rows
            active["peak"] = max(active["peak"], active["rows"])
        if len(pieces) <= min(threads, CHUNKS):
            try:
                barrier.wait()  # let every merge thread hold its first piece at once
            except threading.BrokenBarrierError:
                pass
        with lock:
            active["rows"] -= table.num_rows

    index = IncrementalIndex(
        dimensions=["page"], metrics=[MetricColumn("count", "sum", pa.int64())], work_dir=tmp_path / f"w{threads}",
        sink=sink, rollup=False, max_rows_in_memory=LIMIT, group_column=BUCKET, merge_threads=threads,
    )  # fmt: skip
    for lo in range(0, ROWS_PER_CHUNK, 500):
        for chunk in range(CHUNKS):
            index.add(_batch(chunk, lo, 500))
    index.finish()
    return max(pieces), active["peak"], sum(pieces)


def test_merge_threads_share_max_rows_in_memory(tmp_path):
    for threads in (1, 2, 4):
        largest, peak, total = _merge(tmp_path, threads)
        assert total == ROWS_PER_CHUNK * CHUNKS
        # Each thread merges slices of at most its share (slices are cut by time range, so allow a little slack).
        assert largest <= 1.25 * LIMIT / threads, (threads, largest)
        assert peak <= 1.25 * LIMIT, (threads, peak)
