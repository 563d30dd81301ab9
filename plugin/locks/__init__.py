"""Druid's TaskLockbox: prioritised time-chunk locks with preemption and leases, kept in the metadata DB."""

from __future__ import annotations

from druidflow.locks.lock import APPEND_VERSION, LockResult, LockType, TaskLock
from druidflow.locks.lockbox import DEFAULT_LEASE_SECONDS, CriticalSection, TaskLockbox
from druidflow.locks.policy import (
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    default_priority,
    lock_timeout_seconds,
    lock_type_for,
    task_priority,
)

__all__ = [
    "APPEND_VERSION",
    "CriticalSection",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_LOCK_TIMEOUT_SECONDS",
    "LockResult",
    "LockType",
    "TaskLock",
    "TaskLockbox",
    "default_priority",
    "lock_timeout_seconds",
    "lock_type_for",
    "task_priority",
]
