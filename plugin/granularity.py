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
numpy integer arithmetic. Calendar (:mod:`druidflow.calendar_arrays`) and time-zone (:mod:`druidflow.timezones`)
work is done on small lookup tables (one entry per day, month or bucket in the data's range, or per hour for the
zone's UTC offsets) and gathered back per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union

import numpy as np
import pyarrow as pa

from druidflow.calendar_arrays import (
    add_months_scalar,
    add_units_local,
    bucket_of_days,
    bucket_start_days,
    civil_from_days_array,
    day_table,
    days_from_civil_array,
    floor_div,
    floor_to,
    gather,
    units_between,
)
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
    format_instant,
    parse_instant,
)
from druidflow.timezones import UTC, TimeZone

# Re-exported for callers that bucket time with these helpers alongside granularities.
__all__ = [
    "ALL", "DAY", "EIGHT_HOUR", "FIFTEEN_MINUTE", "FIVE_MINUTE", "HOUR", "MINUTE", "MONTH", "NAMES", "NONE",
    "QUARTER", "SECOND", "SIX_HOUR", "STANDARD_PERIODS", "TEN_MINUTE", "THIRTY_MINUTE", "UTC", "WEEK", "YEAR",
    "Granularity", "TimeZone", "TimesLike", "civil_from_days_array", "days_from_civil_array", "floor_div",
]

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
    def _parse_object(cls, value: dict[str, Any], path: str) -> Granularity:
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
        """Druid's JSON, as its serializers write it: ``{"type": "none"}``/``{"type": "all"}``; the name for the
        standard period granularities (``PeriodGranularity.serialize`` keeps the pre-#3850 enum form); otherwise an
        object with ``type``, ``period``, ``timeZone`` and ``origin`` (null when not set)."""
        if self.kind in ("none", "all"):
            return {"type": self.kind}
        if self.is_standard:
            return self.name
        if self.kind == "period":
            return {
                "type": "period",
                "period": str(self.period),
                "timeZone": (self.time_zone or UTC).id,
                "origin": format_instant(self.origin) if self.origin is not None else None,
            }
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
        days, idx = day_table(floor_div(t + off, MS_DAY))
        start_local = bucket_start_days(bucket_of_days(days, unit), unit) * MS_DAY
        if zone.is_fixed:
            out = gather(start_local, idx)
            out -= off
            return out
        starts, alternative = zone._from_local(start_local)
        out = gather(starts, idx)
        if alternative is not None:
            # Joda keeps the floored instant's own offset when the local start exists twice and that offset is valid.
            keep = gather(alternative, idx) == off
            out[keep] = gather(start_local, idx)[keep] - off[keep]  # type: ignore[index]
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
                local = add_months_scalar(local, amount * (12 if field == "years" else 1))
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
