"""Friendly values (engine.scenario.units): the spellings each parser takes, those it refuses, round trips."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.scenario.units import (
    AMOUNT_PATTERN,
    DURATION_PATTERN,
    RATE_PATTERN,
    TIME_OF_DAY_PATTERN,
    UnitError,
    format_amount,
    format_duration,
    parse_amount,
    parse_duration,
    parse_rate,
    parse_time_of_day,
    parse_timestamp,
)

UTC = timezone.utc


# ----------------------------------------------------------------------------- amounts
@pytest.mark.parametrize(
    "text, expected",
    [
        ("61B", 61e9),
        ("689.2M", 689.2e6),
        ("32.5k", 32.5e3),
        ("32.5K", 32.5e3),
        ("-544.9M", -544.9e6),
        ("+561.8M", 561.8e6),
        ("1.2T", 1.2e12),
        ("$250M", 250e6),
        ("-$5", -5.0),
        ("1_000", 1000.0),
        ("1.5e9", 1.5e9),
        ("2bn", 2e9),
        ("3mn", 3e6),
        ("5m", 5e6),  # m is million, never milli
        ("61 B", 61e9),
        ("  7k  ", 7e3),
        (".5M", 0.5e6),
        ("0", 0.0),
        (61, 61.0),
        (88_500.5, 88_500.5),
        (-3, -3.0),
    ],
)
def test_parse_amount_accepts(text, expected):
    assert parse_amount(text) == pytest.approx(expected, rel=1e-12)
    if isinstance(text, str):
        assert re.match(AMOUNT_PATTERN, text), "the JSON Schema pattern must accept it too"


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("61X", "unknown amount suffix 'X'"),
        ("61BB", "unknown amount suffix 'BB'"),
        ("15%", "must be an amount"),
        ("--5", "must be an amount"),
        ("+-5", "must be an amount"),
        ("$-5", "must be an amount"),
        ("", "must be an amount"),
        ("B", "must be an amount"),
        ("lots", "must be an amount"),
        ("1.2.3M", "must be an amount"),
        ("1e400", "must be a finite amount"),
        (float("nan"), "must be a finite amount"),
        (float("inf"), "must be a finite amount"),
        (-float("inf"), "must be a finite amount"),
        (10**400, "too large"),
        (True, "must be an amount"),
        (None, "must be an amount"),
        ([61], "must be an amount"),
    ],
)
def test_parse_amount_refuses(value, fragment):
    with pytest.raises(UnitError, match=re.escape(fragment)):
        parse_amount(value)


@pytest.mark.parametrize(
    "value, text",
    [(61e9, "61B"), (689.2e6, "689.2M"), (32.5e3, "32.5k"), (1.2e12, "1.2T"), (-544.9e6, "-544.9M"), (12.5, "12.5")],
)
def test_format_amount(value, text):
    assert format_amount(value) == text


# ----------------------------------------------------------------------------- rates
@pytest.mark.parametrize(
    "text, expected",
    [
        ("15%", 0.15),
        ("-13%", -0.13),
        (" 15 % ", 0.15),
        ("0.5%", 0.005),
        ("50bp", 0.005),
        ("50bps", 0.005),
        ("0.15", 0.15),
        ("1e2%", 1.0),
        (0.15, 0.15),
        (1, 1.0),
        (-2, -2.0),
    ],
)
def test_parse_rate_accepts(text, expected):
    assert parse_rate(text) == pytest.approx(expected, rel=1e-12)
    if isinstance(text, str):
        assert re.match(RATE_PATTERN, text)


@pytest.mark.parametrize(
    "value",
    ["15%%", "15 percent", "%", "50BP", "15% %", "abc", "", "--5%", ".nan", True, None, float("nan"), float("inf")],
)
def test_parse_rate_refuses(value):
    with pytest.raises(UnitError, match="rate"):
        parse_rate(value)


# ----------------------------------------------------------------------------- durations
@pytest.mark.parametrize(
    "text, expected",
    [
        ("10d", timedelta(days=10)),
        ("4h", timedelta(hours=4)),
        ("30m", timedelta(minutes=30)),
        ("5min", timedelta(minutes=5)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(hours=36)),
        ("1d 12h", timedelta(hours=36)),
        ("1.5h", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (" 14d ", timedelta(days=14)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
def test_parse_duration_accepts(text, expected):
    parsed = parse_duration(text)
    assert parsed == expected
    if isinstance(text, str):
        assert re.match(DURATION_PATTERN, text)


@pytest.mark.parametrize(
    "value",
    [4, 4.0, "4", "4.5", "-2d", "+2d", "1y", "1H", "1D", "h", "", "1ms", "1 day", "d1", True, None],
)
def test_parse_duration_refuses(value):
    """A bare number is refused: ``4`` could be hours or days."""
    with pytest.raises(UnitError, match="must be a duration with a unit"):
        parse_duration(value)


@pytest.mark.parametrize(
    "value, text",
    [
        (timedelta(0), "0s"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(days=14), "14d"),
        (timedelta(minutes=30), "30m"),
        (timedelta(seconds=90.5), "1m30.5s"),
        (timedelta(microseconds=1), "0.000001s"),
        (timedelta(hours=1, seconds=4.444404), "1h4.444404s"),
        (timedelta(weeks=1, hours=1, minutes=1, seconds=1), "7d1h1m1s"),
    ],
)
def test_format_duration(value, text):
    written = format_duration(value)
    assert written == text
    parsed = parse_duration(text)
    assert parsed == value


# ----------------------------------------------------------------------------- timestamps
@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-01-29", datetime(2026, 1, 29, tzinfo=UTC)),
        ("2026-01-29T14:30:00Z", datetime(2026, 1, 29, 14, 30, tzinfo=UTC)),
        ("2026-01-29T14:30:00z", datetime(2026, 1, 29, 14, 30, tzinfo=UTC)),
        ("2026-01-29T14:30:00+01:00", datetime(2026, 1, 29, 13, 30, tzinfo=UTC)),
        ("2026-01-29 14:30", datetime(2026, 1, 29, 14, 30, tzinfo=UTC)),  # naive = UTC
        (" 2026-01-29T14:30:00.250Z ", datetime(2026, 1, 29, 14, 30, 0, 250_000, tzinfo=UTC)),
        (date(2026, 1, 29), datetime(2026, 1, 29, tzinfo=UTC)),
        (datetime(2026, 1, 29, 14, 30), datetime(2026, 1, 29, 14, 30, tzinfo=UTC)),
        (datetime(2026, 1, 29, 14, 30, tzinfo=timezone(timedelta(hours=-5))), datetime(2026, 1, 29, 19, 30, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_accepts(value, expected):
    result = parse_timestamp(value)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    ["29/01/2026", "tomorrow", "2026-02-30", "2026-13-01", "", "14:30", 20260129, 1.5, True, None],
)
def test_parse_timestamp_refuses(value):
    with pytest.raises(UnitError, match="must be an ISO date or UTC datetime"):
        parse_timestamp(value)


# ----------------------------------------------------------------------------- time of day
@pytest.mark.parametrize(
    "text, minutes",
    [("14:30", 870), ("21:00", 1260), ("00:00", 0), ("7:05", 425), (" 14:30 ", 870), ("24:00", 1440)],
)
def test_parse_time_of_day_accepts(text, minutes):
    assert parse_time_of_day(text) == minutes
    assert re.match(TIME_OF_DAY_PATTERN, text.strip())


@pytest.mark.parametrize(
    "value",
    [870, 14.5, "24:01", "25:00", "14:60", "14h30", "14:30:00", "1430", "", "-1:00", None, True],
)
def test_parse_time_of_day_refuses(value):
    """870 is what YAML 1.1 makes of an unquoted 14:30; the loader reads YAML 1.2, where it stays text."""
    with pytest.raises(UnitError, match="time of day"):
        parse_time_of_day(value)


# ----------------------------------------------------------------------------- round trips
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650))
duration_texts = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 500).map(str), st.decimals(0, 500, places=3).map(str)),
        st.sampled_from(["w", "d", "h", "m", "min", "s"]),
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: "".join(n + u for n, u in parts))
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


@settings(deadline=None)
@given(durations)
def test_duration_round_trip_from_timedelta(value):
    text = format_duration(value)
    assert re.match(DURATION_PATTERN, text)
    back = parse_duration(text)
    assert back == value


@settings(deadline=None)
@given(duration_texts)
def test_duration_round_trip_from_text(text):
    value = parse_duration(text)
    canonical = format_duration(value)
    back = parse_duration(canonical)
    assert back == value
    again = format_duration(back)
    assert again == canonical


@settings(deadline=None)
@given(finite, st.sampled_from([("", 1.0), ("k", 1e3), ("M", 1e6), ("B", 1e9), ("T", 1e12)]))
def test_amount_round_trip_with_suffix(value, suffix):
    letter, scale = suffix
    text = repr(value) + letter
    assert parse_amount(text) == pytest.approx(value * scale, rel=1e-12, abs=1e-300)
    assert parse_amount("$" + repr(abs(value)) + letter) == pytest.approx(abs(value) * scale, rel=1e-12)


@settings(deadline=None)
@given(finite)
def test_format_amount_reads_back_within_display_precision(value):
    assert parse_amount(format_amount(value)) == pytest.approx(value, rel=5e-4, abs=1e-6)


@settings(deadline=None)
@given(finite)
def test_rate_round_trip(value):
    assert parse_rate(repr(value)) == value
    assert parse_rate(f"{value!r}%") == pytest.approx(value / 100, rel=1e-12, abs=1e-300)
    assert parse_rate(f"{value!r}bp") == pytest.approx(value / 1e4, rel=1e-12, abs=1e-300)


@settings(deadline=None)
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
def test_timestamp_round_trip(moment, tz):
    aware = moment.replace(tzinfo=tz)
    assert parse_timestamp(aware.isoformat()) == aware
    in_utc = aware.astimezone(UTC)
    assert parse_timestamp(in_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == in_utc
    assert parse_timestamp(moment.isoformat()) == moment.replace(tzinfo=UTC)  # naive reads as UTC


@settings(deadline=None)
@given(st.integers(0, 24 * 60))
def test_time_of_day_round_trip(minutes):
    text = f"{minutes // 60:02d}:{minutes % 60:02d}"
    assert parse_time_of_day(text) == minutes


@settings(deadline=None)
@given(st.text(max_size=12))
def test_parsers_raise_only_unit_errors(text):
    """Whatever the text, a parser returns a value or raises UnitError, never anything else."""
    for parse in (parse_amount, parse_rate, parse_duration, parse_timestamp, parse_time_of_day):
        try:
            result = parse(text)
        except UnitError:
            continue
        if isinstance(result, float):
            assert math.isfinite(result)
