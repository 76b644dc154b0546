"""Annotated field types of the scenario schema: units parsed on the way in, documented on the way out.

Each type accepts the friendly spellings of :mod:`engine.scenario.units` and publishes a JSON
Schema that accepts exactly those spellings, so an editor with a YAML language server flags the
same values the loader refuses.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
)

from . import units

__all__ = [
    "StrictModel",
    "Amount",
    "MAX_AMOUNT",
    "MAX_PRICE_USD",
    "Rate",
    "Duration",
    "Timestamp",
    "When",
    "TimeOfDay",
    "Number",
    "Integer",
    "Flag",
    "Name",
    "parse_when",
]


class StrictModel(BaseModel):
    """Base of every schema section: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _wrap(parser):
    def validate(value: Any):
        try:
            return parser(value)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(validate)


def _finite_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise units.UnitError(f"must be a number, got {value!r}")
    try:
        result = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise units.UnitError("must be a finite number, got a number too large for a float") from None
    if not math.isfinite(result):
        raise units.UnitError(f"must be a finite number, got {value!r}")
    return result


def _num_schema(pattern: str, example: str) -> dict:
    return {
        "anyOf": [
            {"type": "number"},
            {"type": "string", "pattern": pattern, "examples": [example]},
        ]
    }


# A pattern, not ``"format": "date-time"``: editors check that format as strict RFC 3339, which
# refuses the plain dates (``2026-02-05``) and naive times the loader reads as UTC.
_TIMESTAMP_PATTERN = (
    r"^\s*\d{4}-\d{2}-\d{2}"
    r"(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?\s*$"
)


MAX_AMOUNT = 1e18  # a quintillion USD (or BTC): beyond every real market (tests set volumes of 1e16 to switch impact off), far below where the model's sums overflow
MAX_PRICE_USD = 1e9  # a BTC price (spot, strike, entry, cost basis) above this is a typo, not a market


def _amount(value: Any) -> float:
    result = units.parse_amount(value)
    if not math.isfinite(result):
        raise units.UnitError(f"must be a finite amount, got {value!r}")
    if abs(result) > MAX_AMOUNT:
        raise units.UnitError(f"must be at most {MAX_AMOUNT:.0e} in size (larger overflows the model), got {value!r}")
    return result


Amount = Annotated[
    float,
    _wrap(_amount),
    WithJsonSchema(_num_schema(units.AMOUNT_PATTERN, "61B")),
]
"""USD or BTC quantity; accepts ``61B``, ``689.2M``, ``32.5k``; at most ``MAX_AMOUNT`` (1e18) in size."""

Rate = Annotated[
    float,
    _wrap(units.parse_rate),
    WithJsonSchema(_num_schema(units.RATE_PATTERN, "15%")),
]
"""A fraction; accepts ``15%``, ``-13%``, ``50bp`` or ``0.15``."""

Number = Annotated[float, _wrap(_finite_number), WithJsonSchema({"type": "number"})]
"""A plain finite number (NaN and infinities refused)."""

Sensitivity = Annotated[Number, Field(ge=0, le=10)]
"""A response per 100% of its driver (a loss, a shortfall, a price below cost basis): ``0.01`` is
1% of the stock per 100% of the driver; from 0 to 10."""


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise units.UnitError(f"must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, (float, str)):
        try:
            number = units.parse_amount(value) if isinstance(value, str) else value
        except units.UnitError:
            number = math.nan
        if math.isfinite(number) and float(number).is_integer():
            return int(number)
    raise units.UnitError(f"must be a whole number like 2000, 1e4 or 10k, got {value!r}")


Integer = Annotated[
    int,
    _wrap(_integer),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": units.AMOUNT_PATTERN}]}),
]
"""A whole number: ``2000``, ``1e4`` or ``10k``; ``true``/``false`` and ``2.5`` are refused
(pydantic alone would read booleans as 1 and 0)."""

Flag = Annotated[bool, Strict()]
"""``true`` or ``false`` only (not ``yes``, ``1`` or ``"true"``)."""

Duration = Annotated[
    timedelta,
    _wrap(units.parse_duration),
    PlainSerializer(units.format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": units.DURATION_PATTERN, "examples": ["4h"]}),
]
"""A length of time with its unit: ``10d``, ``4h``, ``30m``, ``1d12h``."""


def _positive(value: timedelta) -> timedelta:
    if value.total_seconds() <= 0:
        raise ValueError("must be positive, e.g. 30m or 2d")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A :data:`Duration` above zero (a half-life, an interval): ``0s`` is refused at its own key (a
duration is never negative: the parser takes none)."""

Timestamp = Annotated[
    datetime,
    _wrap(units.parse_timestamp),
    PlainSerializer(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _TIMESTAMP_PATTERN, "examples": ["2026-02-05T14:30:00Z"]}),
]
"""An instant, read as UTC: ``2026-02-05`` or ``2026-02-05T14:30:00Z``."""


def parse_when(value: Any) -> datetime | timedelta:
    """A point in time: absolute (ISO date/datetime) or an offset from the horizon start (``+2d``)."""
    if isinstance(value, str) and re.fullmatch(r"\s*\+?\s*" + units.DURATION_PATTERN[1:], value):
        return units.parse_duration(value.strip().lstrip("+").strip())
    if isinstance(value, timedelta):
        return value
    try:
        return units.parse_timestamp(value)
    except units.UnitError:
        raise units.UnitError(
            "must be a UTC date/datetime like 2026-02-05T14:30:00Z or an offset from the "
            f"horizon start like +2d or +36h, got {value!r}"
        ) from None


def _serialize_when(value: datetime | timedelta) -> str:
    if isinstance(value, timedelta):
        return "+" + units.format_duration(value)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


When = Annotated[
    datetime | timedelta,
    _wrap(parse_when),
    PlainSerializer(_serialize_when, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _TIMESTAMP_PATTERN},
                {"type": "string", "pattern": r"^\+?" + units.DURATION_PATTERN[1:]},
            ],
            "examples": ["2026-02-05T14:30:00Z", "+2d"],
        }
    ),
]
"""An absolute UTC time, or an offset from ``horizon.start`` such as ``+2d``."""

TimeOfDay = Annotated[
    int,
    _wrap(units.parse_time_of_day),
    PlainSerializer(lambda m: f"{m // 60:02d}:{m % 60:02d}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": units.TIME_OF_DAY_PATTERN, "examples": ["14:30"]}),
]
"""A UTC time of day ``"HH:MM"`` (quote it in YAML), stored as minutes after midnight."""

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
"""An identifier: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit."""
