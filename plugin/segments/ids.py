"""Segment identifiers exactly as Druid builds them, and the deep-storage path of a segment."""

from __future__ import annotations

from functools import lru_cache

from druidflow.intervals import Interval, format_instant

# Segments of one dataSource share few distinct bounds: each is formatted once (100k ids per publish).
_iso = lru_cache(maxsize=65536)(format_instant)


def segment_id(data_source: str, interval: Interval, version: str, partition_num: int) -> str:
    """``<dataSource>_<start>_<end>_<version>[_<partitionNum>]``; partition 0 has no suffix (Druid's rule)."""
    base = f"{data_source}_{_iso(interval.start)}_{_iso(interval.end)}_{version}"
    return base if partition_num == 0 else f"{base}_{partition_num}"


def storage_dir(data_source: str, interval: Interval, version: str, partition_num: int) -> str:
    """Druid's deep-storage directory suffix ``<dataSource>/<start>_<end>/<version>/<partitionNum>``.

    Druid keeps the ISO strings as they are (colons included); so do we, so that layouts match.
    """
    return f"{data_source}/{format_instant(interval.start)}_{format_instant(interval.end)}/{version}/{partition_num}"
