"""Splitting one input into independently readable pieces, for the parallel task's sub-tasks.

Druid's ``maxSize`` split hint groups whole files into splits of at most ``maxSplitSize`` bytes and ``maxNumFiles``
files (a file larger than that is a split of its own). Druidflow also cuts a file into byte ranges where the format
allows it — uncompressed JSON lines, and CSV/TSV without a quote character (a quoted field may hold a newline),
local files (a seek) or S3 objects (a ranged GET) — at line boundaries: a range owns every line whose first byte
lies in ``[start, end)``, so the ranges of a file cover each line exactly once. Files are cut so that there are at least ``maxNumConcurrentSubTasks`` splits
where the input allows: one big file still feeds every worker. A CSV/TSV range after the first repeats the file's
header lines (``skipHeaderRows`` plus the header row), which the reader then skips or reads as column names.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, BinaryIO, Optional

from pydantic import Field

from druidflow.exceptions import InputError, SpecError
from druidflow.inputs.delimited import has_quote
from druidflow.inputs.sources import InputObject, LocalFile, ReadOnlyStream, S3InputObject, list_objects
from druidflow.intervals import Interval
from druidflow.specs.base import DruidModel
from druidflow.specs.io import (
    CsvInputFormat,
    HttpInputSource,
    JsonInputFormat,
    LocalInputSource,
    S3InputSource,
    TsvInputFormat,
)

DEFAULT_MAX_SPLIT_SIZE = 1 << 30  # Druid's MaxSizeSplitHintSpec: 1GiB
DEFAULT_MAX_NUM_FILES = 1000
MIN_RANGE_BYTES = 1 << 20  # a range below this costs more in task overhead than it saves
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


class MaxSizeSplitHint(DruidModel):
    """``splitHintSpec`` ``{"type": "maxSize", "maxSplitSize": ..., "maxNumFiles": ...}`` (Druid's defaults 1GiB, 1000)."""

    type: str = "maxSize"
    max_split_size: int = DEFAULT_MAX_SPLIT_SIZE
    max_num_files: int = DEFAULT_MAX_NUM_FILES


class SegmentsSplitHint(DruidModel):
    """``splitHintSpec`` ``{"type": "segments", "maxInputSegmentBytesPerTask": ..., "maxNumSegments": ...}``: the
    ``druid`` input source's segments grouped into splits (Druid's defaults 1GiB, 1000)."""

    type: str = "segments"
    max_input_segment_bytes_per_task: int = DEFAULT_MAX_SPLIT_SIZE
    max_num_segments: int = DEFAULT_MAX_NUM_FILES


def parse_split_hint(data: Optional[dict[str, Any]], path: str = "spec.tuningConfig.splitHintSpec") -> MaxSizeSplitHint | SegmentsSplitHint:
    """The split hint of a tuningConfig; the byte sizes take Druid's human-readable bytes (``"512MiB"``)."""
    if data is None:
        return MaxSizeSplitHint()
    if not isinstance(data, dict):
        raise SpecError(path, data, "must be an object such as {\"type\": \"maxSize\", \"maxSplitSize\": \"512MiB\"}")
    kind = data.get("type")
    fields = {"maxSize": ("maxSplitSize", "maxNumFiles"), "segments": ("maxInputSegmentBytesPerTask", "maxNumSegments")}
    if kind not in fields:
        raise SpecError(f"{path}.type", kind, "must be maxSize (files or segments) or segments (the druid input source)")
    size_field, count_field = fields[kind]
    unknown = sorted(set(data) - {"type", size_field, count_field})
    if unknown:
        raise SpecError(f"{path}.{unknown[0]}", data[unknown[0]], f"is not a field of the {kind} split hint")
    size = _bytes(data.get(size_field, DEFAULT_MAX_SPLIT_SIZE), f"{path}.{size_field}")
    count = data.get(count_field, DEFAULT_MAX_NUM_FILES)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SpecError(f"{path}.{count_field}", count, "must be a positive integer")
    if kind == "segments":
        return SegmentsSplitHint(max_input_segment_bytes_per_task=size, max_num_segments=count)
    return MaxSizeSplitHint(max_split_size=size, max_num_files=count)


def _bytes(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError(path, value, "must be positive")
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        digits = len(text) - len(text.lstrip("0123456789"))
        unit = text[digits:]
        if digits and unit in _UNITS and int(text[:digits]) > 0:
            return int(text[:digits]) * _UNITS[unit]
    raise SpecError(path, value, "must be a positive number of bytes, e.g. 536870912 or \"512MiB\"")


class SplitPiece(DruidModel):
    """One object of a split, whole (``end`` None) or the lines starting in ``[start, end)``."""

    uri: str  # a file's URI, or a segment id (the druid input source)
    size: int = 0
    start: int = 0
    end: Optional[int] = None
    windows: list[Interval] = Field(default_factory=list)  # a segment's intervals to read


class InputSplit(DruidModel):
    """One sub-task's share of the input."""

    index: int
    pieces: list[SplitPiece] = Field(default_factory=list)

    @property
    def label(self) -> str:
        first = self.pieces[0] if self.pieces else None
        name = Path(first.uri).name if first else "-"
        rng = f"@{first.start}-{first.end}" if first is not None and first.end is not None else ""
        more = f"+{len(self.pieces) - 1}" if len(self.pieces) > 1 else ""
        return f"split-{self.index}:{name}{rng}{more}"


def _byte_splittable(obj: InputObject, fmt: Any) -> bool:
    if not isinstance(obj, (LocalFile, S3InputObject)) or obj.compression is not None:
        return False
    if isinstance(fmt, (JsonInputFormat, TsvInputFormat)):
        return True
    if isinstance(fmt, CsvInputFormat):
        return not (has_quote(obj.path) if isinstance(obj, LocalFile) else _s3_has_quote(obj))
    return False


def _sized(obj: InputObject) -> InputObject:
    """An S3 object named by URI has no size from a listing: ask the server (HEAD), so that it can be cut."""
    if isinstance(obj, S3InputObject) and obj.size is None:
        from druidflow.storage.s3_client import error_code

        try:
            obj.size = int(obj.client.head_object(Bucket=obj.bucket, Key=obj.key)["ContentLength"])
        except Exception as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise InputError(f"S3 object {obj.uri} does not exist") from None
            raise InputError(f"cannot read the size of {obj.uri}: {exc}") from exc
    return obj


def _s3_has_quote(obj: S3InputObject) -> bool:
    """Whether an S3 object holds a double quote: one streamed read at planning, as a quoted CSV field may hold a
    newline, which a byte range could cut."""
    with closing(obj.open_raw()) as body:
        for block in iter(lambda: body.read(8 << 20), b""):
            if b'"' in block:
                return True
    return False


def plan_splits(source: Any, fmt: Any, hint: MaxSizeSplitHint, concurrency: int = 1) -> list[InputSplit]:
    """The input's splits, in reading order (see the module docstring)."""
    if not isinstance(source, (LocalInputSource, S3InputSource, HttpInputSource)):
        return [InputSplit(index=0, pieces=[])]  # inline data, or a druid input source: one split, read whole
    objects = [_sized(o) for o in list_objects(source)]
    total = sum(o.size or 0 for o in objects)
    target = hint.max_split_size
    if concurrency > 1 and total:
        target = min(target, max(math.ceil(total / concurrency), MIN_RANGE_BYTES))
    groups: list[list[SplitPiece]] = []
    current: list[SplitPiece] = []
    current_size = 0
    for obj in objects:
        size = obj.size or 0
        if size > target and _byte_splittable(obj, fmt):
            if current:
                groups.append(current)
                current, current_size = [], 0
            n = math.ceil(size / target)
            step = math.ceil(size / n)
            for i in range(n):
                groups.append([SplitPiece(uri=obj.uri, size=size, start=i * step, end=min((i + 1) * step, size))])
            continue
        if current and (current_size + size > target or len(current) >= hint.max_num_files):
            groups.append(current)
            current, current_size = [], 0
        current.append(SplitPiece(uri=obj.uri, size=size))
        current_size += size
    if current or not groups:
        groups.append(current)
    return [InputSplit(index=i, pieces=g) for i, g in enumerate(groups)]


def narrowed_source(source: Any, split: InputSplit) -> Any:
    """The input source restricted to the split's objects (the whole source for a split without pieces)."""
    if not split.pieces:
        return source
    uris = list(dict.fromkeys(p.uri for p in split.pieces))
    if isinstance(source, LocalInputSource):
        return LocalInputSource(files=uris)
    if isinstance(source, S3InputSource):
        return source.model_copy(update={"uris": uris, "prefixes": None, "objects": None, "object_glob": None})
    if isinstance(source, HttpInputSource):
        return source.model_copy(update={"uris": uris})
    raise InputError(f"input source {source.type!r} cannot be split")


def split_objects(objects: Sequence[InputObject], split: InputSplit, fmt: Any) -> list[InputObject]:
    """The split's objects from the narrowed source's listing, ranged pieces wrapped to read only their lines."""
    if not split.pieces:
        return list(objects)
    by_uri = {o.uri: o for o in objects}
    out: list[InputObject] = []
    for piece in split.pieces:
        obj = by_uri.get(piece.uri)
        if obj is None:
            raise InputError(f"input object {piece.uri} of {split.label} is gone; it was listed when the task was planned")
        if piece.end is None:
            out.append(obj)
            continue
        obj = _sized(obj)
        if not isinstance(obj, (LocalFile, S3InputObject)) or (obj.size or 0) != piece.size:
            raise InputError(f"input object {piece.uri} changed size since the task was planned ({piece.size} → {obj.size} bytes)")
        out.append(RangedObject(obj, piece.start, piece.end, _preamble_lines(fmt)))
    return out


def _preamble_lines(fmt: Any) -> int:
    if isinstance(fmt, (CsvInputFormat, TsvInputFormat)):
        return int(fmt.skip_header_rows) + (1 if fmt.uses_header else 0)
    return 0


def _open_at(obj: LocalFile | S3InputObject, offset: int) -> BinaryIO:
    """The object's bytes from ``offset`` on: a seek for a local file, a ranged GET for an S3 object."""
    if isinstance(obj, LocalFile):
        raw = obj.open_raw()
        raw.seek(offset)
        return raw
    from druidflow.storage.s3_client import error_code

    try:
        response = obj.client.get_object(Bucket=obj.bucket, Key=obj.key, Range=f"bytes={offset}-")
    except Exception as exc:
        code = error_code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            raise InputError(f"S3 object {obj.uri} does not exist") from None
        raise InputError(f"cannot read {obj.uri} from byte {offset}: {exc}") from exc
    body: BinaryIO = response["Body"]
    return body


class RangedObject(InputObject):
    """The lines of a local file or S3 object that start in ``[start, end)``, after the object's first
    ``preamble`` lines when ``start`` is past them. ``size`` is the range's share of the object (what
    processedBytes counts)."""

    def __init__(self, inner: LocalFile | S3InputObject, start: int, end: int, preamble: int) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.start = start
        self.end = end
        self.preamble = preamble
        self.size = end - start

    @property
    def compression(self) -> Optional[str]:
        return None

    def open_raw(self) -> BinaryIO:
        # A read-only stream, not a whole IO[bytes] (which the stubs of lzma.open, a consumer, insist on).
        return _RangeStream(self.inner, self.start, self.end, self.preamble)  # type: ignore[return-value]

    def open_text_stream(self) -> tuple[Any, Any]:
        stream = _RangeStream(self.inner, self.start, self.end, self.preamble)
        return stream, stream


class _RangeStream(ReadOnlyStream):
    """A forward-only stream of a byte range cut at line boundaries (see :class:`RangedObject`): it opens the
    object one byte before the range, drops the line that byte belongs to (it started in an earlier range), and
    after the range's end reads on only to finish the line that started inside it."""

    def __init__(self, obj: LocalFile | S3InputObject, start: int, end: int, preamble: int) -> None:
        self.prefix = b""
        if start > 0 and preamble:
            head = _first_lines(obj, preamble)
            if len(head) >= start:
                raise InputError(f"the header lines of {obj.uri} are longer than the byte range starting at {start}")
            self.prefix = head
        self.pos = max(start - 1, 0)  # the object offset of the next byte of ``pending`` or ``raw``
        self.raw = _open_at(obj, self.pos)
        self.closed = False
        self.pending = b""
        self.end = end
        self.last = b"\n"  # the last byte of the range handed out
        self.done = False
        self.counted = 0  # the range's own bytes returned (the repeated header lines are not counted)
        if start > 0:
            self._drop_line()
            self.done = self.pos >= end  # no line starts inside the range

    @property
    def count(self) -> int:
        return self.counted

    def _next(self, n: int) -> bytes:
        if self.pending:
            out, self.pending = self.pending[:n], self.pending[n:]
            return out
        return self.raw.read(n)

    def _drop_line(self) -> None:
        while True:
            block = self._next(1 << 16)
            if not block:
                return
            nl = block.find(b"\n")
            if nl >= 0:
                self.pending = block[nl + 1 :] + self.pending
                self.pos += nl + 1
                return
            self.pos += len(block)

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            out, self.prefix = self.prefix, b""
            return out
        out = self._read(n)
        self.counted += len(out)
        return out

    def _read(self, n: Optional[int]) -> bytes:
        if self.done:
            return b""
        want = self.end - self.pos
        if want > 0:
            block = self._next(want if n is None or n < 0 else min(n, want))
            if not block:
                self.done = True
                return b""
            self.pos += len(block)
            self.last = block[-1:]
            return block
        # Past the range's end: finish the line that started inside it.
        self.done = True
        if self.last == b"\n":
            return b""
        rest = bytearray()
        while True:
            block = self._next(1 << 16)
            if not block:
                break
            nl = block.find(b"\n")
            if nl >= 0:
                rest += block[: nl + 1]
                break
            rest += block
        return bytes(rest)

    def _close_underlying(self) -> None:
        self.raw.close()


def _first_lines(obj: LocalFile | S3InputObject, lines: int) -> bytes:
    with closing(_open_at(obj, 0)) as raw:
        buf = b""
        while buf.count(b"\n") < lines:
            block = raw.read(1 << 16)
            if not block:
                return buf
            buf += block
    cut = -1
    for _ in range(lines):
        cut = buf.index(b"\n", cut + 1)
    return buf[: cut + 1]


def iter_split_objects(reader: Any, split: InputSplit) -> Iterator[InputObject]:
    yield from split_objects(reader.objects(), split, reader.input_format)
