"""The segment file: one Parquet file that any Parquet reader can open.

Layout: ``__time`` as ``timestamp[ms, UTC]``, then the dimensions (strings dictionary-encoded, numbers as
they are), then the metrics; rows sorted by time, then dimensions. Per-column compression follows Druid's
``indexSpec`` (``dimensionCompression`` for dimensions, ``metricCompression`` for ``__time`` and metrics) and
``longEncoding`` picks the Parquet encoding of integer columns. The segment's descriptor (Druid's payload) is
embedded in the file's key-value metadata under ``druidflow.segment``; its ``size`` there is 0 because the
file's size is only known once the file is written (the metadata DB holds the real size).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from druidflow.exceptions import SpecError
from druidflow.segments.descriptor import DataSegment

TIME_COLUMN = "__time"
DESCRIPTOR_KEY = b"druidflow.segment"
ROW_GROUP_ROWS = 128 * 1024

_CODECS = {"lz4": "lz4", "uncompressed": "none", "none": "none", "zstd": "zstd"}


def parquet_codec(name: str, path: str) -> str:
    """The Parquet codec for an indexSpec compression name; ``lzf`` has no Parquet counterpart."""
    codec = _CODECS.get(str(name).lower())
    if codec is None:
        raise SpecError(
            path,
            name,
            "this compression cannot be written to Parquet; use lz4, zstd or uncompressed"
            if str(name).lower() == "lzf"
            else "unknown compression; use lz4, zstd or uncompressed",
        )
    return codec


def _split_multi_value(col: Any, separator: str, null_element: str) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    lists = pc.split_pattern(col, separator)
    first, last = lists.offsets[0].as_py(), lists.offsets[-1].as_py()
    values = lists.values.slice(first, last - first)
    is_null = pc.equal(values, null_element)
    if not pc.any(is_null).as_py():
        return lists
    values = pc.if_else(is_null, pa.scalar(None, pa.string()), values)
    return pa.ListArray.from_arrays(pc.subtract(lists.offsets, first), values, mask=pc.is_null(lists))


class SegmentFileWriter:
    """Streams sorted row tables into one segment file; the descriptor is written when the file is closed.

    ``multi_value`` names string dimensions whose rows hold several values joined by ``separator``; they are
    written as ``list<string>`` columns, where an element equal to ``null_element`` is a null element.
    """

    def __init__(
        self,
        path: Path,
        *,
        dimensions: list[str],
        multi_value: frozenset[str] = frozenset(),
        separator: str = "\x1f",
        null_element: str = "\x1e",
        dimension_compression: str = "lz4",
        metric_compression: str = "lz4",
        long_encoding: str = "longs",
    ) -> None:
        self.path = path
        self.dimensions = dimensions
        self.multi_value = multi_value
        self.separator = separator
        self.null_element = null_element
        self.dimension_compression = parquet_codec(dimension_compression, "tuningConfig.indexSpec.dimensionCompression")
        self.metric_compression = parquet_codec(metric_compression, "tuningConfig.indexSpec.metricCompression")
        self.long_encoding = long_encoding
        self.rows = 0
        self._writer: Optional[pq.ParquetWriter] = None
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        table = self._prepare(table)
        if self._writer is None:
            self._writer = self._open(table.schema)
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def close(self, segment: DataSegment) -> int:
        """Embed the descriptor, close the file and return its size in bytes."""
        if self._writer is None:
            raise ValueError(f"{self.path}: a segment needs at least one row")
        descriptor = segment.model_copy(update={"size": 0}).payload()
        self._writer.add_key_value_metadata({DESCRIPTOR_KEY.decode(): json.dumps(descriptor, separators=(",", ":"))})
        self._writer.close()
        self._writer = None
        return self.path.stat().st_size

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.path.unlink(missing_ok=True)

    def _prepare(self, table: pa.Table) -> pa.Table:
        table = _with_time_type(table)
        for name in self.multi_value:
            if name in table.column_names:
                idx = table.schema.get_field_index(name)
                col = table.column(idx)
                if pa.types.is_dictionary(col.type):
                    col = col.cast(col.type.value_type)
                table = table.set_column(idx, name, _split_multi_value(col, self.separator, self.null_element))
        return table

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        dims = set(self.dimensions)
        compression = {}
        encodings = {}
        dictionary_cols = []
        for field in schema:
            compression[field.name] = self.dimension_compression if field.name in dims else self.metric_compression
            t = field.type
            if pa.types.is_dictionary(t) or pa.types.is_string(t) or pa.types.is_list(t):
                dictionary_cols.append(field.name)
            elif pa.types.is_integer(t) and self.long_encoding == "auto":
                encodings[field.name] = "DELTA_BINARY_PACKED"
        return pq.ParquetWriter(
            self.path,
            schema,
            compression=compression,
            use_dictionary=dictionary_cols,
            column_encoding=encodings or None,
            # Time statistics let readers prune row groups by interval; dimension and metric statistics cost a
            # third of the write time and serve no query Druidflow runs.
            write_statistics=[TIME_COLUMN],
        )


def write_segment(table: pa.Table, path: Path, segment: DataSegment, **options: Any) -> int:
    """Write one whole segment file at once; return its size."""
    writer = SegmentFileWriter(path, dimensions=segment.dimension_names, **options)
    writer.write(table)
    return writer.close(segment)


def _with_time_type(table: pa.Table) -> pa.Table:
    idx = table.schema.get_field_index(TIME_COLUMN)
    col = table.column(idx)
    if col.type != pa.timestamp("ms", tz="UTC") or table.schema.field(idx).nullable:
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ms", tz="UTC"))
        else:
            col = col.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
        table = table.set_column(idx, pa.field(TIME_COLUMN, col.type, nullable=False), col)
    return table


def read_descriptor(source: Any) -> DataSegment:
    """The descriptor embedded in a segment file (a path or a file-like object)."""
    meta = pq.read_metadata(source).metadata or {}
    raw = meta.get(DESCRIPTOR_KEY)
    if raw is None:
        raise ValueError(f"{source}: not a Druidflow segment (no {DESCRIPTOR_KEY.decode()} metadata)")
    return DataSegment.parse(json.loads(raw))


def read_segment(source: Any, columns: Optional[list[str]] = None, *, time_as_int: bool = True) -> pa.Table:
    """The rows of a segment file; ``__time`` comes back as int64 epoch ms unless ``time_as_int`` is false."""
    table = pq.read_table(source, columns=columns)
    if time_as_int and TIME_COLUMN in table.column_names:
        idx = table.schema.get_field_index(TIME_COLUMN)
        table = table.set_column(idx, TIME_COLUMN, table.column(idx).cast(pa.int64()))
    return table.replace_schema_metadata(None)
