"""Fixtures for the lockbox tests: a controllable clock and a lockbox on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from druidflow.intervals import MS_DAY, Interval, parse_instant
from druidflow.locks import TaskLockbox

T0 = parse_instant("2024-06-01T00:00:00.000Z")
DAY0 = parse_instant("2024-01-01")
LEASE_S = 60


def day(a: int, b: int) -> str:
    """The interval from day ``a`` to day ``b`` of January 2024, as Druid writes it."""
    return str(Interval(DAY0 + a * MS_DAY, DAY0 + b * MS_DAY))


class FakeClock:
    """Epoch milliseconds that only move when a test moves them (backwards too)."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def box(db_url: str, clock: FakeClock) -> Iterator[TaskLockbox]:
    lockbox = TaskLockbox(db_url, lease_seconds=LEASE_S, clock=clock)
    lockbox.create_tables()
    yield lockbox
    lockbox.engine.dispose()
