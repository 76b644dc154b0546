"""Friendly values in scenario files: amounts, rates, durations, timestamps.

Every parser takes what YAML produced (a number, a string, a date) and returns a plain Python
value, or raises :class:`UnitError` with a message that says what form was expected. The
pydantic schema wires them in as ``BeforeValidator``; the JSON Schema of each type says the
same thing to editors.

=================  =========================================  ==========================
kind               accepted                                    result
=================  =========================================  ==========================
amount             ``61B`` ``689.2M`` ``32.5k`` ``-544.9M``    float (``61e9`` ...)
                   ``1.2T`` ``$250M`` ``1_000`` ``1.5e9``
rate / fraction    ``15%`` ``-13%`` ``50bp`` ``0.15``          float (``0.15``)
duration           ``10d`` ``4h`` ``30m`` ``45s`` ``2w``       ``datetime.timedelta``
                   ``1d12h`` ``1.5h``
timestamp          ``2026-01-29`` ``2026-01-29T14:30:00Z``     aware UTC ``datetime``
                   (naive times are read as UTC)
time of day        ``"14:30"`` ``"21:00"``                     minutes after midnight
=================  =========================================  ==========================

Amount suffixes: ``k``/``K`` thousand, ``m``/``M``/``mn`` million, ``b``/``B``/``bn``
billion, ``t``/``T`` trillion. An amount in a scenario is at most 1e18 in size, and a price
(spot, strike, entry price, cost basis) at most 1e9 USD: larger values overflow the model. A
duration always needs its unit: a bare number is refused, since ``4`` could mean hours or days.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone

from .._format import amount

__all__ = [
    "UnitError",
    "parse_amount",
    "parse_rate",
    "parse_duration",
    "parse_timestamp",
    "parse_time_of_day",
    "format_duration",
    "format_amount",
    "AMOUNT_PATTERN",
    "RATE_PATTERN",
    "DURATION_PATTERN",
    "TIME_OF_DAY_PATTERN",
]


class UnitError(ValueError):
    """A value that does not parse; the message says which form was expected."""


_SUFFIX = {
    "": 1.0,
    "k": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "t": 1e12,
}
_NUMBER = r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_UNSIGNED = r"(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
AMOUNT_PATTERN = rf"^\s*[-+]?\s*\$?\s*{_UNSIGNED}\s*(?:[kKmMbBtT]|[mM][nN]|[bB][nN])?\s*$"
_AMOUNT_RE = re.compile(rf"^\s*([-+])?\s*\$?\s*({_UNSIGNED})\s*([a-zA-Z]*)\s*$")
RATE_PATTERN = rf"^\s*{_NUMBER}\s*(%|bps?)?\s*$"
_RATE_RE = re.compile(rf"^\s*({_NUMBER})\s*(%|bps?|)\s*$")
_DURATION_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(w|d|h|min|m|s)\s*)+$"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|min|m|s)")
TIME_OF_DAY_PATTERN = r"^([01]?\d|2[0-4]):[0-5]\d$"
_TIME_OF_DAY_RE = re.compile(TIME_OF_DAY_PATTERN)


def _finite(value: float, what: str) -> float:
    try:
        result = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise UnitError(f"must be a finite {what}, got a number too large for a float") from None
    if not math.isfinite(result):
        raise UnitError(f"must be a finite {what}, got {value!r}")
    return result


def _number_or_match(value: object, pattern: re.Pattern, what: str, like: str) -> float | re.Match:
    """A finite number as it is, or the match of a string ``value`` against ``pattern``; anything
    else is a :class:`UnitError` saying what a ``what`` looks ``like``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _finite(value, what)
    match = pattern.match(value) if isinstance(value, str) else None
    if match is None:
        raise UnitError(f"must be {'an' if what[0] in 'aeiou' else 'a'} {what} like {like}, got {value!r}")
    return match


def parse_amount(value: object) -> float:
    """``'61B'`` -> ``61e9``; numbers pass through (must be finite)."""
    match = _number_or_match(value, _AMOUNT_RE, "amount", "61B, 689.2M or 32.5k")
    if isinstance(match, float):
        return match
    sign, number, suffix = match.groups()
    scale = _SUFFIX.get(suffix.lower())
    if scale is None:
        raise UnitError(
            f"unknown amount suffix {suffix!r} in {value!r}; use k (thousand), M (million), "
            "B (billion) or T (trillion)"
        )
    result = float(number.replace("_", "")) * scale
    return _finite(-result if sign == "-" else result, "amount")


def parse_rate(value: object) -> float:
    """``'15%'`` -> ``0.15``; ``'50bp'`` -> ``0.005``; plain numbers are fractions already."""
    match = _number_or_match(value, _RATE_RE, "rate", "15%, -13%, 50bp or 0.15")
    if isinstance(match, float):
        return match
    number, unit = match.groups()
    scale = {"%": 0.01, "bp": 1e-4, "bps": 1e-4, "": 1.0}[unit]
    return _finite(float(number.replace("_", "")) * scale, "rate")


def parse_duration(value: object) -> timedelta:
    """``'10d'``, ``'4h'``, ``'30m'``, ``'1d12h'`` -> ``timedelta``; bare numbers are refused, and so
    is a negative ``timedelta`` given from Python (no text parses to one)."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise UnitError(f"must not be negative, got {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(DURATION_PATTERN, text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
            return timedelta(seconds=seconds)
    raise UnitError(
        f"must be a duration with a unit like 10d, 4h, 30m, 45s or 1d12h, got {value!r}"
    )


def parse_timestamp(value: object) -> datetime:
    """ISO date or datetime (YAML may already have parsed it) -> aware UTC ``datetime``."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            result = datetime.fromisoformat(text)
        except ValueError:
            raise UnitError(
                f"must be an ISO date or UTC datetime like 2026-02-05 or 2026-02-05T14:30:00Z, "
                f"got {value!r}"
            ) from None
    else:
        raise UnitError(
            f"must be an ISO date or UTC datetime like 2026-02-05 or 2026-02-05T14:30:00Z, "
            f"got {value!r}"
        )
    if result.tzinfo is None:
        return result.replace(tzinfo=timezone.utc)
    return result.astimezone(timezone.utc)


def parse_time_of_day(value: object) -> int:
    """``'14:30'`` -> minutes after midnight UTC (870). ``'24:00'`` is the end of the day."""
    if isinstance(value, str) and _TIME_OF_DAY_RE.match(value.strip()):
        hours, minutes = (int(x) for x in value.strip().split(":"))
        total = hours * 60 + minutes
        if total <= 24 * 60:
            return total
    raise UnitError(f"must be a UTC time of day like \"14:30\" (quoted), got {value!r}")


def format_duration(value: timedelta) -> str:
    """Inverse of :func:`parse_duration`: ``timedelta(hours=36)`` -> ``'1d12h'``."""
    micro = value // timedelta(microseconds=1)  # exact: a timedelta is a whole number of microseconds
    if micro == 0:
        return "0s"
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    parts = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        count, micro = divmod(micro, size)
        if count:
            parts.append(f"{count}{unit}")
    if micro:
        parts.append(f"{micro // 1_000_000}.{micro % 1_000_000:06d}".rstrip("0").rstrip(".") + "s")
    return sign + "".join(parts)


def format_amount(value: float) -> str:
    """A compact human form used in tables: ``61e9`` -> ``'61B'``, ``689.2e6`` -> ``'689.2M'``."""
    return amount(value)
