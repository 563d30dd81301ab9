"""Calendar fields of epoch-ms instants, Joda-Time patterns, and parsing / formatting timestamps, vectorised."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.calendar_arrays import (
    civil_from_days_array,
    days_from_civil_array,
    floor_div,
)
from druidflow.exceptions import SpecError
from druidflow.expressions.values import Data, to_numpy
from druidflow.intervals import MS_DAY, MS_HOUR, MS_MINUTE, MS_SECOND
from druidflow.timezones import UTC, TimeZone


class LocalFields:
    """Wall-clock fields of epoch-ms instants in a time zone, computed lazily and vectorised."""

    def __init__(self, ms: np.ndarray, zone: TimeZone) -> None:
        self.offsets: np.ndarray = zone.offsets(ms)
        self.local: np.ndarray = ms + self.offsets
        self.days: np.ndarray = floor_div(self.local, MS_DAY)
        self.ms_of_day: np.ndarray = self.local - self.days * MS_DAY
        year, month, day = civil_from_days_array(self.days)
        self.year: np.ndarray = year
        self.month: np.ndarray = month
        self.day: np.ndarray = day

    @property
    def hour(self) -> np.ndarray:
        return self.ms_of_day // MS_HOUR

    @property
    def minute(self) -> np.ndarray:
        return self.ms_of_day // MS_MINUTE % 60

    @property
    def second(self) -> np.ndarray:
        return self.ms_of_day // MS_SECOND % 60

    @property
    def millisecond(self) -> np.ndarray:
        return self.ms_of_day % MS_SECOND

    @property
    def day_of_week(self) -> np.ndarray:
        out: np.ndarray = np.mod(self.days + 3, 7) + 1  # 1970-01-01 was a Thursday; Monday is 1
        return out

    @property
    def day_of_year(self) -> np.ndarray:
        jan1: np.ndarray = days_from_civil_array(self.year, np.ones_like(self.year), np.ones_like(self.year))
        out: np.ndarray = self.days - jan1 + 1
        return out

    def _iso(self) -> tuple[np.ndarray, np.ndarray]:
        thursday = self.days - np.mod(self.days + 3, 7) + 3
        year = civil_from_days_array(thursday)[0]
        jan1 = days_from_civil_array(year, np.ones_like(year), np.ones_like(year))
        return year, (thursday - jan1) // 7 + 1

    @property
    def iso_week(self) -> np.ndarray:
        return self._iso()[1]

    @property
    def iso_year(self) -> np.ndarray:
        return self._iso()[0]


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_NUMERIC_LETTERS = set("yYxMdDHhKkmsSwe")
_FORMAT_LETTERS = set("yYxMdDHhKkmsSaEewZ")
_PARSE_LETTERS = set("yYMdHhKkmsSaEZ")


@dataclass(frozen=True)
class JodaPattern:
    """A Joda-Time ``DateTimeFormat`` pattern split into literal text and (letter, count) fields."""

    text: str
    tokens: tuple[tuple[str, Any], ...]

    @staticmethod
    @lru_cache(maxsize=256)
    def of(text: str, parse: bool) -> JodaPattern:
        tokens: list[tuple[str, Any]] = []
        i = 0
        allowed = _PARSE_LETTERS if parse else _FORMAT_LETTERS
        while i < len(text):
            c = text[i]
            if c == "'":
                j = i + 1
                lit = []
                while True:
                    if j >= len(text):
                        raise SpecError("", text, f"unterminated quote in the pattern at position {i}")
                    if text[j] == "'":
                        if j + 1 < len(text) and text[j + 1] == "'":
                            lit.append("'")
                            j += 2
                            continue
                        break
                    lit.append(text[j])
                    j += 1
                tokens.append(("lit", "'" if j == i + 1 else "".join(lit)))
                i = j + 1
                continue
            if c.isascii() and c.isalpha():
                j = i
                while j < len(text) and text[j] == c:
                    j += 1
                if c not in allowed:
                    raise SpecError("", text, f"pattern letter {c!r} is not supported for {'parsing' if parse else 'formatting'}")
                tokens.append(("field", (c, j - i)))
                i = j
                continue
            tokens.append(("lit", c))
            i += 1
        return JodaPattern(text, tuple(tokens))

    # -- parsing --------------------------------------------------------------------------------------------------

    def regex(self) -> str:
        out = ["(?i)^"]
        fields = self.tokens
        for k, (kind, value) in enumerate(fields):
            if kind == "lit":
                out.append(re.escape(value))
                continue
            c, count = value
            nxt = fields[k + 1] if k + 1 < len(fields) else None
            adjacent = nxt is not None and nxt[0] == "field" and nxt[1][0] in _NUMERIC_LETTERS
            if c in "yY":
                out.append(r"(?P<yy>\d{2})" if count == 2 else (rf"(?P<y>[+-]?\d{{{count}}})" if adjacent else r"(?P<y>[+-]?\d{1,9})"))
            elif c == "M" and count >= 3:
                out.append(r"(?P<mon>[a-z]{3})" if count == 3 else r"(?P<mon>[a-z]+)")
            elif c == "S":
                out.append(rf"(?P<S>\d{{{count}}})" if adjacent else r"(?P<S>\d{1,9})")
            elif c == "a":
                out.append(r"(?P<a>am|pm)")
            elif c == "E":
                out.append(r"[a-z]+")
            elif c == "Z":
                out.append(r"(?P<Z>z|[+-]\d{2}:?\d{2})" if count < 3 else r"(?P<zid>[a-z_]+(?:/[a-z_+\-0-9]+)*)")
            else:
                group = {"M": "M", "d": "d", "H": "H", "h": "h", "K": "K", "k": "k", "m": "m", "s": "s"}[c]
                out.append(rf"(?P<{group}>\d{{{count}}})" if adjacent else rf"(?P<{group}>\d{{1,2}})")
        out.append("$")
        return "".join(out)

    # -- formatting -----------------------------------------------------------------------------------------------

    def format(self, f: LocalFields, zone: TimeZone, n: int) -> list[Data]:
        parts: list[Data] = []
        for kind, value in self.tokens:
            if kind == "lit":
                parts.append(pa.scalar(value))
                continue
            c, count = value
            parts.append(_format_field(c, count, f, zone))
        return parts


def _padded(values: np.ndarray, width: int) -> pa.Array:
    text = pc.cast(pa.array(np.abs(values)), pa.string())
    text = pc.utf8_lpad(text, width, "0") if width > 1 else text
    if (values < 0).any():
        text = pc.if_else(pa.array(values < 0), pc.binary_join_element_wise("-", text, ""), text)
    return text


def _names(table: list[str], index: np.ndarray, count: int) -> pa.Array:
    names = pa.array([s[:3] if count <= 3 else s for s in table])
    return names.take(pa.array(index))


def _format_field(c: str, count: int, f: LocalFields, zone: TimeZone) -> pa.Array:
    if c in "yYx":
        year = f.year if c != "x" else f.iso_year
        return _padded(np.mod(year, 100), 2) if count == 2 else _padded(year, count)
    if c == "M":
        return _padded(f.month, count) if count <= 2 else _names(_MONTHS, f.month - 1, count)
    if c == "d":
        return _padded(f.day, count)
    if c == "D":
        return _padded(f.day_of_year, count)
    if c == "H":
        return _padded(f.hour, count)
    if c == "h":
        return _padded((f.hour + 11) % 12 + 1, count)
    if c == "K":
        return _padded(f.hour % 12, count)
    if c == "k":
        return _padded(np.where(f.hour == 0, 24, f.hour), count)
    if c == "m":
        return _padded(f.minute, count)
    if c == "s":
        return _padded(f.second, count)
    if c == "S":
        millis = _padded(f.millisecond, 3)
        return pc.utf8_slice_codeunits(millis, 0, count) if count <= 3 else pc.utf8_rpad(millis, count, "0")
    if c == "a":
        return pc.if_else(pa.array(f.hour < 12), "AM", "PM")
    if c == "E":
        return _names(_DAYS, f.day_of_week - 1, count)
    if c == "e":
        return _padded(f.day_of_week, count)
    if c == "w":
        return _padded(f.iso_week, count)
    # Z: offsets
    if count >= 3:
        return pa.repeat(pa.scalar(zone.id), len(f.offsets))
    return _offset_text(f.offsets, count == 2, zero_as_z=False)


def _offset_text(offsets: np.ndarray, colon: bool, zero_as_z: bool) -> pa.Array:
    sign = np.where(offsets < 0, "-", "+")
    mag = np.abs(offsets) // MS_MINUTE
    hh = _padded(mag // 60, 2)
    mm = _padded(mag % 60, 2)
    text = pc.binary_join_element_wise(pa.array(sign), hh, ":" if colon else "", mm, "")
    if zero_as_z:
        text = pc.if_else(pa.array(offsets == 0), "Z", text)
    return text


def format_timestamps(times: pa.Array, pattern: Optional[str] = None, zone: TimeZone = UTC) -> pa.Array:
    """Epoch-ms instants as strings: with a Joda pattern in ``zone``, else ISO ``2024-01-01T00:00:00.000Z`` (UTC)."""
    n = len(times)
    if n == 0:
        return pa.array([], pa.string())
    values, mask = to_numpy(times, n, np.int64)
    if pattern is None:
        joda, zone = _ISO_FORMAT, UTC
    else:
        joda = JodaPattern.of(pattern, False)
    f = LocalFields(values, zone)
    if pattern is None:
        parts = joda.format(f, zone, n)
        parts[-1] = _offset_text(f.offsets, True, zero_as_z=True)
    else:
        parts = joda.format(f, zone, n)
    out = pc.binary_join_element_wise(*parts, "") if len(parts) > 1 else parts[0]
    if isinstance(out, pa.Scalar):
        out = pa.repeat(out, n)
    if mask is not None:
        out = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), out)
    return out


_ISO_FORMAT = JodaPattern.of("yyyy-MM-dd'T'HH:mm:ss.SSSZZ", False)
_ISO_PARSE = (
    r"^(?P<y>[+-]?\d{4,9})(?:-(?P<M>\d{2})(?:-(?P<d>\d{2}))?)?"
    r"(?:[T ](?:(?P<H>\d{2})(?::?(?P<m>\d{2})(?::?(?P<s>\d{2})(?:[.,](?P<S>\d{1,9}))?)?)?)?"
    r"(?P<Z>Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_timestamps(strings: pa.Array, pattern: Optional[str] = None, zone: TimeZone = UTC) -> pa.Array:
    """Strings as epoch ms (int64): with a Joda pattern, or ISO-8601 with ``T`` or a space when none.

    Wall-clock times are in ``zone`` unless the text carries an offset. Unparseable text, impossible dates and
    wall-clock times skipped by a DST change give null, as Druid's ``timestamp_parse`` does.
    """
    n = len(strings)
    if n == 0:
        return pa.array([], pa.int64())
    regex = _ISO_PARSE if pattern is None else JodaPattern.of(pattern, True).regex()
    parts = pc.extract_regex(strings, regex)
    names = [parts.type.field(i).name for i in range(parts.type.num_fields)]
    matched = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)

    def number(name: str, default: int) -> np.ndarray:
        if name not in names:
            return np.full(n, default, dtype=np.int64)
        col = parts.field(name)
        col = pc.if_else(pc.or_kleene(pc.is_null(col), pc.equal(col, "")), str(default), col)
        return np.asarray(pc.cast(pc.utf8_ltrim(col, "+"), pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)

    year = number("y", 1970)
    if "yy" in names:
        two = number("yy", 70)
        pivot = _dt.date.today().year - 30  # Joda's two-digit years: within 50 years of (now - 30)
        base = pivot - 50
        year = np.where(parts.field("yy").is_valid().to_numpy(zero_copy_only=False), base + np.mod(two - base, 100), year)
    month = number("M", 1)
    if "mon" in names:
        text = pc.utf8_lower(pc.fill_null(parts.field("mon"), ""))
        full = pc.index_in(text, value_set=pa.array([m.lower() for m in _MONTHS]))
        short = pc.index_in(text, value_set=pa.array([m[:3].lower() for m in _MONTHS]))
        idx = pc.coalesce(full, short)
        month = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64) + 1
    day = number("d", 1)
    hour = number("H", 0)
    valid = matched & (month >= 1) & (month <= 12) & (day >= 1) & (hour <= 23)
    for clock, lo, hi in (("h", 1, 12), ("K", 0, 11), ("k", 1, 24)):
        if clock in names:
            h = number(clock, lo)
            valid &= (h >= lo) & (h <= hi)
            hour = np.mod(h, 12) if clock != "k" else np.mod(h, 24)
    if "a" in names:
        pm = np.asarray(pc.equal(pc.utf8_lower(pc.fill_null(parts.field("a"), "")), "pm").to_numpy(zero_copy_only=False), dtype=bool)
        hour = np.where(pm, np.mod(hour, 12) + 12, np.mod(hour, 12)) if ("h" in names or "K" in names) else hour
    minute = number("m", 0)
    second = number("s", 0)
    millis = np.zeros(n, dtype=np.int64)
    if "S" in names:
        frac = pc.fill_null(parts.field("S"), "")
        frac3 = pc.utf8_slice_codeunits(pc.utf8_rpad(frac, 3, "0"), 0, 3)
        millis = np.asarray(pc.cast(frac3, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    valid &= (minute <= 59) & (second <= 59)
    month_c = np.clip(month, 1, 12)
    days = days_from_civil_array(year, month_c, np.ones(n, dtype=np.int64))
    next_month = days_from_civil_array(year + (month_c == 12), np.where(month_c == 12, 1, month_c + 1), np.ones(n, dtype=np.int64))
    valid &= day <= next_month - days
    local = (days + day - 1) * MS_DAY + hour * MS_HOUR + minute * MS_MINUTE + second * MS_SECOND + millis

    out = np.zeros(n, dtype=np.int64)
    has_offset = np.zeros(n, dtype=bool)
    if "Z" in names:
        z = pc.fill_null(parts.field("Z"), "")
        has_offset = np.asarray(pc.not_equal(z, "").to_numpy(zero_copy_only=False), dtype=bool) & matched
        offset = _offset_millis(z)
        out = np.where(has_offset, local - offset, out)
    by_zone = valid & ~has_offset
    if "zid" in names:
        ids = pc.fill_null(parts.field("zid"), "")
        for zone_id in pc.unique(pc.filter(ids, pa.array(by_zone))).to_pylist():
            rows = by_zone & np.asarray(pc.equal(ids, zone_id).to_numpy(zero_copy_only=False), dtype=bool)
            try:
                z_rows = TimeZone.parse(zone_id, "")
            except SpecError:
                valid &= ~rows
                continue
            out[rows], ok = _from_local_strict(local[rows], z_rows)
            valid[np.flatnonzero(rows)[~ok]] = False
    elif by_zone.any():
        out[by_zone], ok = _from_local_strict(local[by_zone], zone)
        valid[np.flatnonzero(by_zone)[~ok]] = False
    return pa.array(out, type=pa.int64(), mask=~valid)


def _from_local_strict(local: np.ndarray, zone: TimeZone) -> tuple[np.ndarray, np.ndarray]:
    """Instants of local times, and which ones exist (Joda's parser rejects a time inside a DST gap)."""
    if zone.is_fixed:
        return local - zone.fixed_offset_ms, np.ones(local.shape, dtype=bool)
    instants = zone.from_local(local)
    return instants, instants + zone.offsets(instants) == local


def _offset_millis(text: pa.Array) -> np.ndarray:
    parts = pc.extract_regex(text, r"^(?P<sign>[+-])(?P<h>\d{2}):?(?P<m>\d{2})?$")
    sign = np.asarray(pc.equal(pc.fill_null(parts.field("sign"), "+"), "-").to_numpy(zero_copy_only=False), dtype=bool)

    def num(field: str) -> np.ndarray:
        col = pc.fill_null(parts.field(field), "0")
        col = pc.if_else(pc.equal(col, ""), "0", col)
        return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)

    mag = num("h") * MS_HOUR + num("m") * MS_MINUTE
    out: np.ndarray = np.where(sign, -mag, mag)
    return out
