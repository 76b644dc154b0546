"""Out of sample: the October 2025 exchange failure against the reference numbers, without refitting.

``scenarios/oct-2025-exchange-failure.yaml`` extends the same calibrated parameter file as the
flagship (impact, its permanent share, the deleveraging hazard, ETF reflexivity) and keeps its own
state (spot, volatility, the euphoric book's leverage). Its figures are read off the reference
table ``../shared/data/reference/stress_event_reference_numbers.csv``, whose values are text
("~19 billion (19.1-19.3 commonly quoted)"): each row used is named below and parsed strictly, so a
changed file fails loudly rather than quietly comparing with something else.

The comparisons are reported whatever they show. Two are not like for like, and say so: the
19B are liquidations across all of crypto (the engine models BTC alone), and the total open
interest fell 29.7% across all of crypto.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .targets import Target

__all__ = ["reference_value", "oct_2025_targets", "EVENT"]

EVENT = "2025-10-10/11 crash"
_SCALE = {"billion": 1e9, "million": 1e6, "thousand": 1e3}


def reference_value(table: pd.DataFrame, metric: str, *, event: str = EVENT, path: str = "") -> tuple[float, str]:
    """The first number of a reference row's ``value`` (``~19 billion`` -> 1.9e10; a range
    ``85-90`` -> its midpoint), and the row's text."""
    rows = table[(table["event"] == event) & (table["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"{path}: no row with event {event!r} and metric {metric!r}")
    text = str(rows.iloc[0]["value"])
    m = re.match(r"\s*[~>]?\s*([0-9][0-9,.]*)(?:\s*-\s*([0-9][0-9,.]*))?\s*(billion|million|thousand)?", text)
    if not m:
        raise ValueError(f"{path}: {metric!r}: expected a number at the start of the value, found {text!r}")
    lo = float(m.group(1).replace(",", ""))
    hi = float(m.group(2).replace(",", "")) if m.group(2) else lo
    return (lo + hi) / 2 * _SCALE.get(m.group(3) or "", 1.0), text


def _window_sum(name: str, start, hours: float):
    start = pd.Timestamp(start)

    def stat(sim):
        t = sim.timeline
        sl = slice(int(t.searchsorted(start)), int(t.searchsorted(start + pd.Timedelta(hours=hours))))
        return sim._raw[name][:, sl].astype(np.float64).sum(axis=1)
    return stat


def _long_share(start, hours: float):
    longs, shorts = _window_sum("liq_long", start, hours), _window_sum("liq_short", start, hours)

    def stat(sim):
        a, b = longs(sim), shorts(sim)
        total = a + b
        return np.divide(a, total, out=np.full_like(total, np.nan), where=total > 0)
    return stat


def _min_price(start, hours: float):
    start = pd.Timestamp(start)

    def stat(sim):
        t = sim.timeline
        sl = slice(int(t.searchsorted(start)), int(t.searchsorted(start + pd.Timedelta(hours=hours))))
        return sim._raw["price"][:, sl].astype(np.float64).min(axis=1)
    return stat


def _oi_change(hours: float):
    def stat(sim):
        step = float(sim.compiled.step_seconds)
        i = min(int(round(hours * 3600 / step)) - 1, sim.n_steps - 1)
        return sim._raw["open_interest"][:, i].astype(np.float64) / sim.per_path["open_interest_start_usd"].to_numpy() - 1
    return stat


def oct_2025_targets(reference_csv: str | Path, start="2025-10-10T20:00:00Z") -> list[Target]:
    """The October 2025 figures as targets over the first 24 hours from ``start`` (weight 0:
    they are reported, never fitted)."""
    path = str(reference_csv)
    try:
        table = pd.read_csv(reference_csv)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    for column in ("event", "metric", "value"):
        if column not in table.columns:
            raise ValueError(f"{path}: expected a column {column!r}, found {list(table.columns)}")
    liq, liq_text = reference_value(table, "total crypto liquidations 24h", path=path)
    share, share_text = reference_value(table, "share of liquidations that were longs", path=path)
    low, low_text = reference_value(table, "BTC low on CoinDesk reference rate (CADLI)", path=path)
    oi = reference_value(table, "total crypto open interest before -> after", path=path)[1]
    m = re.search(r"\((-?[0-9.]+)%\)", oi)
    if not m:
        raise ValueError(f"{path}: 'total crypto open interest before -> after': expected '(-NN.N%)' in {oi!r}")
    oi_change = float(m.group(1)) / 100
    day = pd.Timestamp(start)
    return [
        Target("liquidations_24h", "liquidations in the first 24 hours, long + short", liq, "USD",
               lambda sim, a=_window_sum("liq_long", day, 24), b=_window_sum("liq_short", day, 24): a(sim) + b(sim),
               0.5, True, 0.0, f"reference: {liq_text} (all of crypto; the engine models BTC only)"),
        Target("long_share", "longs' share of those liquidations", share / 100, "fraction", _long_share(day, 24), 0.05,
               False, 0.0, f"reference: {share_text}%"),
        Target("wick_low", "lowest step close in the first 24 hours", low, "USD", _min_price(day, 24), 0.05, True,
               0.0, f"reference: CADLI index low {low_text} (Binance's own wick: 102,000)"),
        Target("open_interest_change_24h", "open interest after 24 hours", oi_change, "fraction", _oi_change(24),
               0.05, False, 0.0, f"reference: total crypto open interest {oi}"),
    ]

