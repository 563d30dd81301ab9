"""Parquet input, read a row-group stretch at a time with ``ParquetFile.iter_batches``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pt

from druidflow.exceptions import InputError
from druidflow.inputs.batch import ParseFailure
from druidflow.inputs.schema import to_string_array
from druidflow.inputs.sources import InputObject
from druidflow.specs.io import ParquetInputFormat

Chunk = tuple[Optional[pa.RecordBatch], list[ParseFailure], Optional[int]]


def read_parquet(obj: InputObject, fmt: ParquetInputFormat, *, batch_rows: int) -> Iterator[Chunk]:
    """Batches of one Parquet file, each with its share of the file's bytes.

    Remote files are downloaded to a temporary file first (Parquet needs random access to its footer).
    """
    with obj.seekable_file() as source:
        try:
            pf = pq.ParquetFile(source)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{obj.uri} is not a readable Parquet file: {exc}") from exc
        total_rows = pf.metadata.num_rows
        size = obj.size or 0
        for batch in pf.iter_batches(batch_size=batch_rows, use_threads=True):
            if fmt.binary_as_string:
                batch = _binary_as_string(batch)
            share = (size * batch.num_rows // total_rows) if total_rows else 0
            yield batch, [], share


def _binary_as_string(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Un-annotated binary columns as UTF-8 text (invalid bytes replaced), as Druid's binaryAsString does."""
    if not any(pt.is_binary(f.type) or pt.is_large_binary(f.type) for f in batch.schema):
        return batch
    arrays = [
        to_string_array(col) if pt.is_binary(col.type) or pt.is_large_binary(col.type) else col for col in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
