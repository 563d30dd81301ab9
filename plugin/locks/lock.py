"""What a task lock is: its type, the lock a task holds, and the answer to a lock request."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval, format_instant

#: The version of every APPEND lock: appended segments take the version of the chunk they land in.
APPEND_VERSION = format_instant(0)


class LockType(str, Enum):
    """Druid's TaskLockType. SHARED and EXCLUSIVE are the classic pair; APPEND and REPLACE the concurrent one."""

    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    REPLACE = "REPLACE"
    APPEND = "APPEND"

    @classmethod
    def parse(cls, value: Any, path: str = "lock_type") -> LockType:
        """Accept a LockType or its name in any case; anything else is a :class:`SpecError` naming ``path``."""
        if isinstance(value, LockType):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                pass
        raise SpecError(path, value, f"expected one of {', '.join(t.value for t in cls)}")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TaskLock:
    """One task's membership of one lock (Druid's TimeChunkLock plus the task id and its lease).

    Tasks of one ``group_id`` that share a lock (Druid's TaskLockPosse) share ``posse_id``, ``version``,
    ``type``, ``interval``, ``priority`` and ``revoked``; each has its own lease.
    """

    task_id: str
    group_id: str
    datasource: str
    interval: Interval
    type: LockType
    version: str
    priority: int
    revoked: bool = False
    lease_expires_ms: int = 0
    #: True once the lease ran out (recorded by the lockbox, or past ``lease_expires_ms`` when read).
    expired: bool = False
    posse_id: str = ""

    @property
    def lease_expires(self) -> str:
        return format_instant(self.lease_expires_ms)

    @property
    def active(self) -> bool:
        """Neither revoked nor expired: this membership blocks others and lets the task publish."""
        return not self.revoked and not self.expired

    @property
    def state(self) -> str:
        """``revoked``, ``expired`` or ``active`` (revoked wins: it is what the owner will be told)."""
        return "revoked" if self.revoked else "expired" if self.expired else "active"

    def __str__(self) -> str:
        return (
            f"{self.type.value} lock on {self.datasource} {self.interval} version {self.version} "
            f"(task {self.task_id}, group {self.group_id}, priority {self.priority}, {self.state})"
        )

    def to_json(self) -> dict[str, Any]:
        """Druid's lock payload (``granularity``/``type``/``groupId``/...) plus the task id, state and lease."""
        return {
            "taskId": self.task_id,
            "granularity": "timeChunk",
            "type": self.type.value,
            "groupId": self.group_id,
            "dataSource": self.datasource,
            "interval": str(self.interval),
            "version": self.version,
            "priority": self.priority,
            "revoked": self.revoked,
            "expired": self.expired,
            "state": self.state,
            "leaseExpires": self.lease_expires,
        }


@dataclass(frozen=True)
class LockResult:
    """The answer to a lock request (Druid's LockResult).

    * ``acquired``: the task holds ``lock``.
    * ``revoked``: the lock the request maps to was revoked by a higher-priority task; ``lock`` shows it. The
      task must give up (Druid fails it); asking again will keep answering revoked.
    * neither: the interval is held by tasks the request cannot preempt; ``conflicts`` lists their locks.
    """

    acquired: bool
    revoked: bool = False
    lock: TaskLock | None = None
    conflicts: tuple[TaskLock, ...] = field(default=())

    @classmethod
    def ok(cls, lock: TaskLock) -> LockResult:
        return cls(True, False, lock)

    @classmethod
    def revoked_lock(cls, lock: TaskLock) -> LockResult:
        return cls(False, True, lock)

    @classmethod
    def fail(cls, conflicts: tuple[TaskLock, ...] = ()) -> LockResult:
        return cls(False, False, None, conflicts)

    def __bool__(self) -> bool:
        return self.acquired
