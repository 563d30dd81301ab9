"""Granularity: parsing and JSON, Druid's bucketing (UTC, time zones with DST, origins), interval expansion, speed."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from druidflow import granularity as G
from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity, TimeZone
from druidflow.intervals import ETERNITY, MS_DAY, MS_HOUR, Interval, format_instant, parse_instant
from druidflow.specs.base import DruidModel


def ms(text: str) -> int:
    return parse_instant(text)


def iso(value: int) -> str:
    return format_instant(value)


# ---------------------------------------------------------------------------------------------------------------
# Parsing and serialisation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", G.NAMES)
def test_every_name_parses_case_insensitively_and_serialises_back(name):
    for spelling in (name, name.lower(), name.title()):
        g = Granularity.parse(spelling)
        assert g.name == name
    assert Granularity.parse(name).to_json() == (name if name not in ("NONE", "ALL") else {"type": name.lower()})


def test_object_forms():
    assert Granularity.parse({"type": "none"}) is G.NONE
    assert Granularity.parse({"type": "all"}) is G.ALL
    # A period in UTC with no origin *is* the named granularity, and is written back by name, as Druid does.
    assert Granularity.parse({"type": "period", "period": "PT1H", "timeZone": "UTC"}) == G.HOUR
    assert Granularity.parse({"type": "period", "period": "P3M"}).to_json() == "QUARTER"
    la = Granularity.parse({"type": "period", "period": "P1D", "timeZone": "America/Los_Angeles"})
    assert la != G.DAY
    # PeriodGranularity.serialize writes the origin even when it is null.
    assert la.to_json() == {"type": "period", "period": "P1D", "timeZone": "America/Los_Angeles", "origin": None}
    assert Granularity.parse(la.to_json()) == la
    with_origin = Granularity.parse({"type": "period", "period": "PT2H", "origin": "2024-01-01T01:00:00Z"})
    assert with_origin.to_json() == {
        "type": "period", "period": "PT2H", "timeZone": "UTC", "origin": "2024-01-01T01:00:00.000Z"
    }
    assert Granularity.parse(with_origin.to_json()) == with_origin
    d = Granularity.parse({"type": "duration", "duration": 3_600_000, "origin": 1_800_000})
    assert d.to_json() == {"type": "duration", "duration": 3600000, "origin": "1970-01-01T00:30:00.000Z"}
    assert Granularity.parse(d.to_json()) == d


def test_fixed_offset_time_zones():
    g = Granularity.parse({"type": "period", "period": "P1D", "timeZone": "+05:30"})
    assert g.time_zone == TimeZone("+05:30", 5 * MS_HOUR + 30 * 60_000)
    assert g.bucket_start(ms("2024-01-01T20:00:00Z")) == ms("2024-01-01T18:30:00Z")
    assert Granularity.parse({"type": "period", "period": "P1D", "timeZone": "+00:00"}) == G.DAY


@pytest.mark.parametrize(
    "value, message",
    [
        ("DECADE", "unknown granularity"),
        ("hourly", "unknown granularity"),
        (42, "expected a granularity name"),
        ({"type": "weekly"}, "unknown granularity type"),
        ({"type": "period"}, "needs a 'period'"),
        ({"type": "period", "period": "1 hour"}, "ISO-8601 period"),
        ({"type": "period", "period": "PT0S"}, "zero period"),
        ({"type": "period", "period": "PT1H", "timeZone": "Mars/Olympus"}, "unknown time zone"),
        ({"type": "period", "period": "PT1H", "tz": "UTC"}, "unexpected field"),
        ({"type": "duration"}, "needs 'duration'"),
        ({"type": "duration", "duration": 0}, "positive"),
        ({"type": "period", "period": "PT1H", "origin": "yesterday"}, "ISO-8601"),
    ],
)
def test_bad_granularities_name_the_value(value, message):
    with pytest.raises(SpecError) as exc:
        Granularity.parse(value, "granularitySpec.segmentGranularity")
    assert message in str(exc.value)
    assert str(exc.value).startswith("granularitySpec.segmentGranularity")


def test_pydantic_field_accepts_druid_json_and_dumps_it_back():
    class Spec(DruidModel):
        segment_granularity: Granularity = G.DAY
        query_granularity: Granularity = G.NONE

    spec = Spec.parse({"segmentGranularity": "hour", "queryGranularity": {"type": "period", "period": "PT1M"}})
    assert spec.segment_granularity is G.HOUR or spec.segment_granularity == G.HOUR
    assert spec.query_granularity == G.MINUTE
    assert spec.model_dump() == {"segmentGranularity": "HOUR", "queryGranularity": "MINUTE"}
    assert Spec().model_dump() == {"segmentGranularity": "DAY", "queryGranularity": {"type": "none"}}
    assert Spec.model_validate_json(Spec(segment_granularity=G.YEAR).model_dump_json()).segment_granularity == G.YEAR
    with pytest.raises(SpecError) as exc:
        Spec.parse({"segmentGranularity": "FORTNIGHT"}, "dataSchema.granularitySpec")
    assert "dataSchema.granularitySpec.segmentGranularity" in str(exc.value)
    assert "'FORTNIGHT'" in str(exc.value)
    with pytest.raises(ValidationError):
        Spec.model_validate({"segmentGranularity": {"type": "period", "period": "P1D", "timeZone": "Nowhere/City"}})


# ---------------------------------------------------------------------------------------------------------------
# UTC bucketing
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "g, instant, start, end",
    [
        (G.SECOND, "2024-05-17T13:45:12.345Z", "2024-05-17T13:45:12Z", "2024-05-17T13:45:13Z"),
        (G.MINUTE, "2024-05-17T13:45:12.345Z", "2024-05-17T13:45:00Z", "2024-05-17T13:46:00Z"),
        (G.FIVE_MINUTE, "2024-05-17T13:47:12Z", "2024-05-17T13:45:00Z", "2024-05-17T13:50:00Z"),
        (G.TEN_MINUTE, "2024-05-17T13:47:12Z", "2024-05-17T13:40:00Z", "2024-05-17T13:50:00Z"),
        (G.FIFTEEN_MINUTE, "2024-05-17T13:47:12Z", "2024-05-17T13:45:00Z", "2024-05-17T14:00:00Z"),
        (G.THIRTY_MINUTE, "2024-05-17T13:47:12Z", "2024-05-17T13:30:00Z", "2024-05-17T14:00:00Z"),
        (G.HOUR, "2024-05-17T13:47:12Z", "2024-05-17T13:00:00Z", "2024-05-17T14:00:00Z"),
        (G.SIX_HOUR, "2024-05-17T13:47:12Z", "2024-05-17T12:00:00Z", "2024-05-17T18:00:00Z"),
        (G.EIGHT_HOUR, "2024-05-17T13:47:12Z", "2024-05-17T08:00:00Z", "2024-05-17T16:00:00Z"),
        (G.DAY, "2024-05-17T13:47:12Z", "2024-05-17", "2024-05-18"),
        (G.WEEK, "2024-05-17T13:47:12Z", "2024-05-13", "2024-05-20"),  # Friday -> Monday
        (G.WEEK, "2024-05-13T00:00:00Z", "2024-05-13", "2024-05-20"),
        (G.WEEK, "2024-05-19T23:59:59.999Z", "2024-05-13", "2024-05-20"),  # Sunday belongs to the week before
        (G.MONTH, "2024-02-29T23:00:00Z", "2024-02-01", "2024-03-01"),
        (G.QUARTER, "2024-05-17T13:47:12Z", "2024-04-01", "2024-07-01"),
        (G.QUARTER, "2024-01-01T00:00:00Z", "2024-01-01", "2024-04-01"),
        (G.QUARTER, "2024-12-31T23:59:59Z", "2024-10-01", "2025-01-01"),
        (G.YEAR, "2024-05-17T13:47:12Z", "2024-01-01", "2025-01-01"),
        # Before the epoch every bucket still floors (never rounds towards zero).
        (G.HOUR, "1969-12-31T23:59:59.999Z", "1969-12-31T23:00:00Z", "1970-01-01T00:00:00Z"),
        (G.DAY, "1969-12-31T00:00:00.001Z", "1969-12-31", "1970-01-01"),
        (G.WEEK, "1970-01-01T00:00:00Z", "1969-12-29", "1970-01-05"),
        (G.MONTH, "1969-12-31T23:59:59Z", "1969-12-01", "1970-01-01"),
        (G.QUARTER, "1969-11-15T00:00:00Z", "1969-10-01", "1970-01-01"),
        (G.YEAR, "1900-06-01T00:00:00Z", "1900-01-01", "1901-01-01"),
        (G.SIX_HOUR, "1969-12-31T17:00:00Z", "1969-12-31T12:00:00Z", "1969-12-31T18:00:00Z"),
    ],
)
def test_utc_buckets(g, instant, start, end):
    b = g.bucket(ms(instant))
    assert (iso(b.start), iso(b.end)) == (iso(ms(start)), iso(ms(end)))
    assert g.truncate(np.array([ms(instant)]))[0] == ms(start)
    assert g.next_bucket_start(b.start) == b.end
    assert g.is_aligned(b) and not g.is_aligned(Interval(b.start, b.end + 1))


def test_negative_epoch_times_floor_in_every_vectorised_path():
    t = np.array([-1, -MS_HOUR, -MS_HOUR - 1, -MS_DAY + 1, -10 * MS_DAY - 5], dtype=np.int64)
    assert G.HOUR.truncate(t).tolist() == [(x // MS_HOUR) * MS_HOUR for x in t.tolist()]
    assert G.DAY.truncate(t).tolist() == [(x // MS_DAY) * MS_DAY for x in t.tolist()]
    assert G.MONTH.truncate(t).tolist() == [ms("1969-12-01")] * 4 + [ms("1969-12-01")]
    d = Granularity.duration_granularity(7_000, origin=3_000)
    assert d.truncate(np.array([-1, 2_999, 3_000, -4_001])).tolist() == [-4_000, -4_000, 3_000, -11_000]


def test_none_and_all():
    t = np.array([ms("2024-01-01T12:34:56.789Z"), -5], dtype=np.int64)
    assert G.NONE.truncate(t).tolist() == t.tolist()
    assert G.NONE.bucket(17) == Interval(17, 18)
    assert G.ALL.truncate(t).tolist() == [ETERNITY.start, ETERNITY.start]
    assert G.ALL.bucket(ms("2024-01-01")) == ETERNITY
    assert list(G.ALL.iter_buckets(Interval.parse("2024-01-01/2024-02-01"))) == [ETERNITY]


def test_truncate_keeps_the_input_kind_and_nulls():
    values = [ms("2024-01-01T10:30:00Z"), None, ms("2024-01-02T23:59:59Z")]
    out = G.DAY.truncate(pa.array(values, type=pa.int64()))
    assert isinstance(out, pa.Array) and out.type == pa.int64()
    assert out.to_pylist() == [ms("2024-01-01"), None, ms("2024-01-02")]
    sliced = G.DAY.truncate(pa.array(values, type=pa.int64()).slice(1))
    assert sliced.to_pylist() == [None, ms("2024-01-02")]
    chunked = G.HOUR.truncate(pa.chunked_array([[ms("2024-01-01T10:30:00Z")], [None, ms("2024-01-01T11:59:00Z")]]))
    assert isinstance(chunked, pa.ChunkedArray) and chunked.num_chunks == 2
    assert chunked.to_pylist() == [ms("2024-01-01T10:00:00Z"), None, ms("2024-01-01T11:00:00Z")]
    ts = G.DAY.truncate(pa.array([ms("2024-01-01T10:30:00Z")], type=pa.timestamp("ms")))
    assert ts.type == pa.timestamp("ms") and ts.cast(pa.int64()).to_pylist() == [ms("2024-01-01")]
    assert G.DAY.truncate(pa.array([], type=pa.int64())).to_pylist() == []
    assert G.DAY.truncate(np.array([], dtype=np.int64)).tolist() == []


# ---------------------------------------------------------------------------------------------------------------
# Time zones, DST and origins
# ---------------------------------------------------------------------------------------------------------------

LA = {"type": "period", "timeZone": "America/Los_Angeles"}


def test_day_in_a_dst_zone_has_23_and_25_hour_buckets():
    day = Granularity.parse({**LA, "period": "P1D"})
    spring = day.bucket(ms("2024-03-10T12:00:00Z"))  # 05:00 PDT on the day clocks go forward
    assert (iso(spring.start), iso(spring.end)) == ("2024-03-10T08:00:00.000Z", "2024-03-11T07:00:00.000Z")
    fall = day.bucket(ms("2024-11-03T09:30:00Z"))  # 01:30 PST, the second 01:30 of that day
    assert (iso(fall.start), iso(fall.end)) == ("2024-11-03T07:00:00.000Z", "2024-11-04T08:00:00.000Z")
    buckets = day.expand([Interval.parse("2024-03-09T12:00:00Z/2024-03-11T12:00:00Z")])
    assert [(b.end - b.start) // MS_HOUR for b in buckets] == [24, 23, 24]
    assert [iso(b.start) for b in buckets] == [
        "2024-03-09T08:00:00.000Z", "2024-03-10T08:00:00.000Z", "2024-03-11T07:00:00.000Z"
    ]


def test_hour_in_a_dst_zone_keeps_both_repeated_hours():
    hour = Granularity.parse({**LA, "period": "PT1H"})
    first, second = ms("2024-11-03T08:30:00Z"), ms("2024-11-03T09:30:00Z")  # 01:30 PDT and 01:30 PST
    assert hour.truncate(np.array([first, second])).tolist() == [ms("2024-11-03T08:00:00Z"), ms("2024-11-03T09:00:00Z")]
    assert hour.bucket(first).end == ms("2024-11-03T09:00:00Z")


def test_week_month_year_in_a_zone_start_at_local_midnight():
    week = Granularity.parse({**LA, "period": "P1W"})
    assert iso(week.bucket_start(ms("2024-05-13T06:00:00Z"))) == "2024-05-06T07:00:00.000Z"  # still Sunday in LA
    month = Granularity.parse({"type": "period", "period": "P1M", "timeZone": "Europe/Berlin"})
    assert iso(month.bucket_start(ms("2024-04-15T00:00:00Z"))) == "2024-03-31T22:00:00.000Z"
    assert iso(month.next_bucket_start(ms("2024-03-31T22:00:00Z"))) == "2024-04-30T22:00:00.000Z"
    assert iso(month.bucket_start(ms("2024-03-15T00:00:00Z"))) == "2024-02-29T23:00:00.000Z"  # CET before the switch
    quarter = Granularity.parse({"type": "period", "period": "P3M", "timeZone": "Asia/Tokyo"})
    assert iso(quarter.bucket_start(ms("2024-06-30T16:00:00Z"))) == "2024-06-30T15:00:00.000Z"  # July 1 in Tokyo
    year = Granularity.parse({**LA, "period": "P1Y"})
    assert iso(year.bucket_start(ms("2024-01-01T07:59:59Z"))) == "2023-01-01T08:00:00.000Z"


def test_half_hour_offset_zone_buckets_are_off_the_utc_hour():
    hour = Granularity.parse({"type": "period", "period": "PT1H", "timeZone": "Asia/Kolkata"})
    assert iso(hour.bucket_start(ms("2024-01-01T10:15:00Z"))) == "2024-01-01T09:30:00.000Z"


def test_multi_hour_periods_count_elapsed_hours_from_local_midnight_1970():
    six = Granularity.parse({**LA, "period": "PT6H"})
    # Origin 1970-01-01T00:00 PST = 08:00Z; six elapsed hours later in summer is 01:00 PDT, not midnight.
    assert iso(six.bucket_start(ms("2024-07-01T12:00:00Z"))) == "2024-07-01T08:00:00.000Z"
    assert iso(six.bucket_start(ms("2024-01-01T12:00:00Z"))) == "2024-01-01T08:00:00.000Z"


def test_origins_shift_buckets():
    two_hours = Granularity.parse({"type": "period", "period": "PT2H", "origin": "2000-01-01T01:00:00Z"})
    assert iso(two_hours.bucket_start(ms("2024-01-01T00:30:00Z"))) == "2023-12-31T23:00:00.000Z"
    assert iso(two_hours.bucket_start(ms("1969-01-01T02:30:00Z"))) == "1969-01-01T01:00:00.000Z"
    day_at_six = Granularity.parse({"type": "period", "period": "P1D", "origin": "2024-01-01T06:00:00Z"})
    assert iso(day_at_six.bucket_start(ms("2024-03-05T05:59:59Z"))) == "2024-03-04T06:00:00.000Z"
    two_days = Granularity.parse({"type": "period", "period": "P2D"})
    assert iso(two_days.bucket_start(ms("1970-01-04T10:00:00Z"))) == "1970-01-03T00:00:00.000Z"
    assert iso(two_days.bucket_start(ms("1969-12-31T10:00:00Z"))) == "1969-12-30T00:00:00.000Z"
    month_mid = Granularity.parse({"type": "period", "period": "P1M", "origin": "2024-01-15T00:00:00Z"})
    assert iso(month_mid.bucket_start(ms("2024-03-14T23:00:00Z"))) == "2024-02-15T00:00:00.000Z"
    assert iso(month_mid.bucket_start(ms("2024-03-15T00:00:00Z"))) == "2024-03-15T00:00:00.000Z"


def test_compound_periods():
    ninety = Granularity.parse({"type": "period", "period": "PT1H30M"})
    assert iso(ninety.bucket_start(ms("1970-01-01T02:00:00Z"))) == "1970-01-01T01:30:00.000Z"
    month_and_day = Granularity.parse({"type": "period", "period": "P1M1D"})
    starts = [iso(b.start) for b in month_and_day.iter_buckets(Interval.parse("1970-01-01/1970-04-05"))]
    assert starts == ["1970-01-01T00:00:00.000Z", "1970-02-02T00:00:00.000Z", "1970-03-03T00:00:00.000Z",
                      "1970-04-04T00:00:00.000Z"]
    assert iso(month_and_day.bucket_start(ms("1970-03-02T23:00:00Z"))) == "1970-02-02T00:00:00.000Z"
    day_and_half = Granularity.parse({**LA, "period": "P1DT12H", "origin": "2024-01-01T08:00:00Z"})
    t = np.array([ms("2024-03-10T12:00:00Z"), ms("2024-11-03T12:00:00Z")])
    assert day_and_half.truncate(t).tolist() == [day_and_half.bucket_start(int(x)) for x in t]


# A brute-force reference for single-unit floors in a zone, written against Python's zoneinfo:
# floor the local fields, then map back keeping the instant's own offset when it is valid there, else the
# earlier instant of a repeated time (fold=0) or the shifted-forward time of a skipped one (also fold=0).
def _reference_floor(instant_ms: int, zone: str, unit: str) -> int:
    tz = zoneinfo.ZoneInfo(zone)
    utc = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=instant_ms)
    local = utc.astimezone(tz)
    offset = local.utcoffset()
    naive = local.replace(tzinfo=None)
    if unit == "hour":
        if offset.total_seconds() % 3600 == 0:
            floored = naive.replace(minute=0, second=0, microsecond=0)
        else:  # Joda floors hours with elapsed arithmetic on the instant's own offset
            shifted = (utc + offset).replace(tzinfo=None)
            return _to_ms(shifted.replace(minute=0, second=0, microsecond=0) - offset)
        return _to_ms(floored - offset)
    floored = naive.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        floored -= dt.timedelta(days=floored.weekday())
    elif unit == "month":
        floored = floored.replace(day=1)
    elif unit == "year":
        floored = floored.replace(month=1, day=1)
    for fold in (0, 1):
        if floored.replace(tzinfo=tz, fold=fold).utcoffset() == offset and _roundtrips(floored, tz, fold):
            return _to_ms(floored - offset)
    return _to_ms(floored.replace(tzinfo=tz, fold=0).astimezone(dt.timezone.utc).replace(tzinfo=None))


def _roundtrips(naive: dt.datetime, tz: zoneinfo.ZoneInfo, fold: int) -> bool:
    aware = naive.replace(tzinfo=tz, fold=fold)
    return aware.astimezone(dt.timezone.utc).astimezone(tz).replace(tzinfo=None) == naive


def _to_ms(naive_utc: dt.datetime) -> int:
    return (naive_utc - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)


ZONES = ["America/Los_Angeles", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "Australia/Lord_Howe",
         "America/Sao_Paulo", "Pacific/Chatham", "America/Havana"]
PERIODS = {"hour": "PT1H", "day": "P1D", "week": "P1W", "month": "P1M", "year": "P1Y"}


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("unit", list(PERIODS))
def test_zoned_floors_match_a_brute_force_reference(zone, unit):
    g = Granularity.parse({"type": "period", "period": PERIODS[unit], "timeZone": zone})
    rng = np.random.default_rng(hash((zone, unit)) % 2**32)
    # Random instants 1950..2040, plus every instant within two hours of each DST transition, minute by minute.
    t = rng.integers(ms("1950-01-01"), ms("2040-01-01"), 300)
    transitions = _transitions(zone, 2010, 2040)  # 2038+ checks the rules past the tz files' explicit tables
    near = (transitions[:, None] + np.arange(-120, 121, 17)[None, :] * 60_000).ravel()
    t = np.concatenate([t, near]).astype(np.int64)
    got = g.truncate(t)
    want = np.array([_reference_floor(int(x), zone, unit) for x in t])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(iso(int(t[i])), iso(int(got[i])), iso(int(want[i]))) for i in bad[:5]]
    # bucket_start is the same computation, one instant at a time
    for x in t[:20]:
        assert g.bucket_start(int(x)) == g.truncate(np.array([x]))[0]


def _transitions(zone: str, y0: int, y1: int) -> np.ndarray:
    tz = TimeZone.parse(zone)
    hours = np.arange(ms(f"{y0}-01-01") // MS_HOUR, ms(f"{y1}-01-01") // MS_HOUR, dtype=np.int64) * MS_HOUR
    offs = tz.offsets(hours)
    return hours[1:][offs[1:] != offs[:-1]]


@pytest.mark.parametrize("zone", ZONES)
def test_vectorised_offsets_match_scalar_offsets(zone):
    tz = TimeZone.parse(zone)
    rng = np.random.default_rng(7)
    t = np.concatenate([rng.integers(ms("1940-01-01"), ms("2060-01-01"), 300), _transitions(zone, 2000, 2010) - 1,
                        _transitions(zone, 2000, 2010)])
    assert tz.offsets(t).tolist() == [tz.offset(int(x)) for x in t]


def test_dst_buckets_tile_time_without_gaps_or_overlaps():
    # Joda's buckets are not all fixed points of bucketStart where a DST shift is not whole hours (Lord Howe's hour
    # buckets) or skips a local midnight (Sao Paulo's day after the switch starts at 01:00, as Druid's increment
    # keeps the local time), so those combinations are left out.
    for zone, periods in (("America/Los_Angeles", ("PT1H", "PT6H", "P1D", "P1W", "P1M", "P3M")),
                          ("America/Sao_Paulo", ("PT1H", "P1M")),
                          ("Australia/Lord_Howe", ("P1D", "P1M", "P1Y"))):
        for period in periods:
            g = Granularity.parse({"type": "period", "period": period, "timeZone": zone})
            buckets = g.expand([Interval.parse("2017-01-01/2019-01-01")])
            assert all(a.end == b.start for a, b in zip(buckets, buckets[1:])), (zone, period)
            starts = np.array([b.start for b in buckets])
            assert g.truncate(starts).tolist() == starts.tolist(), (zone, period)
            assert g.truncate(starts - 1).tolist()[1:] == starts.tolist()[:-1], (zone, period)


# ---------------------------------------------------------------------------------------------------------------
# Interval expansion (druid-semantics §1.4) and ordering
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "g, intervals, expected",
    [
        # Expanded outward to whole buckets: a partial first and last day become whole days.
        (G.DAY, ["2024-01-01T12:00:00Z/2024-01-03T01:00:00Z"], ["2024-01-01/2024-01-02", "2024-01-02/2024-01-03",
                                                                  "2024-01-03/2024-01-04"]),
        # An end on a bucket boundary does not pull in the next bucket (bucketStart < end).
        (G.DAY, ["2024-01-01/2024-01-02"], ["2024-01-01/2024-01-02"]),
        (G.DAY, ["2024-01-01T23:59:59.999Z/2024-01-02T00:00:00.001Z"], ["2024-01-01/2024-01-02",
                                                                         "2024-01-02/2024-01-03"]),
        (G.MONTH, ["2024-01-31/2024-03-01"], ["2024-01-01/2024-02-01", "2024-02-01/2024-03-01"]),
        (G.YEAR, ["2024-06-01/P1D"], ["2024-01-01/2025-01-01"]),
        (G.WEEK, ["2024-05-15/2024-05-21"], ["2024-05-13/2024-05-20", "2024-05-20/2024-05-27"]),
        # Overlapping and duplicate intervals give each bucket once, sorted.
        (G.DAY, ["2024-01-03/2024-01-04", "2024-01-01T06:00:00Z/2024-01-01T07:00:00Z", "2024-01-01/2024-01-02"],
         ["2024-01-01/2024-01-02", "2024-01-03/2024-01-04"]),
        # An empty interval on a boundary has no bucket; inside a bucket it still names that bucket.
        (G.DAY, ["2024-01-01/2024-01-01"], []),
        (G.DAY, ["2024-01-01T05:00:00Z/2024-01-01T05:00:00Z"], ["2024-01-01/2024-01-02"]),
    ],
)
def test_interval_expansion(g, intervals, expected):
    got = g.expand([Interval.parse(i) for i in intervals])
    assert got == [Interval.parse(e) for e in expected]


def test_expand_refuses_absurd_bucket_counts():
    with pytest.raises(SpecError, match="more than 1000"):
        G.HOUR.expand([Interval.parse("2000-01-01/2024-01-01")], limit=1000)


def test_finer_than_orders_by_bucket_length_at_the_epoch():
    assert G.NONE.is_finer_than(G.SECOND)
    assert G.HOUR.is_finer_than(G.DAY) and not G.DAY.is_finer_than(G.HOUR)
    assert G.WEEK.is_finer_than(G.MONTH) and G.MONTH.is_finer_than(G.QUARTER) and G.YEAR.is_finer_than(G.ALL)
    assert not G.DAY.is_finer_than(Granularity.parse({**LA, "period": "P1D"}))
    assert Granularity.finest([G.DAY, G.MONTH, G.FIFTEEN_MINUTE, G.HOUR]) == G.FIFTEEN_MINUTE
    assert Granularity.finest([G.ALL, G.NONE]) == G.NONE


# ---------------------------------------------------------------------------------------------------------------
# Speed: the index engine truncates every row
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("g", [G.HOUR, G.DAY])
def test_truncating_five_million_timestamps_is_fast(g):
    t = np.random.default_rng(0).integers(ms("2020-01-01"), ms("2024-01-01"), 5_000_000)
    arr = pa.array(t)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        g.truncate(arr)
        best = min(best, time.perf_counter() - start)
    # Tens of ms on a quiet machine; the bound leaves room for a loaded CI box but not for a per-row loop.
    assert best < 0.25, best


def test_all_is_druids_eternity_and_far_buckets_stay_on_the_calendar():
    assert str(G.ALL.bucket(0)) == "-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"  # Intervals.ETERNITY
    assert iso(G.MONTH.bucket_start(ETERNITY.start)) == "-146136543-09-01T00:00:00.000Z"
    assert iso(G.YEAR.bucket_start(ETERNITY.end - 1)) == "146140482-01-01T00:00:00.000Z"
    assert iso(G.QUARTER.bucket_start(ms("-0001-02-03"))) == "-0001-01-01T00:00:00.000Z"


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Europe/Berlin", "Australia/Sydney"])
def test_multi_unit_calendar_periods_in_a_zone_count_local_days_and_months(zone):
    tz = zoneinfo.ZoneInfo(zone)
    quarter = Granularity.parse({"type": "period", "period": "P3M", "timeZone": zone})
    two_days = Granularity.parse({"type": "period", "period": "P2D", "timeZone": zone})
    rng = np.random.default_rng(11)
    t = rng.integers(ms("1990-01-01"), ms("2035-01-01"), 300)
    epoch_local = dt.datetime(1970, 1, 1)
    for x, q, d2 in zip(t.tolist(), quarter.truncate(t).tolist(), two_days.truncate(t).tolist()):
        local = (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=x)).astimezone(tz)
        first = dt.datetime(local.year, (local.month - 1) // 3 * 3 + 1, 1).replace(tzinfo=tz)
        assert q == int(first.timestamp() * 1000), (zone, iso(x))
        days = (local.replace(tzinfo=None) - epoch_local).days
        start = (epoch_local + dt.timedelta(days=days - days % 2)).replace(tzinfo=tz)
        assert d2 == int(start.timestamp() * 1000), (zone, iso(x))


def test_each_kind_parses_to_its_own_class_with_its_fields():
    from druidflow.granularity import AllGranularity, DurationGranularity, NoneGranularity, PeriodGranularity

    assert isinstance(Granularity.parse("NONE"), NoneGranularity)
    assert isinstance(Granularity.parse({"type": "all"}), AllGranularity)
    d = Granularity.parse({"type": "duration", "duration": 90_000, "origin": 30_000})
    assert isinstance(d, DurationGranularity) and (d.duration, d.origin) == (90_000, 30_000)
    p = Granularity.parse({"type": "period", "period": "P1D", "timeZone": "Asia/Kolkata"})
    assert isinstance(p, PeriodGranularity) and (str(p.period), p.time_zone.id, p.origin) == ("P1D", "Asia/Kolkata", None)
    assert isinstance(G.HOUR, PeriodGranularity)
    # The same fields under another kind are another granularity.
    assert Granularity.parse({"type": "duration", "duration": 3_600_000}) != G.HOUR
