"""Druid's row counters per phase and the parse-exception budget (``maxParseExceptions``)."""

from __future__ import annotations

from collections import deque
from typing import Any, Optional

from pydantic import Field

from druidflow.exceptions import ParseExceptionLimitExceeded
from druidflow.intervals import format_instant, now_ms
from druidflow.specs.base import DruidModel

UNLIMITED = 2**31 - 1


class RowStats(DruidModel):
    """One phase's counters, as in Druid's ``rowStats`` (``determinePartitions`` or ``buildSegments``)."""

    processed: int = 0
    processed_with_error: int = 0
    thrown_away: int = 0
    unparseable: int = 0
    processed_bytes: int = 0
    thrown_away_by_reason: dict[str, int] = Field(default_factory=dict)

    def plus(self, other: RowStats) -> RowStats:
        reasons = dict(self.thrown_away_by_reason)
        for k, v in other.thrown_away_by_reason.items():
            reasons[k] = reasons.get(k, 0) + v
        return RowStats(
            processed=self.processed + other.processed,
            processed_with_error=self.processed_with_error + other.processed_with_error,
            thrown_away=self.thrown_away + other.thrown_away,
            unparseable=self.unparseable + other.unparseable,
            processed_bytes=self.processed_bytes + other.processed_bytes,
            thrown_away_by_reason=reasons,
        )


#: Druidflow's internal thrown-away reasons -> Druid's (``InputRowFilterResult.getReason()``). Druid's batch row filter
#: is a predicate over the task's intervals, so rows outside them count as ``filtered``, as transformSpec rejects do.
DRUID_REASONS = {"outsideIntervals": "filtered", "filtered": "filtered", "nullOrEmptyRecord": "null"}


def druid_reasons(reasons: dict[str, int]) -> dict[str, int]:
    """``thrownAwayByReason`` under Druid's reason names (``null``, ``filtered``, ``beforeMinMessageTime``, ...)."""
    out: dict[str, int] = {}
    for key, count in reasons.items():
        name = DRUID_REASONS.get(key, key)
        out[name] = out.get(name, 0) + count
    return {k: v for k, v in out.items() if v}


class ParseExceptionReport(DruidModel):
    """One saved parse exception, in the shape of Druid's ``ParseExceptionReport`` (``input``, ``errorType``,
    ``details``, ``timeOfExceptionMillis``), plus ``timestamp``, the same instant as ISO text."""

    timestamp: str
    input: Optional[str] = None
    error_type: str  # "unparseable" (whole row dropped) or "processedWithError" (some field failed)
    details: list[str] = Field(default_factory=list)
    time_of_exception_millis: int = 0


class ParseExceptionHandler:
    """Counts failures for one phase, keeps the most recent ``maxSavedParseExceptions`` and enforces the budget.

    Druid fails the task once ``unparseable + processedWithError`` *exceeds* ``maxParseExceptions``.
    """

    def __init__(self, *, max_parse_exceptions: int = UNLIMITED, max_saved: int = 0, log: Any = None) -> None:
        self.max_parse_exceptions = max_parse_exceptions
        self.saved: deque[ParseExceptionReport] = deque(maxlen=max(max_saved, 0) or None)
        self.keep = max_saved > 0
        self.failures = 0
        self.log = log

    def record(self, count: int, samples: list[tuple[Optional[str], str]], error_type: str) -> None:
        """Count ``count`` failed rows; ``samples`` are (raw input, message) pairs for some of them."""
        if count <= 0:
            return
        self.failures += count
        if self.log is not None:
            for raw, msg in samples[:10]:
                self.log.warning("parse exception (%s): %s; input: %s", error_type, msg, (raw or "")[:200])
        if self.keep:
            millis = now_ms()
            stamp = format_instant(millis)
            for raw, msg in samples[-(self.saved.maxlen or len(samples)) :]:
                self.saved.append(
                    ParseExceptionReport(
                        timestamp=stamp,
                        input=(raw or "")[:1024] or None,
                        error_type=error_type,
                        details=[msg],
                        time_of_exception_millis=millis,
                    )
                )
        if self.failures > self.max_parse_exceptions:
            last = samples[-1][1] if samples else "row failed to parse"
            raise ParseExceptionLimitExceeded(
                f"{self.failures} rows failed to parse, more than tuningConfig.maxParseExceptions="
                f"{self.max_parse_exceptions}; last error: {last}. Fix the input, or raise maxParseExceptions "
                "to skip bad rows."
            )

    def saved_reports(self) -> list[dict[str, Any]]:
        return [r.model_dump() for r in self.saved]
