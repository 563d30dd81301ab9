"""Receiving one push: decode the body, throw away events outside the window, spool the rest by segment bucket.

The body is a JSON array of objects or JSON lines (one object per line). JSON lines are parsed vectorised by the
input layer's JSON-lines parser; an array is decoded by ``json`` and re-encoded as lines. A malformed event fails
the whole request (:class:`PushError` 400 naming the line), so a client never has to guess which of its events
were kept. Each event's timestamp comes from the dataSchema's ``timestampSpec``; with the ``serverTime``
rejection policy an event more than ``windowPeriod`` away from the server's clock, or whose timestamp cannot be
parsed, is thrown away and counted (Tranquility's ``received`` minus ``sent``). The kept events are spooled in
one transaction before the answer, grouped into their segment buckets.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Engine

from druidflow.ingest.casts import parse_timestamps
from druidflow.inputs.json_lines import JsonLinesParser
from druidflow.intervals import now_ms
from druidflow.push import spool
from druidflow.push.spec import RealtimeTask

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class PushError(Exception):
    """A push refused as a whole, with the HTTP status it maps to."""

    def __init__(self, status: int, message: str, retry_after_s: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class PushResult:
    received: int
    sent: int

    @property
    def thrown_away(self) -> int:
        return self.received - self.sent


@dataclass
class PushCounters:
    """Per-dataSource counts since this process started (the spool itself is the durable record)."""

    received: int = 0
    sent: int = 0
    requests: int = 0
    refused_full: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, result: PushResult) -> None:
        with self.lock:
            self.received += result.received
            self.sent += result.sent
            self.requests += 1

    def to_json(self) -> dict[str, Any]:
        return {"received": self.received, "sent": self.sent, "thrownAway": self.received - self.sent,
                "requests": self.requests, "refusedSpoolFull": self.refused_full}


def decode_lines(body: bytes) -> list[bytes]:
    """The events of a body as JSON-lines (non-blank lines); raises :class:`PushError` 400 naming the line."""
    text = body.lstrip()
    if text.startswith(b"["):
        try:
            events = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            raise PushError(400, f"malformed JSON at line {line}: {getattr(exc, 'msg', exc)}" if line else f"malformed JSON: {exc}") from None
        if not isinstance(events, list):
            raise PushError(400, "the body is neither a JSON array of events nor JSON lines")
        bad = next((i for i, e in enumerate(events) if not isinstance(e, dict)), None)
        if bad is not None:
            raise PushError(400, f"event {bad + 1} of the array is not a JSON object")
        return [json.dumps(e, separators=(",", ":")).encode() for e in events]
    return [line for line in body.split(b"\n") if line.strip()]


def _parse(lines: list[bytes], body: bytes) -> list[pa.Table]:
    block = b"\n".join(lines) + b"\n"
    tables, failures = JsonLinesParser().parse_block(block, "push", 1)
    if failures:
        first = failures[0]
        # Line numbers of the parsed block skip blank lines; report the body's own line.
        line = _body_line(body, getattr(first, "line", None))
        raise PushError(400, f"malformed JSON at line {line}: {getattr(first, 'message', first)}")
    return tables


def _body_line(body: bytes, nonblank_line: Optional[int]) -> Optional[int]:
    if nonblank_line is None or body.lstrip().startswith(b"["):
        return nonblank_line
    seen = 0
    for i, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            seen += 1
            if seen == nonblank_line:
                return i
    return nonblank_line


def event_times(task: RealtimeTask, tables: list[pa.Table]) -> np.ndarray:
    """Each event's timestamp in epoch ms from the timestampSpec (``missingValue`` applied); -1 where unparseable."""
    spec = task.timestamp_spec
    parts = []
    for table in tables:
        if spec.column in table.column_names:
            parsed = parse_timestamps(table.column(spec.column), spec.format)
        else:
            parsed = pa.nulls(table.num_rows, pa.int64())
        if spec.missing_value_ms is not None:
            parsed = pc.fill_null(parsed, spec.missing_value_ms)
        parts.append(pc.fill_null(parsed, -1).to_numpy(zero_copy_only=False).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def split_by_bucket(task: RealtimeTask, lines: list[bytes], times: np.ndarray, keep: np.ndarray) -> list[spool.SpoolPiece]:
    """The kept events grouped into their segment buckets, as JSON lines."""
    if not keep.any():
        return []
    gran = task.segment_granularity
    starts = np.full(len(times), -1, dtype=np.int64)
    starts[keep] = np.asarray(gran.truncate(times[keep]), dtype=np.int64)
    pieces = []
    for start in np.unique(starts[keep]):
        mask = starts == start
        chosen = list(itertools.compress(lines, mask.tolist()))
        pieces.append(spool.SpoolPiece(bucket=gran.bucket(int(start)), events=len(chosen), payload=b"\n".join(chosen)))
    return pieces


def window_mask(task: RealtimeTask, times: np.ndarray, now: int) -> np.ndarray:
    """Which events the rejection policy accepts (always False for an unparseable timestamp)."""
    parsed = times >= 0
    if task.tuning.rejection_policy.type == "none":
        return parsed
    window = task.tuning.window_ms
    return parsed & (times >= now - window) & (times <= now + window)


def retry_after(task: RealtimeTask, engine: Engine, now: int) -> int:
    """Seconds until the oldest spooled bucket can be handed off (1 to 60): when the spool should have room."""
    rows = spool.summary(engine, task.data_source)
    oldest = rows[0].oldest_bucket if rows and rows[0].oldest_bucket else None
    if oldest is None:
        return 1
    due = oldest.end + task.tuning.window_ms + task.tuning.handoff_delay_ms
    return int(min(60, max(1, (due - now + 999) // 1000)))


def receive(task: RealtimeTask, body: bytes, engine: Engine, *, clock: Callable[[], int] = now_ms) -> PushResult:
    """Decode, filter and durably spool one push; return Tranquility's received/sent counts."""
    lines = decode_lines(body)
    if not lines:
        return PushResult(0, 0)
    tables = _parse(lines, body)
    times = event_times(task, tables)
    if len(times) != len(lines):  # a line holding several objects; the parser split it
        raise PushError(400, "each line must hold exactly one JSON object")
    now = clock()
    keep = window_mask(task, times, now)
    pieces = split_by_bucket(task, lines, times, keep)
    capacity = task.spec.io_config.firehose.buffer_size
    if int(keep.sum()) > capacity:
        # Retrying could never help: this is too big, not too early.
        raise PushError(413, f"{int(keep.sum())} events in one push are more than the spool holds (bufferSize {capacity}); send smaller batches")
    try:
        spool.append(engine, task.data_source, pieces, capacity)
    except spool.SpoolFullError as exc:
        raise PushError(429, str(exc), retry_after_s=retry_after(task, engine, now)) from None
    return PushResult(received=len(lines), sent=int(keep.sum()))
