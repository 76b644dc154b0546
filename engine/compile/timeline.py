"""The step timeline, and exact per-step averages of time envelopes.

A shock's strength over time is a piecewise-linear envelope ``w(t)`` in [0, 1]: zero before its
start, a linear ramp-in, full strength for its duration, a linear ramp-out. The value a step
gets is the envelope's *exact average* over the step, computed from the envelope's integral,
so a shock that starts mid-step gets the matching fraction and nothing depends on where the
step boundaries fall. Amounts spread over a window (forced selling, ETF flows in the US session)
use the same machinery with the window's indicator function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

__all__ = ["Timeline", "Envelope"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _seconds(t: datetime) -> float:
    return (t - _EPOCH).total_seconds()


@dataclass(frozen=True)
class Envelope:
    """Piecewise-linear strength: 0 -> 1 over ``ramp``, 1 for ``hold``, then -> 0 over ``ramp_out``.

    ``start`` is in seconds (since the epoch, or from an origin after :meth:`shifted`); the
    lengths are seconds; ``hold`` may be ``inf`` (lasts to the end).
    """

    start: float
    ramp: float = 0.0
    hold: float = np.inf
    ramp_out: float = 0.0

    @classmethod
    def of(cls, start: datetime, ramp: timedelta | None = None, duration: timedelta | None = None,
           ramp_out: timedelta | None = None) -> Envelope:
        return cls(
            _seconds(start),
            ramp.total_seconds() if ramp else 0.0,
            np.inf if duration is None else duration.total_seconds(),
            ramp_out.total_seconds() if ramp_out else 0.0,
        )

    def integral(self, t: np.ndarray) -> np.ndarray:
        """``W(t) = integral of w from -inf to t``."""
        x = np.asarray(t, dtype=float) - self.start
        r, h, ro = self.ramp, self.hold, self.ramp_out
        out = np.zeros_like(x)
        if r > 0:  # ramp-in: w = x / r on [0, r]
            y = np.clip(x, 0.0, r)
            out += y * y / (2 * r)
        out += np.clip(np.minimum(x - r, h), 0.0, None)  # full strength on [r, r + h]
        if ro > 0 and np.isfinite(h):  # ramp-out: w = 1 - y / ro on [r + h, r + h + ro]
            y = np.clip(x - r - h, 0.0, ro)
            out += y - y * y / (2 * ro)
        return out

    def shifted(self, origin: float) -> Envelope:
        """The same envelope with time counted from ``origin`` (keeps the arithmetic exact)."""
        return Envelope(self.start - origin, self.ramp, self.hold, self.ramp_out)

    @property
    def area(self) -> float:
        """Total integral of ``w`` (``inf`` when it never ends)."""
        return self.ramp / 2 + self.hold + self.ramp_out / 2


@dataclass(frozen=True)
class Timeline:
    start: datetime
    step: timedelta
    n_steps: int

    @classmethod
    def of(cls, horizon) -> Timeline:
        return cls(horizon.start, horizon.step, horizon.n_steps)

    @property
    def step_seconds(self) -> float:
        return self.step.total_seconds()

    @property
    def dt_years(self) -> float:
        return self.step_seconds / (365.25 * 86400)

    @property
    def dt_days(self) -> float:
        return self.step_seconds / 86400

    @property
    def edges(self) -> np.ndarray:
        """Step boundaries in seconds since the epoch, ``n_steps + 1`` values."""
        return _seconds(self.start) + self._offsets

    @property
    def _offsets(self) -> np.ndarray:
        return self.step_seconds * np.arange(self.n_steps + 1, dtype=float)

    def _mass(self, envelope: Envelope) -> np.ndarray:
        """Envelope integral over each step, computed in seconds from the timeline start."""
        return np.diff(envelope.shifted(_seconds(self.start)).integral(self._offsets))

    def times(self) -> np.ndarray:
        """Step start times as ``datetime64[ns]`` (UTC, naive numpy)."""
        start = np.datetime64(self.start.replace(tzinfo=None), "ns")
        return start + np.arange(self.n_steps) * np.timedelta64(int(self.step_seconds), "s")

    def average(self, envelope: Envelope) -> np.ndarray:
        """Mean of the envelope over each step (values in [0, 1])."""
        return self._mass(envelope) / self.step_seconds

    def share_of(self, envelope: Envelope) -> np.ndarray:
        """Share of the envelope's total area that falls in each step (sums to 1 if inside).

        For an open-ended envelope the area inside the horizon is used.
        """
        mass = self._mass(envelope)
        area = envelope.area
        if not np.isfinite(area):
            area = mass.sum()
        return mass / area if area > 0 else mass

    def window_share(self, start: datetime, end: datetime) -> np.ndarray:
        """Share of the window ``[start, end)`` inside each step (uniform over the window)."""
        return self.share_of(Envelope(_seconds(start), 0.0, (end - start).total_seconds(), 0.0))

    def index(self, when: datetime) -> int:
        """The step containing ``when`` (``n_steps`` if at or after the end, -1 if before)."""
        offset = (when - self.start).total_seconds()
        if offset < 0:
            return -1
        return min(int(offset // self.step_seconds), self.n_steps)

    def events(self, first: datetime, period: timedelta) -> np.ndarray:
        """Count of the events ``first + k*period`` (k >= 0) falling in each step."""
        counts = np.zeros(self.n_steps)
        p = period.total_seconds()
        t = _seconds(first)
        edges = self.edges
        if t < edges[0]:
            t += np.ceil((edges[0] - t) / p) * p
        times = np.arange(t, edges[-1], p)
        idx = ((times - edges[0]) // self.step_seconds).astype(int)
        np.add.at(counts, idx[idx < self.n_steps], 1.0)
        return counts
