"""Reading an input source in a given format as a stream of Arrow batches, in bounded memory."""

from __future__ import annotations

import http.client
import lzma
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Optional, Union

import pyarrow as pa

from druidflow.exceptions import InputError, SpecError
from druidflow.inputs.batch import InputBatch, ParseFailure
from druidflow.inputs.delimited import read_delimited, scan_text
from druidflow.inputs.flatten import apply_flatten
from druidflow.inputs.json_lines import JsonLinesParser
from druidflow.inputs.json_numbers import java_text_columns, merge_companions, split_companions
from druidflow.inputs.parquet import read_parquet
from druidflow.inputs.schema import SchemaUnifier, apply_column_types
from druidflow.inputs.sources import InputObject, LocalFile, list_objects
from druidflow.specs.io import (
    CsvInputFormat,
    DruidInputSource,
    FlattenSpec,
    JsonInputFormat,
    ParquetInputFormat,
    TsvInputFormat,
    parse_input_format,
    parse_input_source,
)

DEFAULT_BATCH_ROWS = 131072


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [
        pa.ArrowException,
        OSError,
        EOFError,
        lzma.LZMAError,
        http.client.HTTPException,
        UnicodeError,
    ]
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


class _NativeCount:
    """Bytes a local file has been read up to, in the shape of ``CountingStream.count``: the furthest of the native
    handle and the plain one (which reads the header and, when the native read is given up, the whole file again).
    Not a seek of the native handle to its end: Arrow's read-ahead threads may still be reading it."""

    def __init__(self, native: Any, plain: Any) -> None:
        self.handles = (native, plain)
        self._last = 0

    @property
    def count(self) -> int:
        for h in self.handles:
            if not h.closed:
                self._last = max(self._last, h.tell())
        return self._last

    def close(self) -> None:
        for h in self.handles:
            h.close()


class _Closing:
    """Closes several handles as one."""

    def __init__(self, *handles: Any) -> None:
        self.handles = handles

    def close(self) -> None:
        for h in self.handles:
            h.close()


class InputReader:
    """An input source read in one input format: its objects (files) one after another, as Arrow batches.

    Memory stays bounded by the block size and ``batch_rows``, whatever the size of the input. Column types are
    kept consistent across batches (see :class:`~druidflow.inputs.schema.SchemaUnifier`); columns named in
    ``column_types`` get exactly that type.
    """

    def __init__(
        self,
        source: Any,
        input_format: Any,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        column_types: Optional[Mapping[str, pa.DataType]] = None,
        text_fields: Optional[Collection[str]] = None,
    ) -> None:
        if isinstance(source, Mapping):
            source = parse_input_source(source)
        if hasattr(source, "to_input_source"):
            source = source.to_input_source()  # a classic firehose
        if isinstance(input_format, Mapping):
            input_format = parse_input_format(input_format)
        if isinstance(source, DruidInputSource):
            raise InputError("the 'druid' input source re-reads segments; it is read by the engine, not as files")
        if input_format is None:
            raise SpecError("inputFormat", None, f"an inputFormat is required for input source type {source.type!r}")
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be positive, got {batch_rows}")
        self.source = source
        self.input_format: Union[JsonInputFormat, CsvInputFormat, TsvInputFormat, ParquetInputFormat] = input_format
        self.batch_rows = batch_rows
        self.column_types: dict[str, pa.DataType] = dict(column_types or {})
        # JSON fields whose numbers may become text (string dimensions, hash keys): for these, which numbers were
        # written as integers is found out (InputBatch.integral_numbers). None: every field.
        self.text_fields: Optional[frozenset[str]] = None if text_fields is None else frozenset(text_fields) | frozenset(self.column_types)
        # About 64 bytes a row: blocks of a few MiB give batches near batch_rows for typical rows.
        self.block_size = min(max(batch_rows * 64, 1 << 20), 64 << 20)
        self._objects: Optional[list[InputObject]] = None

    @property
    def list_delimiter(self) -> Optional[str]:
        """The multi-value delimiter for CSV/TSV string values (Druid's default ``\\u0001``), else None."""
        fmt = self.input_format
        return fmt.effective_list_delimiter if isinstance(fmt, (CsvInputFormat, TsvInputFormat)) else None

    @property
    def keep_null_columns(self) -> bool:
        """The JSON format's ``keepNullColumns`` (for schemaless dimension discovery)."""
        fmt = self.input_format
        return bool(isinstance(fmt, JsonInputFormat) and fmt.keep_null_columns)

    @property
    def flatten_spec(self) -> Optional[FlattenSpec]:
        return getattr(self.input_format, "flatten_spec", None)

    def objects(self) -> list[InputObject]:
        """The input's objects (files, URIs, S3 objects) in reading order; listed once, then remembered."""
        if self._objects is None:
            self._objects = list_objects(self.source)
        return self._objects

    def batches(self) -> Iterator[InputBatch]:
        """Every batch of every object, in order."""
        unifier, parser = SchemaUnifier(exempt=self.column_types), JsonLinesParser(self.text_fields)
        for obj in self.objects():
            yield from self._read(obj, unifier, parser)

    def read_objects(self, objects: list[InputObject]) -> Iterator[InputBatch]:
        """Every batch of ``objects`` (a split of this input's objects), with one schema across them."""
        unifier, parser = SchemaUnifier(exempt=self.column_types), JsonLinesParser(self.text_fields)
        for obj in objects:
            yield from self._read(obj, unifier, parser)

    def read_object(self, obj: InputObject) -> Iterator[InputBatch]:
        """The batches of one object (for splitting the work of one input across processes)."""
        yield from self._read(obj, SchemaUnifier(exempt=self.column_types), JsonLinesParser(self.text_fields))

    # -----------------------------------------------------------------------------------------------------------

    def _chunks(self, obj: InputObject, parser: JsonLinesParser) -> tuple[Iterator[Any], Any, Any]:
        fmt = self.input_format
        if isinstance(fmt, ParquetInputFormat):
            return read_parquet(obj, fmt, batch_rows=self.batch_rows), None, None
        plain_local = not isinstance(fmt, JsonInputFormat) and isinstance(obj, LocalFile) and obj.compression is None
        scan = scan_text(obj.path) if plain_local and isinstance(obj, LocalFile) else None
        if scan is not None and scan.utf8 and isinstance(obj, LocalFile) and not isinstance(fmt, JsonInputFormat):
            # A plain local file of valid UTF-8: Arrow reads it natively (no Python call per block, so no GIL
            # contention with the work done on the batches); a second handle serves the header. A CSV file with
            # quotes is read so speculatively: at a sign of an unbalanced quote it is read again through Python,
            # which keeps such a quote from swallowing the lines after it. A file with bytes that are not UTF-8 is
            # read through Python's line guard, which takes those lines out (pyarrow cannot report them).
            native = pa.OSFile(str(obj.path))
            header = open(obj.path, "rb")
            chunks = read_delimited(
                header,
                fmt,
                obj.uri,
                block_size=self.block_size,
                column_types=self.column_types,
                native=native,
                may_hold_quotes=isinstance(fmt, CsvInputFormat) and scan.has_quote,
            )
            return chunks, _Closing(header, native), _NativeCount(native, header)
        stream, counter = obj.open_text_stream()
        if isinstance(fmt, JsonInputFormat):
            chunks = parser.read(stream, obj.uri, self.block_size)
        else:
            chunks = read_delimited(stream, fmt, obj.uri, block_size=self.block_size, column_types=self.column_types)
        return chunks, stream, counter

    def _read(self, obj: InputObject, unifier: SchemaUnifier, parser: JsonLinesParser) -> Iterator[InputBatch]:
        # Each batch is held back until the next one exists, so that the bytes read after the last batch was
        # parsed (read-ahead, the end of the file) can still be added to the last batch.
        pending: Optional[InputBatch] = None
        assigned = 0
        stream = counter = None
        end_count: Optional[int] = None
        try:
            chunks, stream, counter = self._chunks(obj, parser)
            for data, failures, nbytes in chunks:
                if nbytes is None:
                    nbytes = counter.count - assigned if counter is not None else 0
                batches = self._finish(data, failures, unifier, obj.uri)
                if not batches:
                    continue  # no rows, no failures (rows already handed out): its bytes go with the next batch
                assigned += nbytes
                for i, (batch, integral) in enumerate(batches):
                    out = InputBatch(
                        batch,
                        failures if i == 0 else [],
                        nbytes if i == 0 else 0,
                        obj.uri,
                        non_flat_fields=frozenset(parser.non_flat_fields),
                        integral_numbers=integral,
                    )
                    if pending is not None:
                        yield pending
                    pending = out
            end_count = counter.count if counter is not None else None  # before the handles are closed
        except (InputError, SpecError):
            raise
        except _read_errors() as exc:
            raise InputError(f"could not read {obj.uri}: {exc}") from exc
        finally:
            for s in (stream, counter):
                if s is not None and hasattr(s, "close"):
                    try:
                        s.close()
                    except Exception:
                        pass
        if pending is not None:
            total = end_count if end_count is not None else (obj.size or assigned)
            pending.bytes_read += max(total - assigned, 0)
            yield pending

    def _finish(
        self, data: Any, failures: list[ParseFailure], unifier: SchemaUnifier, uri: str
    ) -> list[tuple[pa.RecordBatch, dict[str, pa.Array]]]:
        if data is None:
            pieces: list[pa.RecordBatch] = []
        elif isinstance(data, pa.Table):
            # One block parses into many small chunks; hand out batches near batch_rows instead.
            pieces = data.combine_chunks().to_batches(max_chunksize=self.batch_rows)
        else:
            pieces = [data.slice(i, self.batch_rows) for i in range(0, data.num_rows, self.batch_rows)]
        if not pieces and failures:
            pieces = [pa.RecordBatch.from_arrays([], names=[])]
        out = []
        flattened = {f.name for f in self.flatten_spec.fields} if self.flatten_spec is not None else set()
        for piece in pieces:
            piece, found = split_companions(piece)
            before = piece.schema
            piece = unifier.conform(piece)
            integral = {k: v for k, v in merge_companions(found, before, piece).items() if k not in flattened}
            piece = apply_flatten(piece, self.flatten_spec)
            piece = java_text_columns(piece, self.column_types, integral)
            out.append((apply_column_types(piece, self.column_types, uri), integral))
        return out


def open_input(
    source: Any,
    fmt: Any,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    column_types: Optional[Mapping[str, pa.DataType]] = None,
    text_fields: Optional[Collection[str]] = None,
) -> InputReader:
    """A reader of ``source`` (an input source, a classic firehose, or their JSON dict) in format ``fmt``.

    Nothing is read until :meth:`InputReader.batches` is iterated. ``column_types`` maps column names to the
    Arrow types the caller wants (e.g. ``dictionary<int32, utf8>`` for dimensions); other CSV/TSV columns are
    utf8, other JSON/Parquet columns keep their inferred types. ``text_fields`` are the JSON fields whose numbers
    may become text (None: any), for which the kind of each number is kept (:mod:`druidflow.inputs.json_numbers`).
    """
    return InputReader(source, fmt, batch_rows=batch_rows, column_types=column_types, text_fields=text_fields)
