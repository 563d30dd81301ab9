"""CSV and TSV, streamed with pyarrow's multithreaded CSV reader.

Every column is read as a utf8 string unless the caller asks for another type; an empty value is null, as in
Druid. ``skipHeaderRows`` lines are skipped first, then (``findColumnsFromHeader``) the next line names the
columns. A row with the wrong number of fields is reported as unparseable and skipped, never fatal.
Multi-value splitting on ``listDelimiter`` is left to the engine, which knows which columns are dimensions.
TSV, like Druid's, splits on the delimiter with no quoting.

Druid parses CSV a line at a time, so a quote never spans lines: a line with an unbalanced quote is one
unparseable row and the next line is read afresh. pyarrow would instead read on to the next quote, swallowing
the rows between, so lines with an odd number of quote characters are taken out of the stream (and reported)
before pyarrow sees them; that check runs only over blocks that contain a quote at all. A row with text that is
not UTF-8 is unparseable too (found per batch, only in a batch that fails the vectorised UTF-8 check).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Mapping
from typing import Any, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


class _QuoteGuard:
    """A byte stream of whole lines from ``stream`` with every line holding an odd number of quotes removed;
    each removed line becomes a :class:`ParseFailure` in ``failures``."""

    def __init__(self, stream: Any, uri: str, first_line: int, failures: list[ParseFailure]) -> None:
        self.stream = stream
        self.uri = uri
        self.line = first_line  # 1-based number of the next line
        self.failures = failures
        self.carry = b""
        self.closed = False
        self.quoted = False  # whether any block held a quote (only then can a value hold a newline)

    def read(self, n: int = -1) -> bytes:
        size = n if n is not None and n > 0 else 1 << 20
        while True:
            chunk = self.stream.read(size)
            data = self.carry + chunk if self.carry else chunk
            if not chunk:
                self.carry = b""
                return self._guard(data) if data else b""
            cut = data.rfind(b"\n")
            if cut < 0:
                self.carry = data
                continue
            block, self.carry = data[: cut + 1], data[cut + 1 :]
            out = self._guard(block)
            if out:
                return out

    def _guard(self, block: bytes) -> bytes:
        first = self.line
        self.line += block.count(b"\n")
        if b'"' not in block:
            return block
        self.quoted = True
        arr = np.frombuffer(block, dtype=np.uint8)
        quotes = np.flatnonzero(arr == 34)
        newlines = np.flatnonzero(arr == 10)
        # The quotes before each line's end, by line: odd differences mark lines with an odd number of quotes.
        before = np.searchsorted(quotes, newlines)
        counts = np.diff(np.concatenate(([0], before, [len(quotes)])))
        bad = np.flatnonzero(counts % 2 == 1)
        ends = np.append(newlines + 1, len(arr))
        starts = np.concatenate(([0], ends[:-1]))
        if not len(bad):
            return block
        pieces, pos = [], 0
        for i in bad:
            start, end = int(starts[i]), int(ends[i])
            pieces.append(block[pos:start])
            self.failures.append(
                ParseFailure(truncate_raw(block[start:end]), "unterminated quoted field", self.uri, first + int(i))
            )
            pos = end
        pieces.append(block[pos:])
        return b"".join(pieces)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _valid_text_rows(batch: pa.RecordBatch, uri: str, quoted: bool) -> tuple[pa.RecordBatch, list[ParseFailure]]:
    """The batch without its rows that hold invalid UTF-8 (or, after a quote, a value spanning lines)."""
    bad: Optional[np.ndarray] = None
    for col in batch.columns:
        t = col.type
        if not (pa.types.is_string(t) or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))):
            continue
        try:
            (col.dictionary if pa.types.is_dictionary(t) else col).validate(full=True)
            broken = None
        except pa.ArrowInvalid:
            broken = _invalid_utf8(col)
        if quoted:
            text = col.dictionary if pa.types.is_dictionary(t) else col
            if broken is None and pc.any(pc.match_substring(text, "\n")).as_py():
                broken = np.zeros(len(col), dtype=bool)
            if broken is not None:
                broken |= _holds_newline(col)
        if broken is not None and broken.any():
            bad = broken if bad is None else (bad | broken)
    if bad is None or not bad.any():
        return batch, []
    failures = []
    for row in np.flatnonzero(bad)[:1000]:
        raw = ",".join(_lenient(c, int(row)) for c in batch.columns)
        failures.append(ParseFailure(truncate_raw(raw), "the row is not valid UTF-8 text or spans lines", uri))
    if int(bad.sum()) > len(failures):  # keep the count exact without rendering every row
        failures.extend([failures[-1]] * (int(bad.sum()) - len(failures)))
    kept = batch.filter(pa.array(~bad))
    arrays = [
        pc.dictionary_encode(col.cast(col.type.value_type)).cast(col.type) if pa.types.is_dictionary(col.type) else col
        for col in kept.columns
    ]  # a dictionary would still hold the removed rows' bad text
    return pa.RecordBatch.from_arrays(arrays, schema=kept.schema), failures


def _binary_values(col: pa.Array) -> list[Optional[bytes]]:
    if pa.types.is_dictionary(col.type):
        col = col.dictionary.view(pa.binary()).take(col.indices)
    else:
        col = col.view(pa.binary())
    return col.to_pylist()


def _invalid_utf8(col: pa.Array) -> np.ndarray:
    out = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(_binary_values(col)):
        if v is not None:
            try:
                codecs.utf_8_decode(v, "strict", True)
            except UnicodeDecodeError:
                out[i] = True
    return out


def _holds_newline(col: pa.Array) -> np.ndarray:
    values = _binary_values(col)
    return np.array([v is not None and (b"\n" in v or b"\r" in v) for v in values], dtype=bool)


def _lenient(col: pa.Array, row: int) -> str:
    t = col.type
    if not (pa.types.is_string(t) or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))):
        value = col[row].as_py()
        return "" if value is None else str(value)
    value = _binary_values(col.slice(row, 1))[0]
    return value.decode("utf-8", errors="replace") if value is not None else ""


def has_quote(path: Any) -> bool:
    """Whether a file holds a double quote anywhere (memchr speed, through mmap)."""
    import mmap

    with open(path, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return m.find(b'"') >= 0
        except ValueError:  # an empty file cannot be mapped
            return False


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
        check_utf8=False,  # checked per batch below, so that a row with bad bytes is counted, not fatal
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    guard = None
    if native is None:
        source: Any = _Prefixed(rest, stream)
        if not tsv:
            guard = source = _QuoteGuard(source, uri, preamble_lines + 1, failures)
    try:
        reader = pacsv.open_csv(
            native if native is not None else source,
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
        batch, bad_rows = _valid_text_rows(batch, uri, guard is not None and guard.quoted)
        yield batch, _drain(failures) + bad_rows, None
    if failures:
        yield None, _drain(failures), None


def _drain(failures: list[ParseFailure]) -> list[ParseFailure]:
    taken = failures[:]
    del failures[: len(taken)]
    return taken
