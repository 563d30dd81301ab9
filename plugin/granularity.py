"""Druid's granularities: the buckets that ``segmentGranularity`` and ``queryGranularity`` cut time into.

A :class:`Granularity` is one of

* ``NONE`` — millisecond buckets (truncation is the identity);
* ``ALL`` — one bucket, :data:`~druidflow.intervals.ETERNITY`;
* a *period* granularity — an ISO-8601 period with an optional time zone and origin. The named ones
  (``SECOND``, ``MINUTE``, ``FIVE_MINUTE``, ``TEN_MINUTE``, ``FIFTEEN_MINUTE``, ``THIRTY_MINUTE``, ``HOUR``,
  ``SIX_HOUR``, ``EIGHT_HOUR``, ``DAY``, ``WEEK``, ``MONTH``, ``QUARTER``, ``YEAR``) are period granularities in
  UTC with no origin, and are written back by name exactly as Druid does;
* a *duration* granularity — fixed-length buckets of ``duration`` ms aligned on ``origin``.

Bucketing follows Joda-Time and Druid's ``PeriodGranularity``:

* A single-unit period with no origin floors the wall-clock field in the time zone (``P1D`` is local midnight,
  ``P1W`` the local Monday, ``P1M`` the first of the local month, ``PT1H`` the top of the local hour).
* A multiple (``PT6H``, ``P2D``, ``P3M`` = QUARTER) or a period with an explicit origin counts whole periods
  from the origin, whose default is 1970-01-01T00:00 *local* time. Units of days and longer count in local
  calendar time; hours and shorter count elapsed time.
* Local times are turned back into instants as Joda does: a time that exists twice (DST ends) resolves to the
  earlier instant, a time that does not exist (DST starts) moves forward by the length of the gap; a
  floored bucket start keeps the offset of the instant being floored when that offset is valid there.
* Druid's ``isFinerThan`` compares the lengths of the buckets that contain the epoch.

Everything is vectorised: :meth:`Granularity.truncate` floors millions of epoch-millisecond timestamps with
numpy integer arithmetic. Calendar and time-zone work is done on small lookup tables (one entry per day,
month or bucket in the data's range, or per hour for the zone's UTC offsets) and gathered back per row.
"""

from __future__ import annotations

import datetime as _dt
import re
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Union

import numpy as np
import pyarrow as pa

from druidflow.exceptions import SpecError
from druidflow.intervals import (
    ETERNITY,
    MS_DAY,
    MS_HOUR,
    MS_MINUTE,
    MS_SECOND,
    MS_WEEK,
    Interval,
    Period,
    civil_from_days,
    days_from_civil,
    days_in_month,
    format_instant,
    parse_instant,
)

# ---------------------------------------------------------------------------------------------------------------
# Calendar helpers on numpy arrays (proleptic Gregorian, like Joda's ISOChronology)
# ---------------------------------------------------------------------------------------------------------------

# Above this many distinct days/hours in a batch's range, lookup tables stop paying off and we compute per row.
_TABLE_LIMIT = 4_000_000


def floor_div(values: np.ndarray, divisor: int) -> np.ndarray:
    """``values // divisor`` rounding towards minus infinity (so pre-1970 instants floor correctly)."""
    return np.floor_divide(values, divisor)


def floor_to(values: np.ndarray, size: int, origin: int = 0) -> np.ndarray:
    """The largest ``origin + k * size`` not after each value (one temporary, in-place arithmetic)."""
    out = np.subtract(values, origin) if origin else np.array(values, dtype=np.int64, copy=True)
    np.floor_divide(out, size, out=out)
    np.multiply(out, size, out=out)
    if origin:
        np.add(out, origin, out=out)
    return out


def civil_from_days_array(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised :func:`druidflow.intervals.civil_from_days`: (year, month, day) of day numbers."""
    z = np.asarray(days, dtype=np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = np.where(mp < 10, mp + 3, mp - 9)
    y = yoe + era * 400 + (m <= 2)
    return y, m, d


def month_index_of_days(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of each day number (days since 1970-01-01)."""
    y, m, _ = civil_from_days_array(days)
    return (y - 1970) * 12 + (m - 1)


def days_of_month_index(months: np.ndarray) -> np.ndarray:
    """Day number of the first day of each month index (months since 1970-01)."""
    months = np.asarray(months, dtype=np.int64)
    y = 1970 + np.floor_divide(months, 12)
    m = np.mod(months, 12) + 1
    return days_from_civil_array(y, m, np.ones_like(m))


def days_from_civil_array(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Vectorised :func:`druidflow.intervals.days_from_civil` (Howard Hinnant's algorithm) on int64 arrays."""
    y = np.asarray(y, dtype=np.int64) - (np.asarray(m) <= 2)
    m = np.asarray(m, dtype=np.int64)
    d = np.asarray(d, dtype=np.int64)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = np.where(m > 2, m - 3, m + 9)
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


# ---------------------------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------------------------

_UTC_NAMES = frozenset(
    {"UTC", "Z", "GMT", "UCT", "UNIVERSAL", "ZULU", "GREENWICH", "GMT0", "GMT+0", "GMT-0",
     "ETC/UTC", "ETC/GMT", "ETC/UCT", "ETC/UNIVERSAL", "ETC/ZULU", "ETC/GREENWICH", "ETC/GMT0", "ETC/GMT+0",
     "ETC/GMT-0"}
)
_OFFSET_ZONE = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$")
# Instants outside years 2..9998 take the offset in force at those edges (zone rules are not defined further).
_ZONE_MIN_MS = -62104060800000  # 0002-01-01: a local time a day either side must stay within datetime's range
_ZONE_MAX_MS = 253370764800000  # 9998-12-31
# Half-width of the window searched for the offsets that may apply to a local time (> the largest |offset|).
_LOCAL_WINDOW_MS = 18 * MS_HOUR
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class TimeZone:
    """A time zone as Druid's ``timeZone`` fields name it: an IANA id (``America/Los_Angeles``) or a fixed offset.

    ``UTC`` and its aliases parse to :data:`UTC`. Offsets come from :mod:`zoneinfo` (the system tz database, with
    the POSIX rules that carry DST past the tables' last year), for scalar and vectorised lookups alike.
    """

    id: str
    fixed_offset_ms: int | None = None

    @classmethod
    def parse(cls, value: Any, path: str = "timeZone") -> TimeZone:
        """An IANA zone id, ``UTC`` (or an alias), or an offset such as ``+05:30`` / ``-08``; SpecError otherwise."""
        if isinstance(value, TimeZone):
            return value
        if not isinstance(value, str) or not value.strip():
            raise SpecError(path, value, "expected a time zone id such as 'America/Los_Angeles' or an offset such as '+05:30'")
        text = value.strip()
        if text.upper() in _UTC_NAMES:
            return UTC
        m = _OFFSET_ZONE.match(text.upper())
        if m:
            hours, minutes = int(m[2]), int(m[3] or 0)
            if hours > 14 or minutes > 59:
                raise SpecError(path, value, "time zone offset out of range (at most ±14:00)")
            offset = (hours * MS_HOUR + minutes * MS_MINUTE) * (-1 if m[1] == "-" else 1)
            if offset == 0:
                return UTC
            return cls(f"{m[1]}{hours:02d}:{minutes:02d}", offset)
        try:
            zoneinfo.ZoneInfo(text)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SpecError(path, value, "unknown time zone") from None
        return cls(text)

    @property
    def is_utc(self) -> bool:
        return self.fixed_offset_ms == 0

    @property
    def is_fixed(self) -> bool:
        return self.fixed_offset_ms is not None

    @property
    def _zoneinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.id)  # ZoneInfo caches instances per key

    def __str__(self) -> str:
        return self.id

    # -- instants -> offsets --------------------------------------------------------------------------------------

    def offset(self, ms: int) -> int:
        """The UTC offset (ms) in force at instant ``ms``."""
        if self.fixed_offset_ms is not None:
            return self.fixed_offset_ms
        ms = min(max(int(ms), _ZONE_MIN_MS), _ZONE_MAX_MS)
        # timedelta arithmetic instead of fromtimestamp: exact for every year 1..9999 on every platform.
        utc = (_EPOCH + _dt.timedelta(milliseconds=ms)).replace(tzinfo=self._zoneinfo)
        local = self._zoneinfo.fromutc(utc)
        return int(local.utcoffset() // _dt.timedelta(milliseconds=1))

    def offsets(self, ms: np.ndarray) -> np.ndarray:
        """The UTC offset (ms) in force at each instant of an int64 array, vectorised.

        The zone's transitions in the array's range come from :mod:`zoneinfo` (cached per ~year; Arrow's own tz
        code is not used because it drops the DST rules past 2037). Offsets are laid on a per-UTC-hour grid and
        gathered per row; only rows in an hour that holds a transition are searched individually.
        """
        ms = np.asarray(ms, dtype=np.int64)
        if self.fixed_offset_ms is not None:
            return np.full(ms.shape, self.fixed_offset_ms, dtype=np.int64)
        if ms.size == 0:
            return np.zeros(0, dtype=np.int64)
        clipped = np.clip(ms, _ZONE_MIN_MS, _ZONE_MAX_MS)
        starts, offsets = self._transitions(clipped)
        hours = np.floor_divide(clipped, MS_HOUR)
        h_lo, h_hi = int(hours.min()), int(hours.max())
        if h_hi - h_lo + 2 > min(_TABLE_LIMIT, 4 * ms.size + 64):
            return offsets[np.searchsorted(starts, clipped, side="right") - 1]
        grid = np.arange(h_lo, h_hi + 2, dtype=np.int64) * MS_HOUR
        table = offsets[np.searchsorted(starts, grid, side="right") - 1]
        idx = hours - h_lo
        out = table[idx]
        changes = np.flatnonzero(table[:-1] != table[1:])
        if changes.size:
            # Rows in an hour that holds a transition are looked up one by one.
            if changes.size <= 8:
                rows = idx == changes[0]
                for c in changes[1:]:
                    rows |= idx == c
            else:
                in_change = np.zeros(table.size, dtype=bool)
                in_change[changes] = True
                rows = in_change[idx]
            if rows.any():
                out[rows] = offsets[np.searchsorted(starts, clipped[rows], side="right") - 1]
        return out

    def _transitions(self, clipped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, offsets)``: from ``starts[i]`` on, the offset is ``offsets[i]``; covers every value given."""
        chunks = np.floor_divide(clipped, _CHUNK_MS)
        c_lo, c_hi = int(chunks.min()), int(chunks.max())
        wanted = range(c_lo, c_hi + 1) if c_hi - c_lo <= 512 else np.unique(chunks).tolist()
        starts: list[int] = []
        offsets: list[int] = []
        for chunk in wanted:
            s, o = _chunk_transitions(self.id, int(chunk))
            starts.extend(s)
            offsets.extend(o)
        return np.array(starts, dtype=np.int64), np.array(offsets, dtype=np.int64)

    # -- local wall-clock times -> instants -----------------------------------------------------------------------

    def from_local(self, local: np.ndarray) -> np.ndarray:
        """Instants for local wall-clock times (ms), resolving DST overlaps and gaps as Joda does by default."""
        return self._from_local(np.asarray(local, dtype=np.int64))[0]

    def _from_local(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(instants, alternative_offsets)``: the second is, per local time that exists twice, the offset of the
        later instant (the one Joda does not choose by default), else a sentinel; None when nothing is ambiguous."""
        if self.fixed_offset_ms is not None:
            return local - self.fixed_offset_ms, None
        before = self.offsets(local - _LOCAL_WINDOW_MS)
        after = self.offsets(local + _LOCAL_WINDOW_MS)
        valid_before = self.offsets(local - before) == before
        valid_after = self.offsets(local - after) == after
        ambiguous = valid_before & valid_after & (before != after)
        # Unique offset -> it; ambiguous -> the larger offset (the earlier instant); gap -> the offset before it.
        chosen = np.where(valid_after & ~valid_before, after, before)
        chosen = np.where(ambiguous, np.maximum(before, after), chosen)
        alternative = None
        if ambiguous.any():
            alternative = np.where(ambiguous, np.minimum(before, after), np.iinfo(np.int64).min)
        return local - chosen, alternative

    def from_local_scalar(self, local: int) -> int:
        """:meth:`from_local` for one local time."""
        if self.fixed_offset_ms is not None:
            return local - self.fixed_offset_ms
        before = self.offset(local - _LOCAL_WINDOW_MS)
        after = self.offset(local + _LOCAL_WINDOW_MS)
        valid_before = self.offset(local - before) == before
        valid_after = self.offset(local - after) == after
        if valid_before and valid_after:
            return local - max(before, after)
        return local - (after if valid_after else before)


UTC = TimeZone("UTC", 0)

# Transitions are found per chunk of 2**35 ms (about 398 days): offsets sampled daily, changes bisected to the ms.
# Two transitions less than a day apart would be missed; no zone in the tz database has them.
_CHUNK_MS = 2**35


@lru_cache(maxsize=4096)
def _chunk_transitions(zone_id: str, chunk: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    zone = TimeZone(zone_id)
    start = chunk * _CHUNK_MS
    end = start + _CHUNK_MS
    starts, offsets = [start], [zone.offset(start)]
    prev_t, prev_o = start, offsets[0]
    t = start
    while t < end:
        t = min(t + MS_DAY, end)
        o = zone.offset(t)
        if o != prev_o:
            lo, hi = prev_t, t  # offset(lo) == prev_o != offset(hi): the transition is in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if zone.offset(mid) == prev_o:
                    lo = mid
                else:
                    hi = mid
            starts.append(hi)
            offsets.append(o)
        prev_t, prev_o = t, o
    return tuple(starts), tuple(offsets)

# ---------------------------------------------------------------------------------------------------------------
# Granularity
# ---------------------------------------------------------------------------------------------------------------

STANDARD_PERIODS: dict[str, str] = {
    "SECOND": "PT1S",
    "MINUTE": "PT1M",
    "FIVE_MINUTE": "PT5M",
    "TEN_MINUTE": "PT10M",
    "FIFTEEN_MINUTE": "PT15M",
    "THIRTY_MINUTE": "PT30M",
    "HOUR": "PT1H",
    "SIX_HOUR": "PT6H",
    "EIGHT_HOUR": "PT8H",
    "DAY": "P1D",
    "WEEK": "P1W",
    "MONTH": "P1M",
    "QUARTER": "P3M",
    "YEAR": "P1Y",
}
NAMES: tuple[str, ...] = ("NONE", "ALL", *STANDARD_PERIODS)

_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds", "millis")
_TIME_UNIT_MS = {"hours": MS_HOUR, "minutes": MS_MINUTE, "seconds": MS_SECOND, "millis": 1}
_MAX_COMPOUND_STEPS = 2_000_000

TimesLike = Union[np.ndarray, pa.Array, pa.ChunkedArray]


def _period_fields(period: Period) -> list[tuple[str, int]]:
    return [(f, getattr(period, f)) for f in _FIELDS if getattr(period, f)]


@dataclass(frozen=True)
class Granularity:
    """A Druid granularity; immutable, hashable, and usable as a pydantic field type.

    Build one with :meth:`parse` (Druid's JSON: a name, or a ``{"type": ...}`` object), :meth:`period_granularity`
    or :meth:`duration_granularity`, or use the module constants (``HOUR``, ``DAY``, ...).
    """

    kind: str  # "none" | "all" | "period" | "duration"
    period: Period | None = None
    time_zone: TimeZone | None = None  # period only; None is UTC
    origin: int | None = None  # period: explicit origin (None = local 1970-01-01); duration: origin mod duration
    duration: int | None = None  # duration only, ms

    # -- construction ---------------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, value: Any, path: str = "") -> Granularity:
        """Accept Druid's granularity JSON: a name (case-insensitive) or a ``{"type": ...}`` object."""
        if isinstance(value, Granularity):
            return value
        if isinstance(value, str):
            g = _BY_NAME.get(value.upper())
            if g is None:
                raise SpecError(
                    path, value, f"unknown granularity; expected one of {', '.join(NAMES)} or a {{\"type\": ...}} object"
                )
            return g
        if isinstance(value, dict):
            return cls._parse_object(value, path)
        raise SpecError(path, value, "expected a granularity name such as 'DAY' or an object with a 'type'")

    @classmethod
    def _parse_object(cls, value: dict, path: str) -> Granularity:
        kind = value.get("type")
        kind_l = kind.lower() if isinstance(kind, str) else kind
        allowed = {"none": {"type"}, "all": {"type"}, "period": {"type", "period", "timeZone", "origin"},
                   "duration": {"type", "duration", "origin"}}
        if kind_l not in allowed:
            raise SpecError(_join(path, "type"), kind, "unknown granularity type; expected 'period', 'duration', 'none' or 'all'")
        extra = sorted(set(value) - allowed[kind_l])
        if extra:
            raise SpecError(_join(path, extra[0]), value[extra[0]], f"unexpected field for a {kind_l!r} granularity")
        if kind_l == "none":
            return NONE
        if kind_l == "all":
            return ALL
        origin = value.get("origin")
        origin_ms = None if origin is None or origin == "" else _parse_origin(origin, _join(path, "origin"))
        if kind_l == "period":
            if "period" not in value:
                raise SpecError(_join(path, "period"), None, "a period granularity needs a 'period' such as 'PT1H'")
            tz = value.get("timeZone")
            return cls.period_granularity(
                value["period"], None if tz is None else TimeZone.parse(tz, _join(path, "timeZone")), origin_ms, path
            )
        duration = value.get("duration")
        if isinstance(duration, bool) or not isinstance(duration, int):
            raise SpecError(_join(path, "duration"), duration, "a duration granularity needs 'duration' in milliseconds")
        return cls.duration_granularity(duration, origin_ms or 0, path)

    @classmethod
    def period_granularity(
        cls, period: str | Period, time_zone: str | TimeZone | None = None, origin: int | str | None = None, path: str = ""
    ) -> Granularity:
        """A period granularity; in UTC with no origin it is the standard one of the same period (``PT1H`` is HOUR)."""
        p = period if isinstance(period, Period) else Period.parse(period, _join(path, "period"))
        if not _period_fields(p):
            raise SpecError(_join(path, "period"), str(period), "a zero period is not a granularity")
        tz = None if time_zone is None else TimeZone.parse(time_zone, _join(path, "timeZone"))
        if tz is not None and tz.is_utc:
            tz = None
        if isinstance(origin, str):
            origin = _parse_origin(origin, _join(path, "origin"))
        return cls("period", period=p, time_zone=tz, origin=origin)

    @classmethod
    def duration_granularity(cls, duration_ms: int, origin: int = 0, path: str = "") -> Granularity:
        """Fixed buckets of ``duration_ms`` aligned on ``origin`` (stored as ``origin`` mod ``duration_ms``)."""
        if duration_ms <= 0:
            raise SpecError(_join(path, "duration"), duration_ms, "duration must be a positive number of milliseconds")
        return cls("duration", duration=int(duration_ms), origin=int(origin) % int(duration_ms))

    # -- identity and JSON ----------------------------------------------------------------------------------------

    @cached_property
    def name(self) -> str:
        """``HOUR``, ``NONE``, ... for the named granularities; a readable description otherwise."""
        if self.kind in ("none", "all"):
            return self.kind.upper()
        if self.kind == "period" and self.time_zone is None and self.origin is None:
            std = _STANDARD_BY_PERIOD.get(str(self.period))
            if std is not None and _BY_NAME[std].period == self.period:
                return std
        parts = [str(self.period) if self.kind == "period" else f"{self.duration}ms"]
        if self.time_zone is not None:
            parts.append(self.time_zone.id)
        if self.origin is not None and (self.kind == "period" or self.origin):
            parts.append(f"origin={format_instant(self.origin)}")
        return f"{self.kind}({', '.join(parts)})"

    @property
    def is_standard(self) -> bool:
        return self.name in _BY_NAME

    def to_json(self) -> str | dict[str, Any]:
        """Druid's JSON: the name for the named period granularities, an object otherwise."""
        if self.kind in ("none", "all"):
            return {"type": self.kind}
        if self.is_standard:
            return self.name
        if self.kind == "period":
            out: dict[str, Any] = {"type": "period", "period": str(self.period), "timeZone": (self.time_zone or UTC).id}
            if self.origin is not None:
                out["origin"] = format_instant(self.origin)
            return out
        return {"type": "duration", "duration": self.duration, "origin": format_instant(self.origin or 0)}

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Granularity({self.name})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(v: Any) -> Granularity:
            try:
                return cls.parse(v)
            except SpecError as e:
                raise ValueError(e.reason if not e.path else f"{e.path}: {e.reason}") from None

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda g: g.to_json())
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "enum": list(NAMES)},
                {"type": "object", "properties": {"type": {"enum": ["period", "duration", "none", "all"]}}},
            ]
        }

    # -- ordering -------------------------------------------------------------------------------------------------

    @cached_property
    def epoch_bucket_ms(self) -> int:
        """Length of the bucket containing the epoch; Druid orders granularities by it."""
        b = self.bucket(0)
        return b.end - b.start

    def is_finer_than(self, other: Granularity) -> bool:
        """Druid's ``Granularity.isFinerThan``: a strictly shorter bucket at the epoch."""
        return self.epoch_bucket_ms < other.epoch_bucket_ms

    @staticmethod
    def finest(granularities: Iterable[Granularity]) -> Granularity:
        """The finest of ``granularities`` (the first one on ties), as compaction picks a query granularity."""
        out: Granularity | None = None
        for g in granularities:
            if out is None or g.is_finer_than(out):
                out = g
        if out is None:
            raise ValueError("finest() of no granularities")
        return out

    # -- scalar API -----------------------------------------------------------------------------------------------

    def bucket_start(self, ms: int) -> int:
        """Start of the bucket containing instant ``ms``."""
        return int(self._truncate(np.array([int(ms)], dtype=np.int64))[0])

    def next_bucket_start(self, ms: int) -> int:
        """Start of the bucket after the one starting at ``ms`` (Druid's ``increment``); ``ms`` must be a bucket start.

        Like Druid this only adds the period; it does not check that ``ms`` is a bucket start (in zones whose DST
        shift is not a whole number of hours, Joda's hour buckets around a transition are not all fixed points of
        :meth:`bucket_start`, so such a check would reject Druid's own buckets).
        """
        ms = int(ms)
        if self.kind == "none":
            return ms + 1
        if self.kind == "all":
            return ETERNITY.end
        if self.kind == "duration":
            return ms + self.duration  # type: ignore[operator]
        return self._add_period(ms, 1)

    def bucket(self, ms: int) -> Interval:
        """The bucket containing instant ``ms``."""
        start = self.bucket_start(ms)
        return Interval(start, self.next_bucket_start(start))

    def iter_buckets(self, interval: Interval) -> Iterator[Interval]:
        """Druid's expansion rule: from ``bucket_start(interval.start)``, buckets while their start < ``interval.end``."""
        start = self.bucket_start(interval.start)
        while start < interval.end:
            end = self.next_bucket_start(start)
            if end <= start:  # ALL ends at ETERNITY's end: an interval reaching past it has no further bucket
                return
            yield Interval(start, end)
            start = end

    def expand(
        self, intervals: Iterable[Interval], limit: int = 1_000_000, path: str = "granularitySpec.intervals"
    ) -> list[Interval]:
        """Every bucket the intervals touch, sorted and unique; a SpecError at ``path`` past ``limit`` buckets."""
        seen: set[Interval] = set()
        for iv in intervals:
            for b in self.iter_buckets(iv):
                seen.add(b)
                if len(seen) > limit:
                    raise SpecError(path, str(iv), f"expands to more than {limit} {self.name} buckets")
        return sorted(seen)

    def is_aligned(self, interval: Interval) -> bool:
        """True when ``interval`` is exactly one bucket."""
        return self.bucket(interval.start) == interval

    # -- vectorised API -------------------------------------------------------------------------------------------

    def truncate(self, times: TimesLike) -> TimesLike:
        """Bucket starts of epoch-ms timestamps, vectorised.

        ``times`` is a numpy int64 array, or a pyarrow int64 / timestamp Array or ChunkedArray; the result is the
        same kind (pyarrow nulls stay null; a pyarrow timestamp comes back as ``timestamp[ms]``).
        """
        if self.kind == "none" and _is_epoch_millis(times):
            return times  # NONE is the identity: no copy of what may be millions of rows
        if isinstance(times, np.ndarray):
            return self._truncate(times.astype(np.int64, copy=False))
        if isinstance(times, pa.ChunkedArray):
            return pa.chunked_array([self.truncate(c) for c in times.chunks], type=_result_type(times.type))
        if isinstance(times, pa.Array):
            if len(times) == 0:
                return pa.array([], type=_result_type(times.type))
            return self._truncate_arrow(times)
        raise TypeError(f"truncate() takes a numpy or pyarrow array, not {type(times).__name__}")

    def _truncate_arrow(self, arr: pa.Array) -> pa.Array:
        out_type = _result_type(arr.type)
        if pa.types.is_timestamp(arr.type):
            if arr.type.unit != "ms":
                arr = arr.cast(pa.timestamp("ms", tz=arr.type.tz), safe=False)
            arr = arr.view(pa.int64())
        elif not pa.types.is_int64(arr.type):
            if not pa.types.is_integer(arr.type):
                raise TypeError(f"truncate() needs int64 epoch milliseconds or timestamps, not {arr.type}")
            arr = arr.cast(pa.int64())
        values = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=arr.offset + len(arr))[arr.offset :]
        result = self._truncate(values)
        mask = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
        return pa.array(result, type=pa.int64(), mask=mask).view(out_type)

    def _truncate(self, t: np.ndarray) -> np.ndarray:
        if t.size == 0 or self.kind == "none":
            return t.copy()
        if self.kind == "all":
            return np.full(t.shape, ETERNITY.start, dtype=np.int64)
        if self.kind == "duration":
            return floor_to(t, self.duration, self.origin or 0)  # type: ignore[arg-type]
        fields = _period_fields(self.period)  # type: ignore[arg-type]
        if len(fields) > 1:
            return self._truncate_compound(t)
        unit, n = fields[0]
        if unit in _TIME_UNIT_MS:
            size = n * _TIME_UNIT_MS[unit]
            if unit == "millis" and n == 1:
                return t.copy()
            if n == 1 and self.origin is None:
                # Joda floors the local wall-clock field, keeping the instant's own offset.
                return self._floor_local(t, size)
            return floor_to(t, size, self._origin_ms)
        if n == 1 and self.origin is None:
            if unit in ("days", "weeks") and self._zone.is_fixed:
                return self._floor_local(t, MS_DAY if unit == "days" else MS_WEEK, -3 * MS_DAY if unit == "weeks" else 0)
            return self._floor_calendar_field(t, unit)
        return self._floor_calendar_multiple(t, unit, n)

    # -- period internals -----------------------------------------------------------------------------------------

    @property
    def _zone(self) -> TimeZone:
        return self.time_zone or UTC

    def _offsets(self, t: np.ndarray) -> np.ndarray | int:
        z = self._zone
        return z.fixed_offset_ms if z.is_fixed else z.offsets(t)  # type: ignore[return-value]

    def _floor_local(self, t: np.ndarray, size: int, local_origin: int = 0) -> np.ndarray:
        """Floor to ``size`` in local time using each instant's own offset (exact for fixed-length local fields)."""
        off = self._offsets(t)
        if isinstance(off, int):
            return floor_to(t, size, local_origin - off)
        out = floor_to(t + off, size, local_origin)
        out -= off
        return out

    @cached_property
    def _origin_ms(self) -> int:
        if self.origin is not None:
            return self.origin
        return self._zone.from_local_scalar(0)  # 1970-01-01T00:00 in the zone (Joda's withZoneRetainFields)

    def _floor_calendar_field(self, t: np.ndarray, unit: str) -> np.ndarray:
        """Single-unit day/week/month/year with no origin: floor the local field (Joda's ``roundFloor``).

        The bucket start depends only on the local day, so it is computed once per day of the batch's range and
        gathered back per row.
        """
        zone = self._zone
        off = self._offsets(t)
        days, idx = _day_table(floor_div(t + off, MS_DAY))
        start_local = _bucket_start_days(_bucket_of_days(days, unit), unit) * MS_DAY
        if zone.is_fixed:
            out = _gather(start_local, idx)
            out -= off
            return out
        starts, alternative = zone._from_local(start_local)
        out = _gather(starts, idx)
        if alternative is not None:
            # Joda keeps the floored instant's own offset when the local start exists twice and that offset is valid.
            keep = _gather(alternative, idx) == off
            out[keep] = _gather(start_local, idx)[keep] - off[keep]  # type: ignore[index]
        return out

    def _floor_calendar_multiple(self, t: np.ndarray, unit: str, n: int) -> np.ndarray:
        """Multiples of days/weeks/months/years counted in local calendar time from the origin (Druid's
        ``getDifference`` then ``add`` on the zoned chronology, stepping back a period when that overshoots)."""
        zone = self._zone
        origin = self._origin_ms
        lo = origin + zone.offset(origin)
        local = t + self._offsets(t)
        lo_days, lo_rem = divmod(lo, MS_DAY)
        if lo_rem == 0 and (unit in ("days", "weeks") or civil_from_days(lo_days)[2] == 1):
            # The origin is a local midnight (on the 1st, for months): the bucket depends only on the local day.
            days, idx = _day_table(floor_div(local, MS_DAY))
            count = _units_between(lo, days * MS_DAY, unit)
        else:
            idx = None
            count = _units_between(lo, local, unit)
        k = floor_div(count, n) * n
        current = zone.from_local(_add_units_local(lo, k, unit))
        previous = zone.from_local(_add_units_local(lo, k - n, unit))
        out = _gather(current, idx)
        back = t < out
        if back.any():
            out[back] = _gather(previous, idx)[back]
        return out

    def _truncate_compound(self, t: np.ndarray) -> np.ndarray:
        p = self.period
        assert p is not None
        calendar = p.years or p.months
        days = p.weeks or p.days
        if not calendar and (not days or self._zone.is_fixed):
            # Druid's truncateMillisPeriod: fixed-length periods floor on the origin.
            return floor_to(t, p.fixed_ms, self._origin_ms)
        bounds = self._compound_boundaries(int(t.min()), int(t.max()))
        return bounds[np.searchsorted(bounds, t, side="right") - 1]

    def _compound_boundaries(self, lo: int, hi: int) -> np.ndarray:
        """Bucket starts of a calendar compound period covering [lo, hi], stepping from the origin as Druid does."""
        cur = self._origin_ms
        steps = 0
        while cur > lo:
            cur = self._add_period(cur, -1)
            steps += 1
            self._check_steps(steps)
        while True:
            nxt = self._add_period(cur, 1)
            if nxt > lo:
                break
            cur = nxt
            steps += 1
            self._check_steps(steps)
        out = [cur]
        while out[-1] <= hi:
            out.append(self._add_period(out[-1], 1))
            steps += 1
            self._check_steps(steps)
        return np.array(out, dtype=np.int64)

    def _check_steps(self, steps: int) -> None:
        if steps > _MAX_COMPOUND_STEPS:
            raise SpecError("granularity", self.to_json(), f"more than {_MAX_COMPOUND_STEPS} buckets between origin and data")

    def _add_period(self, ms: int, scalar: int) -> int:
        """Joda's ``chronology.add(period, ms, scalar)``: each field in turn, calendar fields in local time."""
        zone = self._zone
        for field, value in _period_fields(self.period):  # type: ignore[arg-type]
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
                local = _add_months_scalar(local, amount * (12 if field == "years" else 1))
            ms = zone.from_local_scalar(local)
        return ms


def _is_epoch_millis(times: Any) -> bool:
    if isinstance(times, np.ndarray):
        return times.dtype == np.int64
    if not isinstance(times, (pa.Array, pa.ChunkedArray)):
        return False
    t = times.type
    return pa.types.is_int64(t) or (pa.types.is_timestamp(t) and t.unit == "ms")


def _result_type(t: pa.DataType) -> pa.DataType:
    return pa.timestamp("ms", tz=t.tz) if pa.types.is_timestamp(t) else pa.int64()


def _day_table(days: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(table, idx)`` with ``table[idx] == days``: every day of the range when it is small, else the days themselves
    (``idx`` None). Per-day work on ``table`` then costs one gather per row instead of one computation."""
    if days.size == 0:
        return days, None
    lo, hi = int(days.min()), int(days.max())
    if hi - lo >= min(_TABLE_LIMIT, 4 * days.size + 64):
        return days, None
    return np.arange(lo, hi + 1, dtype=np.int64), days - lo


def _gather(table: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    return table.copy() if idx is None else table[idx]


def _bucket_of_days(days: np.ndarray, unit: str) -> np.ndarray:
    if unit == "days":
        return days
    if unit == "weeks":
        return floor_div(days + 3, 7)  # week 0 starts on Monday 1969-12-29 (day -3), as Joda's weeks do
    months = month_index_of_days(days)
    return months if unit == "months" else floor_div(months, 12)


def _bucket_start_days(buckets: np.ndarray, unit: str) -> np.ndarray:
    if unit == "days":
        return buckets
    if unit == "weeks":
        return buckets * 7 - 3
    if unit == "months":
        return days_of_month_index(buckets)
    return days_of_month_index(buckets * 12)


def _units_between(lo: int, local: np.ndarray, unit: str) -> np.ndarray:
    """Whole units from local time ``lo`` to each local time, floored (Joda's field difference)."""
    if unit in ("days", "weeks"):
        return floor_div(local - lo, MS_DAY if unit == "days" else MS_WEEK)
    lo_days, lo_rem = divmod(lo, MS_DAY)
    y, m, d = civil_from_days(lo_days)
    lo_month = (y - 1970) * 12 + (m - 1)
    lo_pos = (d - 1) * MS_DAY + lo_rem
    days = floor_div(local, MS_DAY)
    months = month_index_of_days(days)
    count = months - lo_month
    if lo_pos:
        pos = local - days_of_month_index(months) * MS_DAY
        count -= pos < lo_pos
    return count if unit == "months" else floor_div(count, 12)


def _add_units_local(lo: int, counts: np.ndarray, unit: str) -> np.ndarray:
    """Local time ``lo`` plus each count of units; months clamp the day of month as Joda does."""
    if unit in ("days", "weeks"):
        return lo + counts * (MS_DAY if unit == "days" else MS_WEEK)
    months = counts * (12 if unit == "years" else 1)
    lo_days, lo_rem = divmod(lo, MS_DAY)
    y, m, d = civil_from_days(lo_days)
    target = (y - 1970) * 12 + (m - 1) + months
    first = days_of_month_index(target)
    length = days_of_month_index(target + 1) - first
    return (first + np.minimum(d - 1, length - 1)) * MS_DAY + lo_rem


def _add_months_scalar(local: int, months: int) -> int:
    days, rem = divmod(local, MS_DAY)
    y, m, d = civil_from_days(days)
    y2, m2 = divmod(y * 12 + (m - 1) + months, 12)
    m2 += 1
    return days_from_civil(y2, m2, min(d, days_in_month(y2, m2))) * MS_DAY + rem


def _parse_origin(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise SpecError(path, value, "origin must be an ISO-8601 instant or epoch milliseconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_instant(value, path)
    raise SpecError(path, value, "origin must be an ISO-8601 instant or epoch milliseconds")


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


NONE = Granularity("none")
ALL = Granularity("all")
SECOND = Granularity.period_granularity("PT1S")
MINUTE = Granularity.period_granularity("PT1M")
FIVE_MINUTE = Granularity.period_granularity("PT5M")
TEN_MINUTE = Granularity.period_granularity("PT10M")
FIFTEEN_MINUTE = Granularity.period_granularity("PT15M")
THIRTY_MINUTE = Granularity.period_granularity("PT30M")
HOUR = Granularity.period_granularity("PT1H")
SIX_HOUR = Granularity.period_granularity("PT6H")
EIGHT_HOUR = Granularity.period_granularity("PT8H")
DAY = Granularity.period_granularity("P1D")
WEEK = Granularity.period_granularity("P1W")
MONTH = Granularity.period_granularity("P1M")
QUARTER = Granularity.period_granularity("P3M")
YEAR = Granularity.period_granularity("P1Y")

_BY_NAME: dict[str, Granularity] = {
    "NONE": NONE,
    "ALL": ALL,
    **{name: Granularity.period_granularity(p) for name, p in STANDARD_PERIODS.items()},
}
_STANDARD_BY_PERIOD = {p: name for name, p in STANDARD_PERIODS.items()}
