"""Reading back what a streaming test published: rows per message id, through the visible timeline."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def messages(first: int, count: int, spread_ms: int = 1_000) -> list[dict]:
    """Messages with ids first..first+count-1, one second apart (so they fall in several HOUR chunks)."""
    return [{"ts": BASE_MS + i * spread_ms, "id": i, "page": f"p{i % 7}", "n": 1} for i in range(first, first + count)]


def visible_ids(rt, data_source: str) -> Counter:
    """How often each message id is visible, weighted by the count metric (1 per message without rollup)."""
    from druidflow.query import visible_rows

    seen: Counter = Counter()
    for batch in visible_rows(rt.store, rt.storage, data_source):
        table = pa.Table.from_batches([batch])
        for i, c in zip(table.column("id").to_pylist(), table.column("count").to_pylist()):
            seen[i] += c
    return seen
