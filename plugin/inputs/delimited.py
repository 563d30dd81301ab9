"""CSV and TSV, streamed with pyarrow's multithreaded CSV reader.

Every column is read as a utf8 string unless the caller asks for another type; an empty value is null, as in
Druid. ``skipHeaderRows`` lines are skipped first, then (``findColumnsFromHeader``) the next line names the
columns. A row with the wrong number of fields is reported as unparseable and skipped, never fatal.
Multi-value splitting on ``listDelimiter`` is left to the engine, which knows which columns are dimensions.
TSV, like Druid's, splits on the delimiter with no quoting.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from typing import Any, Optional, Union

import pyarrow as pa
import pyarrow.csv as pacsv

from druidflow.exceptions import InputError
from druidflow.inputs.batch import ParseFailure, truncate_raw
from druidflow.inputs.schema import is_string_like
from druidflow.specs.io import CsvInputFormat, TsvInputFormat

Chunk = tuple[Union[pa.RecordBatch, pa.Table, None], list[ParseFailure], Optional[int]]


class _Prefixed:
    """A byte stream that first returns ``prefix`` (bytes already read from ``stream``), then the rest of it."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self.prefix = prefix
        self.stream = stream
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            if n is None or n < 0:
                data, self.prefix = self.prefix + self.stream.read(), b""
                return data
            data, self.prefix = self.prefix[:n], self.prefix[n:]
            if len(data) < n:
                data += self.stream.read(n - len(data))
            return data
        return self.stream.read(n) if n is not None and n >= 0 else self.stream.read()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _read_preamble(stream: Any, lines: int) -> tuple[list[bytes], bytes, bool]:
    """Read the first ``lines`` lines; returns them, the bytes already read after them, and whether they exist."""
    if lines == 0:
        return [], b"", True
    buf = b""
    while buf.count(b"\n") < lines:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        buf += chunk
    parts = buf.split(b"\n", lines)
    if len(parts) == lines + 1:
        return parts[:lines], parts[lines], True
    # End of input within the preamble: a last line without a newline still counts as a line.
    complete = len(parts) == lines and parts[-1] != b""
    return parts, b"", complete


def _header_names(line: bytes, fmt: Union[CsvInputFormat, TsvInputFormat], uri: str) -> list[str]:
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
    if isinstance(fmt, TsvInputFormat):
        names = text.split(fmt.delimiter)
    else:
        names = next(csv.reader([text]), [])
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{uri}: the header row names column {name!r} twice")
        seen.add(name)
    return names


def read_delimited(
    stream: Any,
    fmt: Union[CsvInputFormat, TsvInputFormat],
    uri: str,
    *,
    block_size: int,
    column_types: Optional[Mapping[str, pa.DataType]] = None,
    native: Any = None,
) -> Iterator[Chunk]:
    """Batches of one CSV/TSV stream, each with the malformed rows met while parsing it.

    ``native`` (a pyarrow ``NativeFile`` over the same bytes, for uncompressed local files) lets Arrow read the file
    itself, without calling back into Python for every block: the preamble is then read from ``stream`` (a second,
    plain handle) and skipped by Arrow.
    """
    preamble_lines = fmt.skip_header_rows + (1 if fmt.uses_header else 0)
    preamble, rest, complete = _read_preamble(stream, preamble_lines)
    if not complete:
        return  # the file ends inside the rows to skip (or before its header): no data
    names = _header_names(preamble[-1], fmt, uri) if fmt.uses_header else list(fmt.columns or ())
    if not names:
        raise InputError(f"{uri}: the header row names no columns")

    failures: list[ParseFailure] = []
    line_offset = preamble_lines

    def on_invalid_row(row: Any) -> str:
        failures.append(
            ParseFailure(
                raw=truncate_raw(row.text),
                message=f"expected {row.expected_columns} fields, found {row.actual_columns}",
                source=uri,
                line=None if row.number is None else row.number + line_offset,
            )
        )
        return "skip"

    types: dict[str, pa.DataType] = {}
    for name in names:
        wanted = (column_types or {}).get(name)
        types[name] = wanted if wanted is not None and is_string_like(wanted) else pa.string()
    tsv = isinstance(fmt, TsvInputFormat)
    read_options = pacsv.ReadOptions(
        use_threads=True, block_size=block_size, column_names=names, skip_rows=preamble_lines if native is not None else 0
    )
    parse_options = pacsv.ParseOptions(
        delimiter=fmt.delimiter_char,
        quote_char=False if tsv else '"',
        double_quote=not tsv,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=True,
        invalid_row_handler=on_invalid_row,
    )
    convert_options = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        reader = pacsv.open_csv(
            native if native is not None else _Prefixed(rest, stream),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            if failures:
                yield None, _drain(failures), None
            return
        raise
    for batch in reader:
        yield batch, _drain(failures), None
    if failures:
        yield None, _drain(failures), None


def _drain(failures: list[ParseFailure]) -> list[ParseFailure]:
    taken = failures[:]
    del failures[: len(taken)]
    return taken
