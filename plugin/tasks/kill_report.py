"""What a ``kill`` task reports: counts, the segments and files deleted (or, in a dry run, to delete), and why
the segments it left alone were skipped."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from druidflow.intervals import Interval
from druidflow.specs.base import DruidModel

#: At most this many segment ids and file paths are listed in a report (the counts are always exact).
MAX_LISTED = 10_000

SKIP_REASONS = {
    "used": "still used (mark it unused first)",
    "partlyOutsideInterval": "unused, but its interval is not entirely inside the kill interval",
    "versionNotSelected": "unused, but not one of the requested versions",
    "markedUnusedAfterMaxUsedStatusLastUpdatedTime": "marked unused after maxUsedStatusLastUpdatedTime",
    "withinBufferPeriod": "marked unused less than the buffer period ago (can still be marked used again)",
    "beyondLimit": "eligible, but the limit (number of batches) was reached",
    "lockRevoked": "eligible, but the kill's lock was revoked by a higher-priority task before its batch",
    "intervalLocked": "eligible, but its interval is locked by another task (skipLockedIntervals)",
    "fileSharedWithUsedSegment": "row deleted, file kept: a used segment still points at it",
    "fileSharedWithOtherSegment": "row deleted, file kept: an unused segment outside this batch still points at it",
}


class SkipEntry(DruidModel):
    """Segments (or files) a kill left alone for one reason."""

    segments: int = 0
    files: int = 0
    bytes: int = 0
    examples: list[str] = Field(default_factory=list)
    why: str = ""


# A dry run deleted nothing: its counts must not read as if it had.
_DRY_RUN_KEYS = {
    "numSegmentsKilled": "numSegmentsToKill",
    "numBatchesProcessed": "numBatchesToProcess",
    "bytesKilled": "bytesToKill",
    "numFilesDeleted": "numFilesToDelete",
}


class KillReport(DruidModel):
    """What a kill did, or in a dry run (``dryRun``) would do.

    ``segments``/``files`` list what was (would be) deleted, at most :data:`MAX_LISTED` each
    (``listingTruncated`` says when more); counts are exact. ``resumed`` maps a dead kill's task id to the rows
    of it this kill finished. ``skipped`` maps a reason to what it kept out.
    """

    task_id: str
    data_source: str
    interval: Interval
    status: str  # SUCCESS | FAILED | DRY_RUN
    dry_run: bool = False
    num_segments_killed: int = 0
    num_batches_processed: int = 0
    num_segments_marked_as_unused: int = 0
    bytes_killed: int = 0
    num_files_deleted: int = 0
    segments: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    listing_truncated: bool = False
    locked_intervals: list[Interval] = Field(default_factory=list)
    resumed: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, SkipEntry] = Field(default_factory=dict)
    #: Dry run: tasks whose locks a real run could neither share nor preempt right now.
    blocked_by: list[str] = Field(default_factory=list)
    error: Optional[str] = None

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        """As JSON; a dry run names its counts for what it would do (``numSegmentsToKill``, not ...Killed)."""
        data = super().model_dump(**kwargs)
        if self.dry_run and kwargs.get("by_alias", True):
            data = {_DRY_RUN_KEYS.get(k, k): v for k, v in data.items()}
        return data

    def druid_report(self) -> dict[str, Any]:
        """Druid's kill task report shape, ``{"killUnusedSegments": {"type", "taskId", "payload"}}``."""
        return {"killUnusedSegments": {"type": "killUnusedSegments", "taskId": self.task_id, "payload": self.model_dump()}}

    def summary(self) -> str:
        """One line for logs and the CLI."""
        verb = "would delete" if self.dry_run else "deleted"
        text = (
            f"kill {self.task_id}: {verb} {self.num_segments_killed} segment(s), {self.bytes_killed} bytes, "
            f"{self.num_files_deleted} file(s) in {self.num_batches_processed} batch(es) of {self.data_source} "
            f"{self.interval}"
        )
        if self.skipped:
            text += "; skipped: " + ", ".join(
                f"{k} {v.segments or v.files}" for k, v in sorted(self.skipped.items())
            )
        return text
