"""Small helpers shared by the input tests."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from druidflow.inputs import InputBatch, open_input


def read_all(source: Any, fmt: Any, **kwargs: Any) -> tuple[list[dict], list, list[InputBatch]]:
    """Every row (as dicts, columns absent from a batch left out), every parse failure, and the batches."""
    block_size = kwargs.pop("block_size", None)
    reader = open_input(source, fmt, **kwargs)
    if block_size is not None:
        reader.block_size = block_size
    batches = list(reader.batches())
    rows = [row for b in batches for row in b.data.to_pylist()]
    failures = [f for b in batches for f in b.unparseable]
    return rows, failures, batches


def table_of(batches: list[InputBatch]) -> pa.Table:
    return pa.Table.from_batches([b.data for b in batches if b.num_rows])
