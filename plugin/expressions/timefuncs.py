"""Time functions: timestamp_floor, timestamp_extract, timestamp_parse, timestamp_format."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import SpecError
from druidflow.expressions.registry import checks, function, literal_check
from druidflow.expressions.timeformat import (
    JodaPattern,
    LocalFields,
    format_timestamps,
    parse_timestamps,
)
from druidflow.expressions.tree import Call, Ctx
from druidflow.expressions.values import (
    DOUBLE,
    LONG,
    STRING,
    Val,
    as_long,
    as_string,
    on_array,
    to_numpy,
)
from druidflow.granularity import Granularity
from druidflow.timezones import UTC, TimeZone

# -- time ---------------------------------------------------------------------------------------------------------


def zone_arg(call: Call, i: int) -> TimeZone:
    if i >= len(call.args) or call.literal(i) is None:
        return UTC
    return TimeZone.parse(call.literal(i), "")


def check_zone(i: int) -> Callable[[Call], None]:
    def check(call: Call) -> None:
        literal_check(i, (STRING,), "a literal time zone")(call)
        zone_arg(call, i)

    return check


def _floor_granularity(call: Call) -> Granularity:
    origin = call.literal(2) if len(call.args) > 2 else None
    if origin == "":
        origin = None
    tz = zone_arg(call, 3)
    return Granularity.period_granularity(call.literal(1), None if tz.is_utc else tz, origin)


def _check_floor(call: Call) -> None:
    literal_check(1, (STRING,), "a literal ISO-8601 period such as 'PT1H'", optional=False)(call)
    literal_check(2, (STRING, LONG), "a literal origin (ISO-8601 or epoch ms)")(call)
    check_zone(3)(call)
    _floor_granularity(call)


@function("timestamp_floor", 2, 4, literals=(1, 2, 3), validate=_check_floor)
def _timestamp_floor(call: Call, ctx: Ctx) -> Val:
    t = as_long(call.args[0].evaluate(ctx))
    g = _floor_granularity(call)
    return Val(on_array(g.truncate, t), LONG)


_EXTRACT_UNITS = ("EPOCH", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "DOW", "ISODOW", "DOY", "WEEK", "MONTH",
                  "QUARTER", "YEAR", "ISOYEAR", "DECADE", "CENTURY", "MILLENNIUM")


def _check_extract(call: Call) -> None:
    unit = call.literal(1)
    if not isinstance(unit, str) or unit.upper() not in _EXTRACT_UNITS:
        raise SpecError("", unit, f"unknown unit; expected one of {', '.join(_EXTRACT_UNITS)}")
    check_zone(2)(call)


@function("timestamp_extract", 2, 3, literals=(1, 2), validate=_check_extract)
def _timestamp_extract(call: Call, ctx: Ctx) -> Val:
    unit = call.literal(1).upper()
    zone = zone_arg(call, 2)
    t = ctx.array(Val(as_long(call.args[0].evaluate(ctx)), LONG))
    values, mask = to_numpy(t, len(t), np.int64)
    if unit == "EPOCH":
        return Val(pc.divide(t, 1000), LONG)  # Java's long division: towards zero
    f = LocalFields(values, zone)
    if unit in ("CENTURY", "MILLENNIUM"):
        size = 100.0 if unit == "CENTURY" else 1000.0
        return Val(pa.array(np.ceil(f.year / size), type=pa.float64(), mask=mask), DOUBLE)
    fields: dict[str, Callable[[], np.ndarray]] = {
        "MILLISECOND": lambda: f.millisecond,
        "SECOND": lambda: f.second,
        "MINUTE": lambda: f.minute,
        "HOUR": lambda: f.hour,
        "DAY": lambda: f.day,
        "DOW": lambda: f.day_of_week,
        "ISODOW": lambda: f.day_of_week,
        "DOY": lambda: f.day_of_year,
        "WEEK": lambda: f.iso_week,
        "MONTH": lambda: f.month,
        "QUARTER": lambda: (f.month - 1) // 3 + 1,
        "YEAR": lambda: f.year,
        "ISOYEAR": lambda: f.iso_year,
        "DECADE": lambda: np.trunc(f.year / 10).astype(np.int64),  # Java's int division
    }
    out = fields[unit]()
    return Val(pa.array(out, type=pa.int64(), mask=mask), LONG)


def _check_joda(i: int, parse: bool) -> Callable[[Call], None]:
    def check(call: Call) -> None:
        literal_check(i, (STRING,), "a literal Joda-Time pattern")(call)
        if i < len(call.args) and call.literal(i) is not None:
            pattern = JodaPattern.of(call.literal(i), parse)
            if parse:
                try:
                    pc.extract_regex(pa.array([""]), pattern.regex())
                except pa.ArrowInvalid:
                    raise SpecError("", pattern.text, "each field may appear only once in a parse pattern") from None

    return check


@function("timestamp_parse", 1, 3, literals=(1, 2), validate=checks(_check_joda(1, True), check_zone(2)))
def _timestamp_parse(call: Call, ctx: Ctx) -> Val:
    s = ctx.array(Val(as_string(call.args[0].evaluate(ctx)), STRING))
    pattern = call.literal(1) if len(call.args) > 1 else None
    return Val(parse_timestamps(s, pattern, zone_arg(call, 2)), LONG)


@function("timestamp_format", 1, 3, literals=(1, 2), validate=checks(_check_joda(1, False), check_zone(2)))
def _timestamp_format(call: Call, ctx: Ctx) -> Val:
    t = ctx.array(Val(as_long(call.args[0].evaluate(ctx)), LONG))
    pattern = call.literal(1) if len(call.args) > 1 else None
    return Val(format_timestamps(t, pattern, zone_arg(call, 2)), STRING)

