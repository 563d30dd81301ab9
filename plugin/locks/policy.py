"""Which lock a task asks for: its priority (§6.6), its lock type (§6.5) and how long it waits (§6.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from druidflow.exceptions import SpecError
from druidflow.locks.lock import LockType

#: Druid's ``taskLockTimeout`` default: 300 000 ms.
DEFAULT_LOCK_TIMEOUT_SECONDS = 300.0

_DEFAULT_PRIORITIES = {
    "realtime": 75,
    "index_realtime": 75,
    "index_kafka": 75,
    "index_kinesis": 75,
    "index": 50,
    "index_parallel": 50,
    "index_hadoop": 50,
    "compact": 25,
    "merge": 25,
    "append": 25,
}


def default_priority(task_type: str) -> int:
    """Druid's default lock priority of a task type: realtime 75, batch index 50, compact/merge/append 25, else 0."""
    return _DEFAULT_PRIORITIES.get(task_type, 0)


def task_priority(task_type: str, context: Mapping[str, Any] | None = None) -> int:
    """The task's lock priority: the context's ``priority`` if set, otherwise the task type's default."""
    value = (context or {}).get("priority")
    if value is None:
        return default_priority(task_type)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError("context.priority", value, "expected an integer")
    try:
        return int(value)
    except ValueError:
        raise SpecError("context.priority", value, "expected an integer") from None


def _context_bool(context: Mapping[str, Any], key: str) -> bool:
    value = context.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SpecError(f"context.{key}", value, "expected true or false")


def lock_type_for(context: Mapping[str, Any] | None, append_mode: bool) -> LockType:
    """The time-chunk lock type a batch task asks for (Druid's ``AbstractBatchIndexTask.determineLockType``).

    ``useConcurrentLocks`` gives APPEND in append mode and REPLACE otherwise. Without it, the context's
    ``taskLockType`` is used, else SHARED if ``useSharedLock``, else EXCLUSIVE; SHARED and APPEND are honoured
    only in append mode and fall back to EXCLUSIVE elsewhere.
    """
    context = context or {}
    if _context_bool(context, "useConcurrentLocks"):
        return LockType.APPEND if append_mode else LockType.REPLACE
    requested = context.get("taskLockType")
    if requested is not None:
        lock_type = LockType.parse(requested, "context.taskLockType")
    else:
        lock_type = LockType.SHARED if _context_bool(context, "useSharedLock") else LockType.EXCLUSIVE
    if lock_type in (LockType.SHARED, LockType.APPEND) and not append_mode:
        return LockType.EXCLUSIVE
    return lock_type


def lock_timeout_seconds(context: Mapping[str, Any] | None) -> float:
    """How long ``TaskLockbox.lock`` waits: the context's ``taskLockTimeout`` (ms), default 300 s."""
    value = (context or {}).get("taskLockTimeout")
    if value is None:
        return DEFAULT_LOCK_TIMEOUT_SECONDS
    if isinstance(value, bool):
        raise SpecError("context.taskLockTimeout", value, "expected milliseconds as a non-negative integer")
    try:
        ms = int(value)
    except (TypeError, ValueError):
        raise SpecError("context.taskLockTimeout", value, "expected milliseconds as a non-negative integer") from None
    if ms < 0:
        raise SpecError("context.taskLockTimeout", value, "expected milliseconds as a non-negative integer")
    return ms / 1000.0
