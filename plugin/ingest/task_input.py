"""The input of an ingestion task as one stream of batches, whatever its input source.

Files (local, inline, http, s3) are read in the task's ``inputFormat``; a ``druid`` source re-reads segments
(:class:`~druidflow.ingest.segment_source.SegmentInputReader`); a ``combining`` source reads each delegate that way,
one after another, as Druid's ``CombiningInputSource`` (and the classic combining firehose) does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Optional

import pyarrow as pa

from druidflow.ingest.segment_source import SegmentInputReader
from druidflow.inputs import open_input
from druidflow.inputs.batch import InputBatch
from druidflow.specs.io import CombiningInputSource


class CombiningReader:
    """The batches of every delegate reader in turn."""

    def __init__(self, readers: Sequence[Any]) -> None:
        self.readers = list(readers)

    def batches(self) -> Iterator[InputBatch]:
        for reader in self.readers:
            yield from reader.batches()


def open_task_input(
    source: Any,
    input_format: Any,
    *,
    store: Any,
    storage: Any,
    timestamp_column: str,
    column_types: Optional[Mapping[str, pa.DataType]] = None,
    text_fields: Optional[Collection[str]] = None,
) -> Any:
    """A reader (``.batches()``) of ``source``: files in ``input_format``, segments of ``druid`` sources, and the
    delegates of a ``combining`` source in order."""
    if isinstance(source, CombiningInputSource):
        return CombiningReader(
            [
                open_task_input(
                    d,
                    input_format,
                    store=store,
                    storage=storage,
                    timestamp_column=timestamp_column,
                    column_types=column_types,
                    text_fields=text_fields,
                )
                for d in source.flat_delegates()
            ]
        )
    if source.type == "druid":
        return SegmentInputReader(source, store, storage, timestamp_column=timestamp_column)
    return open_input(source, input_format, column_types=column_types, text_fields=text_fields)


def file_sources(source: Any) -> list[Any]:
    """The delegates of ``source`` (itself when not combining) that are read as files."""
    delegates = source.flat_delegates() if isinstance(source, CombiningInputSource) else [source]
    return [d for d in delegates if d.type != "druid"]


def druid_sources(source: Any) -> list[Any]:
    """The ``druid`` delegates of ``source`` (itself when it is one)."""
    delegates = source.flat_delegates() if isinstance(source, CombiningInputSource) else [source]
    return [d for d in delegates if d.type == "druid"]
