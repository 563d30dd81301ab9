"""Druid's granularities: the buckets that ``segmentGranularity`` and ``queryGranularity`` cut time into.

A :class:`Granularity` is one of four classes sharing its interface:

* :class:`NoneGranularity` ``NONE`` — millisecond buckets (truncation is the identity);
* :class:`AllGranularity` ``ALL`` — one bucket, :data:`~druidflow.intervals.ETERNITY`;
* :class:`PeriodGranularity` — an ISO-8601 period with an optional time zone and origin. The named ones
  (``SECOND``, ``MINUTE``, ``FIVE_MINUTE``, ``TEN_MINUTE``, ``FIFTEEN_MINUTE``, ``THIRTY_MINUTE``, ``HOUR``,
  ``SIX_HOUR``, ``EIGHT_HOUR``, ``DAY``, ``WEEK``, ``MONTH``, ``QUARTER``, ``YEAR``) are period granularities in
  UTC with no origin, and are written back by name exactly as Druid does;
* :class:`DurationGranularity` — fixed-length buckets of ``duration`` ms aligned on ``origin``.

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
numpy integer arithmetic (period bucketing lives in :mod:`druidflow.period_buckets`). Calendar
(:mod:`druidflow.calendar_arrays`) and time-zone (:mod:`druidflow.timezones`)
work is done on small lookup tables (one entry per day, month or bucket in the data's range, or per hour for the
zone's UTC offsets) and gathered back per row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Union

import numpy as np
import pyarrow as pa

from druidflow.calendar_arrays import civil_from_days_array, days_from_civil_array, floor_div, floor_to
from druidflow.exceptions import SpecError
from druidflow.intervals import ETERNITY, Interval, Period, format_instant, parse_instant
from druidflow.period_buckets import PeriodBuckets, period_fields
from druidflow.timezones import UTC, TimeZone

# Re-exported for callers that bucket time with these helpers alongside granularities.
__all__ = [
    "ALL", "DAY", "EIGHT_HOUR", "FIFTEEN_MINUTE", "FIVE_MINUTE", "HOUR", "MINUTE", "MONTH", "NAMES", "NONE",
    "QUARTER", "SECOND", "SIX_HOUR", "STANDARD_PERIODS", "TEN_MINUTE", "THIRTY_MINUTE", "UTC", "WEEK", "YEAR",
    "AllGranularity", "DurationGranularity", "Granularity", "NoneGranularity", "PeriodGranularity",
    "TimeZone", "TimesLike", "civil_from_days_array", "days_from_civil_array", "floor_div",
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

TimesLike = Union[np.ndarray, pa.Array, pa.ChunkedArray]


class Granularity(ABC):
    """A Druid granularity; immutable, hashable, and usable as a pydantic field type.

    One class per kind — :class:`NoneGranularity`, :class:`AllGranularity`, :class:`DurationGranularity` and
    :class:`PeriodGranularity` — sharing this interface; callers that need a kind's fields dispatch on the class.
    Build one with :meth:`parse` (Druid's JSON: a name, or a ``{"type": ...}`` object), :meth:`period_granularity`
    or :meth:`duration_granularity`, or use the module constants (``HOUR``, ``DAY``, ...).
    """

    kind: ClassVar[str]  # Druid's "type" of the granularity, as its JSON and readable names spell it

    # -- construction ---------------------------------------------------------------------------------------------

    @staticmethod
    def parse(value: Any, path: str = "") -> Granularity:
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
            return _parse_object(value, path)
        raise SpecError(path, value, "expected a granularity name such as 'DAY' or an object with a 'type'")

    @staticmethod
    def period_granularity(
        period: str | Period, time_zone: str | TimeZone | None = None, origin: int | str | None = None, path: str = ""
    ) -> PeriodGranularity:
        """A period granularity; in UTC with no origin it is the standard one of the same period (``PT1H`` is HOUR)."""
        p = period if isinstance(period, Period) else Period.parse(period, _join(path, "period"))
        if not period_fields(p):
            raise SpecError(_join(path, "period"), str(period), "a zero period is not a granularity")
        tz = None if time_zone is None else TimeZone.parse(time_zone, _join(path, "timeZone"))
        if tz is not None and tz.is_utc:
            tz = None
        if isinstance(origin, str):
            origin = _parse_origin(origin, _join(path, "origin"))
        return PeriodGranularity(period=p, time_zone=tz, origin=origin)

    @staticmethod
    def duration_granularity(duration_ms: int, origin: int = 0, path: str = "") -> DurationGranularity:
        """Fixed buckets of ``duration_ms`` aligned on ``origin`` (stored as ``origin`` mod ``duration_ms``)."""
        if duration_ms <= 0:
            raise SpecError(_join(path, "duration"), duration_ms, "duration must be a positive number of milliseconds")
        return DurationGranularity(duration=int(duration_ms), origin=int(origin) % int(duration_ms))

    # -- identity and JSON ----------------------------------------------------------------------------------------

    @property
    @abstractmethod
    def name(self) -> str:
        """``HOUR``, ``NONE``, ... for the named granularities; a readable description otherwise."""

    @property
    def is_standard(self) -> bool:
        return self.name in _BY_NAME

    @abstractmethod
    def to_json(self) -> str | dict[str, Any]:
        """Druid's JSON, as its serializers write it."""

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Granularity({self.name})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def validate(v: Any) -> Granularity:
            try:
                return Granularity.parse(v)
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

    @abstractmethod
    def next_bucket_start(self, ms: int) -> int:
        """Start of the bucket after the one starting at ``ms`` (Druid's ``increment``); ``ms`` must be a bucket start.

        Like Druid this only adds the period; it does not check that ``ms`` is a bucket start (in zones whose DST
        shift is not a whole number of hours, Joda's hour buckets around a transition are not all fixed points of
        :meth:`bucket_start`, so such a check would reject Druid's own buckets).
        """

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
        """Bucket starts of int64 epoch ms, always a new array."""
        return t.copy() if t.size == 0 else self._floor(t)

    @abstractmethod
    def _floor(self, t: np.ndarray) -> np.ndarray:
        """Bucket starts of a non-empty int64 array, in a new array."""


@dataclass(frozen=True, repr=False)
class NoneGranularity(Granularity):
    """``NONE``: millisecond buckets; truncation is the identity."""

    kind: ClassVar[str] = "none"

    @property
    def name(self) -> str:
        return "NONE"

    def to_json(self) -> dict[str, Any]:
        return {"type": "none"}

    def next_bucket_start(self, ms: int) -> int:
        return int(ms) + 1

    def truncate(self, times: TimesLike) -> TimesLike:
        if _is_epoch_millis(times):
            return times  # the identity: no copy of what may be millions of rows
        return super().truncate(times)

    def _floor(self, t: np.ndarray) -> np.ndarray:
        return t.copy()


@dataclass(frozen=True, repr=False)
class AllGranularity(Granularity):
    """``ALL``: one bucket, :data:`~druidflow.intervals.ETERNITY`."""

    kind: ClassVar[str] = "all"

    @property
    def name(self) -> str:
        return "ALL"

    def to_json(self) -> dict[str, Any]:
        return {"type": "all"}

    def next_bucket_start(self, ms: int) -> int:
        return ETERNITY.end

    def _floor(self, t: np.ndarray) -> np.ndarray:
        return np.full(t.shape, ETERNITY.start, dtype=np.int64)


@dataclass(frozen=True, repr=False)
class DurationGranularity(Granularity):
    """Fixed-length buckets of ``duration`` ms aligned on ``origin`` (kept as ``origin`` mod ``duration``)."""

    kind: ClassVar[str] = "duration"
    duration: int
    origin: int = 0

    @cached_property
    def name(self) -> str:
        origin = f", origin={format_instant(self.origin)}" if self.origin else ""
        return f"duration({self.duration}ms{origin})"

    def to_json(self) -> dict[str, Any]:
        return {"type": "duration", "duration": self.duration, "origin": format_instant(self.origin)}

    def next_bucket_start(self, ms: int) -> int:
        return int(ms) + self.duration

    def _floor(self, t: np.ndarray) -> np.ndarray:
        return floor_to(t, self.duration, self.origin)


@dataclass(frozen=True, repr=False)
class PeriodGranularity(Granularity):
    """An ISO-8601 period with an optional time zone (``None`` is UTC) and origin (``None`` is local 1970-01-01)."""

    kind: ClassVar[str] = "period"
    period: Period
    time_zone: TimeZone | None = None
    origin: int | None = None

    @cached_property
    def name(self) -> str:
        if self.time_zone is None and self.origin is None:
            std = _STANDARD_BY_PERIOD.get(str(self.period))
            if std is not None and _STANDARD[std].period == self.period:
                return std
        parts = [str(self.period)]
        if self.time_zone is not None:
            parts.append(self.time_zone.id)
        if self.origin is not None:
            parts.append(f"origin={format_instant(self.origin)}")
        return f"period({', '.join(parts)})"

    def to_json(self) -> str | dict[str, Any]:
        """The name for the standard period granularities (``PeriodGranularity.serialize`` keeps the pre-#3850 enum
        form); otherwise an object with ``type``, ``period``, ``timeZone`` and ``origin`` (null when not set)."""
        if self.is_standard:
            return self.name
        return {
            "type": "period",
            "period": str(self.period),
            "timeZone": self._zone.id,
            "origin": format_instant(self.origin) if self.origin is not None else None,
        }

    def next_bucket_start(self, ms: int) -> int:
        return self._buckets.add(int(ms), 1)

    def _floor(self, t: np.ndarray) -> np.ndarray:
        return self._buckets.floor(t)

    @property
    def _zone(self) -> TimeZone:
        return self.time_zone or UTC

    @cached_property
    def _buckets(self) -> PeriodBuckets:
        return PeriodBuckets(self.period, self._zone, self.origin, self.to_json())


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


def _parse_object(value: dict[str, Any], path: str) -> Granularity:
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
        return Granularity.period_granularity(
            value["period"], None if tz is None else TimeZone.parse(tz, _join(path, "timeZone")), origin_ms, path
        )
    duration = value.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise SpecError(_join(path, "duration"), duration, "a duration granularity needs 'duration' in milliseconds")
    return Granularity.duration_granularity(duration, origin_ms or 0, path)


NONE = NoneGranularity()
ALL = AllGranularity()
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

_STANDARD: dict[str, PeriodGranularity] = {name: Granularity.period_granularity(p) for name, p in STANDARD_PERIODS.items()}
_BY_NAME: dict[str, Granularity] = {"NONE": NONE, "ALL": ALL, **_STANDARD}
_STANDARD_BY_PERIOD = {p: name for name, p in STANDARD_PERIODS.items()}
