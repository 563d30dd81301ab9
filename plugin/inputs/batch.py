"""What an input reader hands out: Arrow batches, with the rows it could not parse alongside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, Union

import pyarrow as pa

RAW_TEXT_LIMIT = 1024


def truncate_raw(raw: Union[str, bytes], limit: int = RAW_TEXT_LIMIT) -> str:
    """Raw input as text for reports: decoded leniently, cut to ``limit`` characters."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ParseFailure:
    """One input row that could not be parsed: its raw text (truncated), why, and where it was."""

    raw: str
    message: str
    source: str
    line: Optional[int] = None

    @property
    def where(self) -> str:
        """``<file or uri>:<line>`` when the line is known, else the file or uri."""
        return f"{self.source}:{self.line}" if self.line is not None else self.source


@dataclass
class InputBatch:
    """A batch of parsed rows and the rows of the same stretch of input that failed to parse.

    ``data`` may have zero rows (a stretch where every row failed). ``bytes_read`` is the number of input bytes
    consumed for this batch, uncompressed (what the format parsed, as Druid's ``processedBytes`` counts); over all
    batches of a file they add up to the file's uncompressed size. ``source`` names the file or URI. ``times``, when
    set, is each row's time already known (epoch ms: re-read segments), used instead of the ``timestampSpec``.
    """

    data: pa.RecordBatch
    unparseable: list[ParseFailure] = field(default_factory=list)
    bytes_read: int = 0
    source: str = ""
    times: Optional[pa.Array] = None
    #: root fields that schemaless dimension discovery must skip although their Arrow type looks flat
    non_flat_fields: frozenset[str] = frozenset()
    #: for double columns read from JSON: which rows' numbers were written as integers (Druid reads those as
    #: longs, so their text is ``"1"``, not ``"1.0"``), one boolean array per column; see json_numbers
    integral_numbers: Mapping[str, pa.Array] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return self.data.num_rows
