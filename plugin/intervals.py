"""Instants, ISO-8601 periods and half-open intervals, in epoch milliseconds (UTC).

Druid renders every instant as Joda does in UTC: ``2024-01-01T00:00:00.000Z``. Those strings have a fixed
width for years 0000-9999, so they sort like the instants they name; segment versions and ids rely on that.
The parser and formatter here do civil-calendar arithmetic on integers so that they also cover the far
past and future that Druid's ``ETERNITY`` uses, where :mod:`datetime` cannot go.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from druidflow.exceptions import SpecError

MS_SECOND = 1000
MS_MINUTE = 60 * MS_SECOND
MS_HOUR = 60 * MS_MINUTE
MS_DAY = 24 * MS_HOUR
MS_WEEK = 7 * MS_DAY



def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of the proleptic Gregorian date y-m-d (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400  # Python's // already floors (Hinnant's C++ needs the y - 399 for truncating division)
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    """The (year, month, day) of ``z`` days since 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def days_in_month(y: int, m: int) -> int:
    if m == 12:
        return 31
    return days_from_civil(y, m + 1, 1) - days_from_civil(y, m, 1)


_INSTANT = re.compile(
    r"^(?P<y>[+-]?\d{4,9})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:[T ](?P<h>\d{2})(?::?(?P<mi>\d{2})(?::?(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?)?"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_instant(text: str, path: str = "") -> int:
    """Parse an ISO-8601 instant (date, optional time, optional offset; UTC when none) into epoch ms."""
    if not isinstance(text, str):
        raise SpecError(path, text, "expected an ISO-8601 timestamp string")
    m = _INSTANT.match(text.strip())
    if not m:
        raise SpecError(path, text, "not an ISO-8601 timestamp")
    y = int(m["y"])
    mo = int(m["mo"] or 1)
    d = int(m["d"] or 1)
    h, mi, s = int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0)
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo) and h <= 24 and mi < 60 and s < 60):
        raise SpecError(path, text, "not a valid calendar date and time")
    frac = m["f"] or ""
    ms = int((frac + "000")[:3]) if frac else 0
    total = days_from_civil(y, mo, d) * MS_DAY + h * MS_HOUR + mi * MS_MINUTE + s * MS_SECOND + ms
    tz = m["tz"]
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * MS_HOUR + (int(digits[2:4]) * MS_MINUTE if len(digits) > 2 else 0)
        total -= sign * offset
    return total


def format_instant(ms: int) -> str:
    """Render epoch ms as Joda renders a UTC DateTime: ``2024-01-01T00:00:00.000Z``."""
    days, rem = divmod(int(ms), MS_DAY)
    y, mo, d = civil_from_days(days)
    h, rem = divmod(rem, MS_HOUR)
    mi, rem = divmod(rem, MS_MINUTE)
    s, milli = divmod(rem, MS_SECOND)
    year = f"{y:04d}" if y >= 0 else f"-{-y:04d}"  # Joda: at least 4 digits, a sign only when negative
    return f"{year}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{milli:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_PERIOD = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)(?:[.,](?P<f>\d{1,3}))?S)?)?$"
)


@dataclass(frozen=True)
class Period:
    """An ISO-8601 period such as ``P1D``, ``PT15M`` or ``P1M``; months and years are calendar units."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    millis: int = 0

    @classmethod
    def parse(cls, text: str, path: str = "") -> Period:
        m = _PERIOD.match(text.strip().upper()) if isinstance(text, str) else None
        if not m or text.strip().upper() in ("P", "PT"):
            raise SpecError(path, text, "not an ISO-8601 period such as P1D, PT1H or P1M")
        g = {k: int(v) if v else 0 for k, v in m.groupdict().items() if k != "f"}
        millis = int((m["f"] + "00")[:3]) if m["f"] else 0
        return cls(g["y"], g["mo"], g["w"], g["d"], g["h"], g["mi"], g["s"], millis)

    @property
    def calendar_months(self) -> int:
        return self.years * 12 + self.months

    @property
    def fixed_ms(self) -> int:
        """The part of the period with a fixed length (weeks and smaller)."""
        return (
            self.weeks * MS_WEEK
            + self.days * MS_DAY
            + self.hours * MS_HOUR
            + self.minutes * MS_MINUTE
            + self.seconds * MS_SECOND
            + self.millis
        )

    def add_to(self, ms: int, times: int = 1) -> int:
        """``ms`` plus this period ``times`` times, in UTC (months clamp to the month's last day, as Joda does)."""
        months = self.calendar_months * times
        if months:
            days, rem = divmod(ms, MS_DAY)
            y, mo, d = civil_from_days(days)
            idx = y * 12 + (mo - 1) + months
            y, mo = divmod(idx, 12)
            mo += 1
            d = min(d, days_in_month(y, mo))
            ms = days_from_civil(y, mo, d) * MS_DAY + rem
        return ms + self.fixed_ms * times

    def __str__(self) -> str:
        date = "".join(f"{v}{u}" for v, u in ((self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D")) if v)
        secs = f"{self.seconds}.{self.millis:03d}" if self.millis else str(self.seconds)
        tpart = "".join(
            f"{v}{u}" for v, u in ((self.hours, "H"), (self.minutes, "M"), (secs if (self.seconds or self.millis) else 0, "S")) if v
        )
        return "P" + date + ("T" + tpart if tpart else "") if (date or tpart) else "PT0S"


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open interval ``[start, end)`` of epoch milliseconds, written ``start/end`` in ISO-8601."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise SpecError("", str(self), "interval end is before its start")

    @classmethod
    def parse(cls, value: Any, path: str = "") -> Interval:
        """Parse ``start/end``, ``start/period`` or ``period/end`` (or pass an Interval through)."""
        if isinstance(value, Interval):
            return value
        if not isinstance(value, str) or value.count("/") != 1:
            raise SpecError(path, value, "expected an ISO-8601 interval 'start/end'")
        left, right = (p.strip() for p in value.split("/"))
        if left.upper().startswith("P") and right.upper().startswith("P"):
            raise SpecError(path, value, "an interval cannot be two periods")
        if right.upper().startswith("P"):
            start = parse_instant(left, path)
            end = Period.parse(right, path).add_to(start)
        elif left.upper().startswith("P"):
            end = parse_instant(right, path)
            period = Period.parse(left, path)
            start = _subtract_period(end, period)
        else:
            start, end = parse_instant(left, path), parse_instant(right, path)
        if end < start:
            raise SpecError(path, value, "interval end is before its start")
        if start < INSTANT_MIN or end > INSTANT_MAX:
            raise SpecError(path, value, "reaches beyond the instants Druid can represent (a 64-bit count of milliseconds)")
        return cls(start, end)

    @property
    def duration(self) -> int:
        return self.end - self.start

    def is_empty(self) -> bool:
        return self.end == self.start

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def contains_instant(self, ms: int) -> bool:
        return self.start <= ms < self.end

    def intersect(self, other: Interval) -> Interval | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Interval(start, end) if start < end else None

    def abuts(self, other: Interval) -> bool:
        return self.end == other.start or other.end == self.start

    def __str__(self) -> str:
        return f"{format_instant(self.start)}/{format_instant(self.end)}"

    def __repr__(self) -> str:
        return f"Interval({str(self)!r})"

    # pydantic: accept the ISO string, serialise back to it.
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(v: Any) -> Interval:
            try:
                return cls.parse(v)
            except SpecError as e:
                raise ValueError(e.reason) from None

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "interval", "examples": ["2024-01-01/2024-01-02"]}


def _subtract_period(ms: int, period: Period) -> int:
    negative = Period(-period.years, -period.months, -period.weeks, -period.days, -period.hours, -period.minutes, -period.seconds, -period.millis)
    return negative.add_to(ms)


# Joda's (and Java's) extreme instants: milliseconds in a signed 64-bit long.
INSTANT_MIN, INSTANT_MAX = -(2**63), 2**63 - 1
# Druid's Intervals.ETERNITY: Joda's smallest and largest instants (JodaUtils.MIN_INSTANT / MAX_INSTANT).
ETERNITY = Interval(-(2**62), 2**62 - 1)


def condense(intervals: list[Interval]) -> list[Interval]:
    """Merge overlapping and abutting intervals into the fewest sorted intervals covering the same time."""
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def umbrella(intervals: list[Interval]) -> Interval:
    """The smallest interval covering all of ``intervals``."""
    return Interval(min(i.start for i in intervals), max(i.end for i in intervals))
