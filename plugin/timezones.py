"""Time zones as Druid's ``timeZone`` fields name them, with scalar and vectorised UTC-offset lookups.

Offsets come from :mod:`zoneinfo`; local wall-clock times are turned back into instants as Joda does (a time that
exists twice resolves to the earlier instant, one in a DST gap moves forward by the gap).
"""

from __future__ import annotations

import datetime as _dt
import re
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from druidflow.calendar_arrays import TABLE_LIMIT
from druidflow.exceptions import SpecError
from druidflow.intervals import MS_DAY, MS_HOUR, MS_MINUTE

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
        offset = local.utcoffset()
        assert offset is not None  # a ZoneInfo always has an offset
        return int(offset // _dt.timedelta(milliseconds=1))

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
        if h_hi - h_lo + 2 > min(TABLE_LIMIT, 4 * ms.size + 64):
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

