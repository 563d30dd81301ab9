"""Druid's task report: ``{"ingestionStatsAndErrors": {"type": ..., "taskId": ..., "payload": {...}}}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from druidflow.ingest.stats import RowStats, druid_reasons


def ingestion_report(
    task_id: str,
    *,
    state: str,
    determine: Optional[tuple[RowStats, list[dict[str, Any]]]] = None,
    build: Optional[tuple[RowStats, list[dict[str, Any]]]] = None,
    segments_published: int = 0,
    segments_read: int = 0,
    error: Optional[str] = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The report in Druid's shape: ``rowStats`` and ``unparseableEvents`` per phase, ``errorMsg``, counts; plus
    ``warnings``: the spec keys accepted but ignored, by full path (unknown keys, fields Druid's precedence rules
    drop), which Druid only logs."""
    det_stats, det_events = determine or (RowStats(), [])
    build_stats, build_events = build or (RowStats(), [])
    return {
        "ingestionStatsAndErrors": {
            "type": "ingestionStatsAndErrors",
            "taskId": task_id,
            "payload": {
                "ingestionState": state,
                "unparseableEvents": {"determinePartitions": det_events, "buildSegments": build_events},
                "rowStats": {"determinePartitions": _row_stats(det_stats), "buildSegments": _row_stats(build_stats)},
                "errorMsg": error,
                "segmentAvailabilityConfirmed": False,
                "segmentAvailabilityWaitTimeMs": 0,
                # Druid's Map<String, Long>: records processed per phase (what rowStats counts as processed).
                "recordsProcessed": {
                    "determinePartitions": det_stats.processed + det_stats.processed_with_error,
                    "buildSegments": build_stats.processed + build_stats.processed_with_error,
                },
                "segmentsRead": segments_read,
                "segmentsPublished": segments_published,
                "warnings": list(warnings),
            },
        }
    }


def _row_stats(stats: RowStats) -> dict[str, Any]:
    out = stats.model_dump()
    out["thrownAwayByReason"] = druid_reasons(stats.thrown_away_by_reason)
    return out


def no_valid_rows_message(stats: RowStats, published: int) -> Optional[str]:
    """Druid's status message for a task that read rows but kept none (``No valid rows ... All rows may have invalid
    timestamps or have been filtered out.``): the task succeeds, as in Druid, but says so in ``errorMsg``."""
    if published or stats.processed or stats.processed_with_error or not (stats.unparseable or stats.thrown_away):
        return None
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(druid_reasons(stats.thrown_away_by_reason).items()))
    return (
        f"No valid rows: {stats.unparseable} unparseable and {stats.thrown_away} thrown away"
        f"{f' ({reasons})' if reasons else ''}, none kept, nothing published. All rows may have invalid timestamps "
        "or have been filtered out; check the timestampSpec, the intervals and the transformSpec filter."
    )
