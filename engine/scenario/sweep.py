"""Sweep specifications: a parameter that holds several values, and how grids are expanded.

A sweepable parameter takes a single value or one of::

    {values: [50k, 55k, 60k]}            explicit list (a bare YAML list works too in `sweep.parameters`)
    {range: [50k, 60k, 2k]}              start, stop (inclusive when on the grid), step
    {linspace: [0.25, 1.0, 4]}           start, stop, count (both ends included)
    {logspace: [1M, 100M, 5]}            start, stop, count, evenly spaced in log
    {values: [14d, 30d, 60d]}            a duration key (an option's tenor): values or
    {range: [7d, 35d, 7d]}               range of durations, each with its unit

Every expanded value is validated against the parameter's own type and bounds. Grids combine the
inline sweeps of strategies and the entries of the top-level ``sweep.parameters`` with
``sweep.mode``: ``product`` (every combination) or ``zip`` (element-wise; lengths must match).

A duration sweep expands to canonical duration texts (``30d``, ``1d12h``): rows are labelled
``put[tenor=30d]``, tables hold the text, and charts order it by length. The key decides which
kind of sweep it takes, never the values: ``30m`` is 30 minutes in a duration sweep and 30
million in a number sweep.
"""

from __future__ import annotations

import math
import typing
from abc import abstractmethod
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from . import units
from .types import Duration, Integer, StrictModel

__all__ = ["SweepBase", "SweepSpec", "DurationSweep", "sweepable", "sweep_class", "field_sweep", "parse_value", "MAX_SWEEP_VALUES"]

MAX_SWEEP_VALUES = 100_000


def parse_value(value: Any) -> Any:
    """A number in any friendly spelling: ``15%`` and ``50bp`` as rates, ``61B`` as amounts."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("%", "bp", "bps")):
            return units.parse_rate(text)
        try:
            return units.parse_amount(text)
        except units.UnitError:
            return value
    return value


def _value(v: Any) -> float:
    v = parse_value(v)
    message = f"sweep values must be finite numbers (61B, 15%, 0.5), got {v!r}"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(message)
    try:
        number = float(v)
    except OverflowError:  # an integer of hundreds of digits
        raise ValueError("sweep values must be finite numbers; got an integer too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(message)
    return number


SweepNumber = Annotated[float, BeforeValidator(_value), WithJsonSchema({"type": ["number", "string"]})]


class SweepBase(StrictModel):
    """What every sweep spec is: the list of values it stands for (what the grid walks expand)."""

    @abstractmethod
    def expand(self) -> list:
        """The values, in order, each validated against the parameter by :func:`sweepable`."""


class SweepSpec(SweepBase):
    """The values of a swept parameter: exactly one of ``values``, ``range``, ``linspace``, ``logspace``."""

    values: list[SweepNumber] | None = Field(None, min_length=1, description="Explicit list of values.")
    range: tuple[SweepNumber, SweepNumber, SweepNumber] | None = Field(
        None, description="[start, stop, step]; stop included when on the grid."
    )
    linspace: tuple[SweepNumber, SweepNumber, Integer] | None = Field(
        None, description="[start, stop, count], both ends included."
    )
    logspace: tuple[SweepNumber, SweepNumber, Integer] | None = Field(
        None, description="[start, stop, count], evenly spaced in log."
    )

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("values", "range", "linspace", "logspace") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a sweep spec needs exactly one of values, range, linspace, logspace"
                + (f"; got {', '.join(given)}" if given else "")
            )
        if self.range is not None:
            start, stop, step = self.range
            if step == 0 or (stop - start) * step < 0:
                raise ValueError(f"range [{start:g}, {stop:g}, {step:g}] never reaches its stop")
            if abs(stop - start) / abs(step) + 1 > MAX_SWEEP_VALUES:
                raise ValueError(f"range has more than {MAX_SWEEP_VALUES:,} values")
        for key in ("linspace", "logspace"):
            spec = getattr(self, key)
            if spec is not None and not 1 <= spec[2] <= MAX_SWEEP_VALUES:
                raise ValueError(f"{key} count must be between 1 and {MAX_SWEEP_VALUES:,}")
        if self.logspace is not None and (self.logspace[0] <= 0 or self.logspace[1] <= 0):
            raise ValueError("logspace bounds must be positive")
        return self

    def expand(self) -> list[float]:
        if self.values is not None:
            return list(self.values)
        if self.range is not None:
            start, stop, step = self.range
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            # 12 significant digits: [10%, 100%, 30%] ends at 1.0, not 0.9999999999999999
            return [float(f"{start + i * step:.12g}") for i in range(count)]
        import numpy as np  # here, not at the top: `cascade validate` starts faster without numpy

        if self.linspace is not None:
            return np.linspace(*self.linspace).tolist()
        lo, hi, count = self.logspace
        return np.geomspace(lo, hi, count).tolist()


class DurationSweep(SweepBase):
    """The values of a swept duration (a key typed "duration, or a sweep spec", such as an option's
    ``tenor``): exactly one of ``values``, ``range``, durations with their unit (``14d``, ``36h``);
    expanded to canonical duration texts (``14d``, ``1d12h``)."""

    values: list[Duration] | None = Field(None, min_length=1, description="Explicit list of durations.")
    range: tuple[Duration, Duration, Duration] | None = Field(
        None, description="[start, stop, step]; stop included when on the grid."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_spacing(cls, data):
        if isinstance(data, dict):
            for key in ("linspace", "logspace"):
                if key in data:
                    raise ValueError(f"{key} sweeps numbers; a duration sweep takes values or range")
        return data

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("values", "range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a duration sweep needs exactly one of values, range"
                             + (f"; got {', '.join(given)}" if given else ""))
        if self.range is not None:
            start, stop, step = self.range
            shown = ", ".join(units.format_duration(d) for d in self.range)
            if step <= timedelta(0) or stop < start:
                raise ValueError(f"range [{shown}] never reaches its stop")
            if (stop - start) // step + 1 > MAX_SWEEP_VALUES:
                raise ValueError(f"range has more than {MAX_SWEEP_VALUES:,} values")
        return self

    def expand(self) -> list[str]:
        if self.values is not None:
            return [units.format_duration(d) for d in self.values]
        start, stop, step = self.range
        # exact: timedeltas are whole microseconds, so 7d steps land on 35d
        return [units.format_duration(start + i * step) for i in range((stop - start) // step + 1)]


def _shown(item: Any) -> str:
    return f"{item:g}" if isinstance(item, (int, float)) else str(item)


def sweep_class(tp: Any) -> type[SweepBase]:
    """The sweep spec a parameter of type ``tp`` takes: durations theirs, everything else numbers."""
    return DurationSweep if tp is Duration else SweepSpec


def _types_in(tp: Any):
    """The classes an annotation is made of (through ``Annotated``, unions and containers)."""
    if isinstance(tp, type):
        yield tp
    for arg in typing.get_args(tp):
        yield from _types_in(arg)


def field_sweep(model: type[BaseModel], path: str) -> type[SweepBase] | None:
    """The sweep spec class the field at dotted ``path`` of ``model`` takes (``costs.fee_rate``):
    ``None`` when the field is not sweepable or does not exist."""
    *parents, last = path.split(".")
    for part in parents:
        field = model.model_fields.get(part)
        inner = [t for t in _types_in(field.annotation) if issubclass(t, BaseModel)] if field else []
        if not inner:
            return None
        model = inner[0]
    field = model.model_fields.get(last)
    specs = [t for t in _types_in(field.annotation) if issubclass(t, SweepBase)] if field else []
    return specs[0] if specs else None


def sweepable(tp: Any, **constraints: Any) -> Any:
    """``tp`` (with ``constraints`` such as ``gt=0``) or a sweep spec whose every value is one: a
    :class:`DurationSweep` for :data:`~.types.Duration`, else a :class:`SweepSpec`."""
    spec = sweep_class(tp)
    if constraints:
        tp = Annotated[tp, Field(**constraints)]
    adapter = TypeAdapter(tp)

    def check(value):
        if isinstance(value, SweepBase):
            for item in value.expand():
                try:
                    adapter.validate_python(item)
                except ValidationError as exc:
                    raise ValueError(f"sweep value {_shown(item)}: {exc.errors()[0]['msg']}") from None
        return value

    def which(value):
        return "sweep" if isinstance(value, (dict, SweepBase)) else "value"

    return Annotated[
        Annotated[spec, Tag("sweep")] | Annotated[tp, Tag("value")],
        Discriminator(which),
        AfterValidator(check),
    ]
