"""Vectorised proleptic Gregorian calendar arithmetic on numpy int64 arrays (like Joda's ISOChronology).

Day numbers count days since 1970-01-01, month indexes months since 1970-01. The ``unit`` helpers take a
:class:`~druidflow.intervals.Period` field name (``days``, ``weeks``, ``months``, ``years``) and back the
calendar bucketing of :mod:`druidflow.granularity`; per-day work is done on small lookup tables
(:func:`day_table`) gathered back per row.
"""

from __future__ import annotations

import numpy as np

from druidflow.intervals import MS_DAY, MS_WEEK, civil_from_days, days_from_civil, days_in_month

# Above this many distinct days/hours in a batch's range, lookup tables stop paying off and we compute per row.
TABLE_LIMIT = 4_000_000


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


def day_table(days: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(table, idx)`` with ``table[idx] == days``: every day of the range when it is small, else the days themselves
    (``idx`` None). Per-day work on ``table`` then costs one gather per row instead of one computation."""
    if days.size == 0:
        return days, None
    lo, hi = int(days.min()), int(days.max())
    if hi - lo >= min(TABLE_LIMIT, 4 * days.size + 64):
        return days, None
    return np.arange(lo, hi + 1, dtype=np.int64), days - lo


def gather(table: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    return table.copy() if idx is None else table[idx]


def bucket_of_days(days: np.ndarray, unit: str) -> np.ndarray:
    if unit == "days":
        return days
    if unit == "weeks":
        return floor_div(days + 3, 7)  # week 0 starts on Monday 1969-12-29 (day -3), as Joda's weeks do
    months = month_index_of_days(days)
    return months if unit == "months" else floor_div(months, 12)


def bucket_start_days(buckets: np.ndarray, unit: str) -> np.ndarray:
    if unit == "days":
        return buckets
    if unit == "weeks":
        return buckets * 7 - 3
    if unit == "months":
        return days_of_month_index(buckets)
    return days_of_month_index(buckets * 12)


def units_between(lo: int, local: np.ndarray, unit: str) -> np.ndarray:
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


def add_units_local(lo: int, counts: np.ndarray, unit: str) -> np.ndarray:
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


def add_months_scalar(local: int, months: int) -> int:
    days, rem = divmod(local, MS_DAY)
    y, m, d = civil_from_days(days)
    y2, m2 = divmod(y * 12 + (m - 1) + months, 12)
    m2 += 1
    return days_from_civil(y2, m2, min(d, days_in_month(y2, m2))) * MS_DAY + rem

