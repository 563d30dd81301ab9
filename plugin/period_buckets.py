"""Druid's ``PeriodGranularity`` bucketing on arrays: a period in a time zone, counted from an origin.

:class:`PeriodBuckets` floors int64 epoch milliseconds to the buckets of one period and steps instants by whole
periods, following Joda-Time as :mod:`druidflow.granularity` describes. Calendar and time-zone work is done on small
lookup tables (one entry per day, month or bucket in the data's range) and gathered back per row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from druidflow.calendar_arrays import (
    add_months_scalar,
    add_units_local,
    bucket_of_days,
    bucket_start_days,
    day_table,
    floor_div,
    floor_to,
    gather,
    units_between,
)
from druidflow.exceptions import SpecError
from druidflow.intervals import MS_DAY, MS_HOUR, MS_MINUTE, MS_SECOND, MS_WEEK, Period, civil_from_days
from druidflow.timezones import TimeZone

_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds", "millis")
_TIME_UNIT_MS = {"hours": MS_HOUR, "minutes": MS_MINUTE, "seconds": MS_SECOND, "millis": 1}
_MAX_COMPOUND_STEPS = 2_000_000


def period_fields(period: Period) -> list[tuple[str, int]]:
    """The period's non-zero fields, largest unit first."""
    return [(f, getattr(period, f)) for f in _FIELDS if getattr(period, f)]


@dataclass(frozen=True)
class PeriodBuckets:
    """Buckets of ``period`` in ``zone``; ``origin`` None counts from 1970-01-01T00:00 local time (Joda's default).

    ``spec`` is the granularity's JSON, named in the error when a compound period needs too many steps.
    """

    period: Period
    zone: TimeZone
    origin: int | None
    spec: Any = dataclasses.field(default=None, compare=False)

    @cached_property
    def origin_ms(self) -> int:
        if self.origin is not None:
            return self.origin
        return self.zone.from_local_scalar(0)  # 1970-01-01T00:00 in the zone (Joda's withZoneRetainFields)

    def floor(self, t: np.ndarray) -> np.ndarray:
        """Bucket starts of a non-empty int64 array, in a new array."""
        fields = period_fields(self.period)
        if len(fields) > 1:
            return self._truncate_compound(t)
        unit, n = fields[0]
        if unit in _TIME_UNIT_MS:
            size = n * _TIME_UNIT_MS[unit]
            if unit == "millis" and n == 1:
                return t.copy()
            if n == 1 and self.origin is None:
                # Joda floors the local wall-clock field, keeping the instant's own offset.
                return self.floor_local(t, size)
            return floor_to(t, size, self.origin_ms)
        if n == 1 and self.origin is None:
            if unit in ("days", "weeks") and self.zone.is_fixed:
                return self.floor_local(t, MS_DAY if unit == "days" else MS_WEEK, -3 * MS_DAY if unit == "weeks" else 0)
            return self._floor_calendar_field(t, unit)
        return self._floor_calendar_multiple(t, unit, n)

    def offsets(self, t: np.ndarray) -> np.ndarray | int:
        """The zone's UTC offset of each instant; one int for a fixed-offset zone."""
        fixed = self.zone.fixed_offset_ms
        return fixed if fixed is not None else self.zone.offsets(t)

    def floor_local(self, t: np.ndarray, size: int, local_origin: int = 0) -> np.ndarray:
        """Floor to ``size`` in local time using each instant's own offset (exact for fixed-length local fields)."""
        off = self.offsets(t)
        if isinstance(off, int):
            return floor_to(t, size, local_origin - off)
        out = floor_to(t + off, size, local_origin)
        out -= off
        return out

    def _floor_calendar_field(self, t: np.ndarray, unit: str) -> np.ndarray:
        """Single-unit day/week/month/year with no origin: floor the local field (Joda's ``roundFloor``).

        The bucket start depends only on the local day, so it is computed once per day of the batch's range and
        gathered back per row.
        """
        zone = self.zone
        off = self.offsets(t)
        days, idx = day_table(floor_div(t + off, MS_DAY))
        start_local = bucket_start_days(bucket_of_days(days, unit), unit) * MS_DAY
        if isinstance(off, int):  # a fixed-offset zone
            out = gather(start_local, idx)
            out -= off
            return out
        starts, alternative = zone._from_local(start_local)
        out = gather(starts, idx)
        if alternative is not None:
            # Joda keeps the floored instant's own offset when the local start exists twice and that offset is valid.
            keep = gather(alternative, idx) == off
            out[keep] = gather(start_local, idx)[keep] - off[keep]
        return out

    def _floor_calendar_multiple(self, t: np.ndarray, unit: str, n: int) -> np.ndarray:
        """Multiples of days/weeks/months/years counted in local calendar time from the origin (Druid's
        ``getDifference`` then ``add`` on the zoned chronology, stepping back a period when that overshoots)."""
        zone = self.zone
        origin = self.origin_ms
        lo = origin + zone.offset(origin)
        local = t + self.offsets(t)
        lo_days, lo_rem = divmod(lo, MS_DAY)
        if lo_rem == 0 and (unit in ("days", "weeks") or civil_from_days(lo_days)[2] == 1):
            # The origin is a local midnight (on the 1st, for months): the bucket depends only on the local day.
            days, idx = day_table(floor_div(local, MS_DAY))
            count = units_between(lo, days * MS_DAY, unit)
        else:
            idx = None
            count = units_between(lo, local, unit)
        k = floor_div(count, n) * n
        current = zone.from_local(add_units_local(lo, k, unit))
        previous = zone.from_local(add_units_local(lo, k - n, unit))
        out = gather(current, idx)
        back = t < out
        if back.any():
            out[back] = gather(previous, idx)[back]
        return out

    def _truncate_compound(self, t: np.ndarray) -> np.ndarray:
        p = self.period
        calendar = p.years or p.months
        days = p.weeks or p.days
        if not calendar and (not days or self.zone.is_fixed):
            # Druid's truncateMillisPeriod: fixed-length periods floor on the origin.
            return floor_to(t, p.fixed_ms, self.origin_ms)
        bounds = self._compound_boundaries(int(t.min()), int(t.max()))
        return bounds[np.searchsorted(bounds, t, side="right") - 1]

    def _compound_boundaries(self, lo: int, hi: int) -> np.ndarray:
        """Bucket starts of a calendar compound period covering [lo, hi], stepping from the origin as Druid does."""
        cur = self.origin_ms
        steps = 0
        while cur > lo:
            cur = self.add(cur, -1)
            steps += 1
            self._check_steps(steps)
        while True:
            nxt = self.add(cur, 1)
            if nxt > lo:
                break
            cur = nxt
            steps += 1
            self._check_steps(steps)
        out = [cur]
        while out[-1] <= hi:
            out.append(self.add(out[-1], 1))
            steps += 1
            self._check_steps(steps)
        return np.array(out, dtype=np.int64)

    def _check_steps(self, steps: int) -> None:
        if steps > _MAX_COMPOUND_STEPS:
            raise SpecError("granularity", self.spec, f"more than {_MAX_COMPOUND_STEPS} buckets between origin and data")

    def add(self, ms: int, scalar: int) -> int:
        """Joda's ``chronology.add(period, ms, scalar)``: each field in turn, calendar fields in local time."""
        zone = self.zone
        for field, value in period_fields(self.period):
            amount = value * scalar
            if field in _TIME_UNIT_MS:
                ms += amount * _TIME_UNIT_MS[field]
                continue
            local = ms + zone.offset(ms)
            if field == "days":
                local += amount * MS_DAY
            elif field == "weeks":
                local += amount * MS_WEEK
            else:
                local = add_months_scalar(local, amount * (12 if field == "years" else 1))
            ms = zone.from_local_scalar(local)
        return ms
