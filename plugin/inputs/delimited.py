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
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from druidflow.exceptions import InputError
from druidflow.inputs.batch import ParseFailure, truncate_raw
from druidflow.inputs.schema import is_string_like
from druidflow.specs.io import CsvInputFormat, TsvInputFormat

_NEWLINE, _QUOTE = 10, 34

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


class _LineGuard:
    """A byte stream of whole lines from ``stream`` without the lines Druid's line reader would reject before
    splitting them: a line that is not valid UTF-8 and (``quotes``, CSV) a line holding an odd number of quotes.
    Each removed line becomes a :class:`ParseFailure` in ``failures``, with its line number.

    pyarrow's own reader cannot be told about such lines: it decodes a malformed row's text as UTF-8 before its
    invalid-row handler is called, so a line with bad bytes *and* a wrong field count would abort the read.
    """

    def __init__(self, stream: Any, uri: str, first_line: int, failures: list[ParseFailure], quotes: bool) -> None:
        self.stream = stream
        self.uri = uri
        self.line = first_line  # 1-based number of the next line
        self.failures = failures
        self.quotes = quotes
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
        removed: dict[int, tuple[int, int, str]] = {}  # line start -> (start, end, why)
        if not is_utf8(block):
            for start, end in _invalid_utf8_lines(block):
                removed[start] = (start, end, "the line is not valid UTF-8 text")
        if self.quotes and b'"' in block:
            self.quoted = True
            for start, end in _odd_quote_lines(block):
                removed.setdefault(start, (start, end, "unterminated quoted field"))
        if not removed:
            return block
        pieces, pos, line, counted = [], 0, first, 0
        for start, end, why in sorted(removed.values()):
            line += block.count(b"\n", counted, start)
            counted = start
            pieces.append(block[pos:start])
            text = block[start:end].decode("utf-8", errors="replace")
            self.failures.append(ParseFailure(truncate_raw(text), why, self.uri, line))
            pos = end
        pieces.append(block[pos:])
        return b"".join(pieces)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def _odd_quote_lines(block: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each line of ``block`` holding an odd number of double quotes (vectorised)."""
    arr = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(arr == _QUOTE)
    newlines = np.flatnonzero(arr == _NEWLINE)
    # The quotes before each line's end, by line: odd differences mark lines with an odd number of quotes.
    before = np.searchsorted(quotes, newlines)
    counts = np.diff(np.concatenate(([0], before, [len(quotes)])))
    bad = np.flatnonzero(counts % 2 == 1)
    ends = np.append(newlines + 1, len(arr))
    starts = np.concatenate(([0], ends[:-1]))
    return [(int(starts[i]), int(ends[i])) for i in bad]


def _invalid_utf8_lines(block: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each line of ``block`` that is not valid UTF-8; each decode resumes after the last bad
    line, so the whole block is decoded about once however many lines are bad."""
    out = []
    pos = 0
    view = memoryview(block)
    while pos < len(block):
        try:
            codecs.utf_8_decode(view[pos:], "strict", True)
            break
        except UnicodeDecodeError as exc:
            at = pos + exc.start
            start = block.rfind(b"\n", 0, at) + 1
            nl = block.find(b"\n", at)
            end = len(block) if nl < 0 else nl + 1
            out.append((start, end))
            pos = end
    return out


def is_utf8(data: Union[bytes, bytearray, memoryview]) -> bool:
    """Whether ``data`` is valid UTF-8: ASCII is checked first, then Arrow's vectorised validation (no decoded copy)."""
    if isinstance(data, (bytes, bytearray)) and data.isascii():
        return True
    buf = pa.py_buffer(data)
    offsets = pa.py_buffer(np.array([0, buf.size], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, buf]).validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


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
            if broken is None and _holds_byte(col, _NEWLINE):
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


def _text_bytes(col: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a string column's values (a dictionary column's dictionary), as a view."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary
    if len(col) == 0:
        return np.zeros(0, np.uint8)
    _, offsets_buf, data_buf = col.buffers()[:3]
    if data_buf is None:
        return np.zeros(0, np.uint8)
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(col) + 1, offset=col.offset * 4)
    return np.frombuffer(data_buf, dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]


def _holds_byte(col: pa.Array, byte: int) -> bool:
    """Whether any value of a string column holds ``byte`` (one vectorised pass over the column's bytes)."""
    data = _text_bytes(col)
    return bool(len(data)) and bool(np.any(data == byte))


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or (pa.types.is_dictionary(t) and pa.types.is_string(t.value_type))


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


_QUOTE_SCAN_BLOCK = 8 << 20


class TextScan(NamedTuple):
    has_quote: bool
    utf8: bool  # every byte of the file is valid UTF-8


def has_quote(path: Any) -> bool:
    """Whether a file holds a double quote anywhere (stops at the first one)."""
    return scan_text(path, utf8=False).has_quote


def scan_text(path: Any, *, utf8: bool = True) -> TextScan:
    """Whether a file holds a double quote anywhere and (``utf8``) whether it is valid UTF-8 throughout, read in
    blocks through one reused buffer; stops as soon as the answers are known.

    Not a memory map of the whole file: every page it touches counts as resident memory of the process, so a
    50M-row CSV would raise the build's peak RSS by the size of the file (3.7 GB) before a row is read.
    """
    buffer = bytearray(_QUOTE_SCAN_BLOCK)
    quote, valid, tail = False, True, b""
    with open(path, "rb", buffering=0) as f:
        while not (quote and (not utf8 or not valid)):
            n = f.readinto(buffer)
            if not n:
                break
            if not quote and buffer.find(b'"', 0, n) >= 0:
                quote = True
            if utf8 and valid:
                view = memoryview(buffer)[:n]
                head = _char_start(view, 0)  # continuation bytes of a character begun in the last block
                cut = _last_char_start(view, n)  # a character that may go on in the next block
                valid = is_utf8(tail + bytes(view[:head])) and (head >= cut or is_utf8(view[head:cut]))
                tail = bytes(view[max(cut, head) :])
    if utf8 and valid and tail:
        valid = is_utf8(tail)
    return TextScan(quote, valid)


def _char_start(view: memoryview, pos: int) -> int:
    """The first position at or after ``pos`` (at most 3 on) that is not a UTF-8 continuation byte."""
    end = min(pos + 3, len(view))
    while pos < end and view[pos] & 0xC0 == 0x80:
        pos += 1
    return pos


def _last_char_start(view: memoryview, n: int) -> int:
    """Where the last (possibly incomplete) multi-byte character of ``view[:n]`` starts, else ``n``."""
    i = n - 1
    while i > max(n - 4, 0) and view[i] & 0xC0 == 0x80:
        i -= 1
    return i if i >= 0 and view[i] >= 0xC0 else n


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
        try:
            names = next(csv.reader([text]), [])
        except csv.Error as exc:  # e.g. a name longer than the csv module's field limit (128 KiB)
            raise InputError(f"{uri}: the header row cannot be read: {exc}") from None
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
    may_hold_quotes: bool = False,
) -> Iterator[Chunk]:
    """Batches of one CSV/TSV stream, each with the malformed rows met while parsing it.

    ``native`` (a pyarrow ``NativeFile`` over the same bytes, for uncompressed local files that
    :func:`scan_text` found to be valid UTF-8) lets Arrow read the file itself, without calling back into Python
    for every block: the preamble is then read from ``stream`` (a second, plain handle) and skipped by Arrow.
    With ``may_hold_quotes`` (a CSV file holding a quote somewhere) Arrow still reads it natively, but
    speculatively: only a line with an odd number of quotes can leave a quote or a newline in a value or in a
    skipped row, so while no batch holds one, Arrow's rows are exactly the line guard's. At the first batch that
    does (or at an error of Arrow's own), the file is read again through the guard from its start, without the
    rows and malformed rows already handed out.
    """
    preamble_lines = fmt.skip_header_rows + (1 if fmt.uses_header else 0)
    preamble, rest, complete = _read_preamble(stream, preamble_lines)
    if not complete:
        return  # the file ends inside the rows to skip (or before its header): no data
    if not rest:
        rest = stream.read(1)
        if not rest:
            return  # nothing after the header (Arrow itself would fail to skip a header without a newline)
    names = _header_names(preamble[-1], fmt, uri) if fmt.uses_header else list(fmt.columns or ())
    if not names:
        raise InputError(f"{uri}: the header row names no columns")

    failures: list[ParseFailure] = []
    suspect = threading.Event()
    abandoned = threading.Event()

    def on_invalid_row(row: Any, native_reader: bool) -> str:
        if native_reader and abandoned.is_set():
            return "skip"  # read ahead by the native reader after it was given up: the guard reads these lines
        if suspect_quotes and '"' in row.text:
            suspect.set()  # perhaps an unterminated quote swallowing lines: the guard decides
            return "skip"
        failures.append(
            ParseFailure(
                raw=truncate_raw(row.text),
                message=f"expected {row.expected_columns} fields, found {row.actual_columns}",
                source=uri,
                line=None if row.number is None else row.number + preamble_lines,
            )
        )
        return "skip"

    types: dict[str, pa.DataType] = {}
    for name in names:
        wanted = (column_types or {}).get(name)
        types[name] = wanted if wanted is not None and is_string_like(wanted) else pa.string()
    tsv = isinstance(fmt, TsvInputFormat)

    def open_reader(source: Any, skip_rows: int) -> Any:
        read_options = pacsv.ReadOptions(use_threads=True, block_size=block_size, column_names=names, skip_rows=skip_rows)
        parse_options = pacsv.ParseOptions(
            delimiter=fmt.delimiter_char,
            quote_char=False if tsv else '"',
            double_quote=not tsv,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=True,
            invalid_row_handler=lambda row: on_invalid_row(row, source is native),
        )
        convert_options = pacsv.ConvertOptions(
            check_utf8=False,  # checked per batch below, so that a row with bad bytes is counted, not fatal
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        try:
            return pacsv.open_csv(source, read_options=read_options, parse_options=parse_options, convert_options=convert_options)
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise

    handed_rows = 0
    handed_failures: Counter[tuple[str, str]] = Counter()
    suspect_quotes = native is not None and may_hold_quotes and not tsv
    if native is not None:
        reader = None
        try:
            reader = open_reader(native, preamble_lines)
            for batch in reader if reader is not None else ():
                if suspect_quotes and (suspect.is_set() or _holds_quote_or_newline(batch)):
                    break
                out = _drain(failures)
                handed_rows += batch.num_rows
                handed_failures.update((f.raw, f.message) for f in out)
                yield batch, out, None  # the file is valid UTF-8 (scan_text): no row to take out
            else:
                if not suspect.is_set():
                    if failures:
                        yield None, _drain(failures), None
                    return
        except pa.ArrowInvalid:
            pass  # the guard decides: it raises if the problem is real
        # Something only an odd number of quotes on a line can cause, or an error of Arrow's own reading (a
        # header longer than its block): the line guard reads the file again.
        abandoned.set()
        if reader is not None:
            reader.close()
        failures.clear()
        suspect_quotes = False

    guard = _LineGuard(_Prefixed(rest, stream), uri, preamble_lines + 1, failures, quotes=not tsv)
    reader = open_reader(guard, 0)
    if reader is None:
        if failures:
            yield None, _unseen(_drain(failures), handed_failures), None
        return
    for batch in reader:
        if handed_rows:
            skipped = min(handed_rows, batch.num_rows)
            batch, handed_rows = batch.slice(skipped), handed_rows - skipped
        batch, bad_rows = _valid_text_rows(batch, uri, guard.quoted)
        yield batch, _unseen(_drain(failures), handed_failures) + bad_rows, None
    if failures:
        yield None, _unseen(_drain(failures), handed_failures), None


def _holds_quote_or_newline(batch: pa.RecordBatch) -> bool:
    return any(_is_text(c.type) and (_holds_byte(c, _QUOTE) or _holds_byte(c, _NEWLINE)) for c in batch.columns)


def _unseen(failures: list[ParseFailure], handed: Counter[tuple[str, str]]) -> list[ParseFailure]:
    """``failures`` without those already handed out (by raw text and message, each once)."""
    if not handed:
        return failures
    out = []
    for f in failures:
        key = (f.raw, f.message)
        if handed[key] > 0:
            handed[key] -= 1
        else:
            out.append(f)
    return out


def _drain(failures: list[ParseFailure]) -> list[ParseFailure]:
    taken = failures[:]
    del failures[: len(taken)]
    return taken
