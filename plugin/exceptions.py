"""Every error Druidflow raises on purpose.

Two families matter to callers: a :class:`RetryableError` may succeed if the same step runs again later
(a lock held by an equal-or-higher priority task, a transient storage failure, a lost publish race);
a :class:`TerminalError` will fail again however often it is retried (a bad spec, a revoked lock, input
that changed under a compaction). The Airflow layer maps the first to a retry and the second to
``AirflowFailException``; nothing below that layer knows about Airflow.
"""

from __future__ import annotations

from typing import Any


class DruidflowError(Exception):
    """Base class of every Druidflow error."""


class RetryableError(DruidflowError):
    """The step may succeed if it is run again later."""


class TerminalError(DruidflowError):
    """The step will fail again however often it is retried."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class SpecError(TerminalError, ValueError):
    """A task spec, or a part of one, is invalid. Names the field path and the bad value."""

    def __init__(self, path: str, value: Any, reason: str) -> None:
        self.path = path
        self.value = value
        self.reason = reason
        super().__init__(f"{path}: {reason} (got {_show(value)})" if path else f"{reason} (got {_show(value)})")


class InputError(TerminalError):
    """Input data could not be read at all (missing file, unreachable URI, unsupported format)."""


class ParseExceptionLimitExceeded(TerminalError):
    """More rows failed to parse than ``tuningConfig.maxParseExceptions`` allows."""


class LockUnavailableError(RetryableError):
    """A lock is held by a task of equal or higher priority; try again later."""


class LockRevokedError(TerminalError):
    """A lock this task relied on was revoked by a higher-priority task; nothing of the task may be published."""

    #: What the task had done when it stopped (a kill's partial report), when it reports one.
    report: Any = None


class LockNotHeldError(TerminalError):
    """The task does not hold a lock covering what it tries to publish or delete."""


class PublishConflictError(RetryableError):
    """The metadata changed under a publish (a race); the publish did not commit and may be retried."""


class SegmentConflictError(TerminalError):
    """A publish can never succeed: segment ids this task names are already published with a different payload
    (a deterministic conflict, unlike the race :class:`PublishConflictError` reports)."""


class PublishStateUnknownError(DruidflowError):
    """It is unknown whether a publish committed; pushed files must be left alone."""


class InputChangedError(TerminalError):
    """The segments a task was planned on changed before it ran (compaction's segment list or hash check)."""


class NoSegmentsError(TerminalError):
    """The interval holds no segment to work on."""


class QueryError(TerminalError):
    """A SQL query over the visible segments is not valid or names what does not exist."""


class StorageError(RetryableError):
    """Deep storage failed in a way that may be transient."""


class SegmentFileExistsError(TerminalError):
    """A push found a file already at its deep-storage key: published files are write-once, never replaced."""


class SegmentNotFoundError(TerminalError):
    """A segment's file is not where its loadSpec says."""


class MetadataError(DruidflowError):
    """The metadata store is in a state Druidflow cannot work with (schema missing or too old)."""


class MetadataConfigError(MetadataError, TerminalError):
    """The metadata DB setting cannot work as given (not a URL, a database driver that is not installed)."""


class MetadataUnavailableError(MetadataError, RetryableError):
    """The metadata DB cannot be reached or opened now (server down, database missing, SQLite file unopenable)."""


class MissingExtraError(TerminalError):
    """A feature needs an optional dependency that is not installed; the message names the extra to install."""


class TimelineConflictError(TerminalError):
    """Two partition sets share a version but have overlapping, unequal intervals, which no timeline can hold."""


class SegmentAllocationError(TerminalError):
    """An appending task cannot be given a new segment id in a time chunk (Druid's segmentAllocate returning null)."""


class SegmentBeingKilledError(TerminalError):
    """A segment claimed by a kill can no longer be marked used."""
