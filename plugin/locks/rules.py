"""Druid's lock-granting rules (§6.2, §6.3) as pure functions over the locks that exist.

Nothing here touches a database: :func:`decide` takes the posses (locks with the tasks sharing them) that
overlap a request and says what the lockbox must do. The lockbox runs it inside the per-dataSource mutex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from druidflow.intervals import Interval
from druidflow.locks.lock import LockType


@dataclass(frozen=True)
class Posse:
    """One lock and the live tasks sharing it (Druid's TaskLockPosse). Only posses with a live task exist."""

    posse_id: str
    group_id: str
    interval: Interval
    type: LockType
    version: str
    priority: int
    revoked: bool
    tasks: frozenset[str]


@dataclass(frozen=True)
class Request:
    """A time-chunk lock request of one task."""

    task_id: str
    group_id: str
    interval: Interval
    type: LockType
    priority: int


@dataclass(frozen=True)
class Decision:
    """What to do with a request.

    * ``reuse``: the task joins (or already is in) ``posse``; if that posse is revoked, the answer is "revoked".
    * ``new``: revoke every posse in ``revoke`` (all of strictly lower priority), then create a new posse.
    * ``fail``: nothing changes; ``blockers`` are the posses in the way.
    """

    outcome: Literal["reuse", "new", "fail"]
    posse: Posse | None = None
    revoke: tuple[Posse, ...] = field(default=())
    blockers: tuple[Posse, ...] = field(default=())


def compatible(held: Posse, request_type: LockType, request_interval: Interval) -> bool:
    """Whether an overlapping lock ``held`` lets a request of this type and interval coexist with it (§6.2).

    Revoked locks are compatible with everything. SHARED coexists with SHARED, APPEND with APPEND, and an APPEND
    with a REPLACE whose interval encloses the APPEND's; every other pair conflicts.
    """
    if held.revoked:
        return True
    pair = (held.type, request_type)
    if pair in ((LockType.SHARED, LockType.SHARED), (LockType.APPEND, LockType.APPEND)):
        return True
    if pair == (LockType.REPLACE, LockType.APPEND):
        return held.interval.contains(request_interval)
    if pair == (LockType.APPEND, LockType.REPLACE):
        return request_interval.contains(held.interval)
    return False


def can_coexist(active: Sequence[Posse], request: Request) -> bool:
    """Druid's ``canLockCoexist``: pairwise compatibility, plus "at most one REPLACE" around an APPEND."""
    if not all(compatible(p, request.type, request.interval) for p in active):
        return False
    if request.type is LockType.APPEND:
        return sum(1 for p in active if p.type is LockType.REPLACE) <= 1
    return True


def reusable(posse: Posse, request: Request) -> bool:
    """Idempotent re-acquire: same groupId, same type, and the posse's interval contains the request's."""
    return (
        posse.type is request.type
        and posse.group_id == request.group_id
        and posse.interval.contains(request.interval)
    )


def supersedes(new: Posse, old: Posse) -> bool:
    """An APPEND lock that strictly encloses an older APPEND lock of the same group replaces it for a task."""
    return (
        not new.revoked
        and new.type is LockType.APPEND
        and old.type is LockType.APPEND
        and new.group_id == old.group_id
        and new.version >= old.version
        and new.interval != old.interval
        and new.interval.contains(old.interval)
    )


def _descending(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text)


def decide(request: Request, overlapping: Sequence[Posse]) -> Decision:
    """Druid's ``createOrFindLockPosse`` for time-chunk locks.

    ``overlapping`` are the existing posses (revoked ones included) of the request's dataSource whose interval
    overlaps the request's.
    """
    if not overlapping:
        return Decision("new")

    candidates = sorted(
        (p for p in overlapping if reusable(p, request)),
        key=lambda p: (_descending(p.version), p.interval.duration, p.interval.start),
    )
    if candidates:
        # Druid raises when several posses are reusable (possible after a revocation, or with several SHARED or
        # APPEND locks of one group). We answer deterministically instead: a revoked one first, so that the
        # owner learns of the revocation, else one the task is already in, else the newest (then narrowest).
        revoked = [p for p in candidates if p.revoked]
        mine = [p for p in candidates if request.task_id in p.tasks]
        return Decision("reuse", posse=(revoked or mine or candidates)[0])

    active = [p for p in overlapping if not p.revoked]
    if can_coexist(active, request):
        return Decision("new")

    incompatible = tuple(p for p in active if not compatible(p, request.type, request.interval))
    if all(p.priority < request.priority for p in incompatible):
        return Decision("new", revoke=incompatible)

    # Modern Druid lets a group take a second lock on exactly the interval it already holds (its rolling-upgrade
    # escape). Druid checks this against every overlapping posse; revoked ones block nothing, so we skip them.
    if all(p.group_id == request.group_id and p.interval == request.interval for p in active):
        return Decision("new")

    return Decision("fail", blockers=tuple(p for p in incompatible if p.priority >= request.priority))
