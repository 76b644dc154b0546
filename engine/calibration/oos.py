"""The historical episodes against their reference numbers: fitted jointly, or out of sample.

``scenarios/history/`` holds one scenario per episode. Each extends the same calibrated parameter
file as the flagship (impact, its permanent share, the deleveraging hazards, momentum traders, ETF
reflexivity) and keeps its own state (spot, volatility, the book's size and leverage). Their
figures are read off the reference table
``../shared/data/reference/stress_event_reference_numbers.csv``, whose values are text ("~19
billion (19.1-19.3 commonly quoted)"): each row used is named below and parsed strictly, so a
changed file fails loudly rather than quietly comparing with something else.

* The October 2025 exchange failure (:func:`oct_2025_targets`). Two comparisons are not like for
  like, and say so: the 19B are liquidations across all of crypto (the engine models BTC alone),
  and the total open interest fell 29.7% across all of crypto.
* Black Thursday, 12-13 March 2020 (:func:`mar_2020_targets`): Binance's daily lows and closes,
  the long liquidations of 24 hours across venues (a lower bound from a low-quality source) and one
  venue's open interest over two days.

:data:`EPISODES` maps a scenario's ``name`` to its targets; :data:`FITTED` names those the joint
fit can use (``cascade calibrate --episode``, October by default: its 40-minute wick and the hour's
close pin the transient impact). The comparisons are reported whatever they show.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .targets import Target

__all__ = ["reference_value", "oct_2025_targets", "mar_2020_targets", "EPISODES", "FITTED", "EVENT", "EVENT_2020",
           "episode_targets", "OCT_WEIGHTS"]

EVENT = "2025-10-10/11 crash"
EVENT_2020 = "2020-03-12/13 Black Thursday"
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
        return sim.step_values(name)[:, sl].astype(np.float64).sum(axis=1)
    return stat


def _liquidations(start, hours: float):
    """Per path, the long and short liquidations (USD) of ``hours`` from ``start``."""
    longs, shorts = _window_sum("liq_long", start, hours), _window_sum("liq_short", start, hours)
    return lambda sim: longs(sim) + shorts(sim)


def _share(part, whole):
    """Per path, ``part(sim) / whole(sim)``; NaN where ``whole`` is 0."""
    def stat(sim):
        a, total = part(sim), whole(sim)
        return np.divide(a, total, out=np.full_like(total, np.nan), where=total > 0)
    return stat


def _long_share(start, hours: float):
    return _share(_window_sum("liq_long", start, hours), _liquidations(start, hours))


def _window_share(start, hours: float, total_start, total_hours: float):
    """The share of the liquidations of ``total_hours`` from ``total_start`` that fall in ``hours`` from ``start``."""
    return _share(_liquidations(start, hours), _liquidations(total_start, total_hours))


def _min_price(start, hours: float):
    start = pd.Timestamp(start)

    def stat(sim):
        t = sim.timeline
        sl = slice(int(t.searchsorted(start)), int(t.searchsorted(start + pd.Timedelta(hours=hours))))
        return sim.step_values("price")[:, sl].astype(np.float64).min(axis=1)
    return stat


def _oi_change(hours: float):
    def stat(sim):
        step = float(sim.compiled.step_seconds)
        i = min(int(round(hours * 3600 / step)) - 1, sim.n_steps - 1)
        return sim.step_values("open_interest")[:, i].astype(np.float64) / sim.per_path["open_interest_start_usd"].to_numpy() - 1
    return stat


def _close_at(when):
    """The price at the close of the step that ends at ``when`` (step labels are step starts)."""
    when = pd.Timestamp(when)

    def stat(sim):
        t = sim.timeline
        step = pd.Timedelta(seconds=float(sim.compiled.step_seconds))
        i = int(t.searchsorted(when - step))
        if i >= sim.n_steps:
            raise ValueError(f"{sim.scenario.name}: its horizon ends before {when}")
        return sim.step_values("price")[:, i].astype(np.float64)
    return stat


def _reference_table(reference_csv: str | Path) -> tuple[pd.DataFrame, str]:
    path = str(reference_csv)
    from .._files import read_csv_frame

    table = read_csv_frame(reference_csv, "a reference table")
    for column in ("event", "metric", "value"):
        if column not in table.columns:
            raise ValueError(f"{path}: expected a column {column!r}, found {list(table.columns)}")
    return table, path


def _row_text(table: pd.DataFrame, event: str, metric: str, path: str) -> str:
    rows = table[(table["event"] == event) & (table["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"{path}: no row with event {event!r} and metric {metric!r}")
    return str(rows.iloc[0]["value"])


def _number_after(text: str, label: str, path: str, metric: str) -> float:
    m = re.search(re.escape(label) + r"\s*([0-9][0-9,.]*)", text)
    if not m:
        raise ValueError(f"{path}: {metric!r}: expected {label!r} followed by a number in {text!r}")
    return float(m.group(1).replace(",", "").rstrip("."))


def mar_2020_targets(reference_csv: str | Path, start="2020-03-12T00:00:00Z") -> list[Target]:
    """Black Thursday's figures (weight 0: reported, never fitted). ``start`` is midnight UTC on
    12 March 2020, where the scenario starts: the daily bars are UTC days."""
    table, path = _reference_table(reference_csv)
    day = pd.Timestamp(start)
    bars_metric = "Binance BTCUSDT daily bars"
    bars = _row_text(table, EVENT_2020, bars_metric, path)
    first, _, second = bars.partition(";")
    low12 = _number_after(first, "L", path, bars_metric)
    close12 = _number_after(first, "C", path, bars_metric)
    low13 = _number_after(second, "L", path, bars_metric)
    close13 = _number_after(second, "C", path, bars_metric)
    liq, liq_text = reference_value(table, "long liquidations 24h (all venues)", event=EVENT_2020, path=path)
    oi_metric = "single-venue futures OI (CryptoQuant via gmlang/ezkable)"
    oi_text = _row_text(table, EVENT_2020, oi_metric, path)
    sizes = re.findall(r"([0-9][0-9.]*)M", oi_text)
    if len(sizes) < 3:
        raise ValueError(f"{path}: {oi_metric!r}: expected three sizes like '171.5M -> 60.0M -> 37.2M' in {oi_text!r}")
    oi_change = float(sizes[2]) / float(sizes[0]) - 1.0
    source = (f"reference: Binance daily bars ({bars}); the bars' lows are intraday wicks, the model's "
              "lows are its 15-minute closes")
    return [
        Target("long_liquidations_24h", "long liquidations over 12 March (UTC)", liq, "USD",
               _window_sum("liq_long", day, 24), 0.5, True, 0.0,
               f"reference: {liq_text} (all venues, a low-quality source; a lower bound, compared as the point 1B)"),
        Target("low_12mar", "lowest step close on 12 March", low12, "USD", _min_price(day, 24), 0.05, True, 0.0,
               source),
        Target("close_12mar", "price at the close of 12 March", close12, "USD", _close_at(day + pd.Timedelta(hours=24)),
               0.05, True, 0.0, source),
        Target("low_13mar", "lowest step close on 13 March", low13, "USD",
               _min_price(day + pd.Timedelta(hours=24), 24), 0.05, True, 0.0, source),
        Target("close_13mar", "price at the close of 13 March", close13, "USD",
               _close_at(day + pd.Timedelta(hours=48)), 0.05, True, 0.0, source),
        Target("open_interest_change_48h", "open interest after 48 hours", oi_change, "fraction", _oi_change(48),
               0.05, False, 0.0, f"reference: one venue's futures open interest {oi_text} (not the whole market)"),
    ]


def _readme_number(readme: Path, pattern: str, what: str) -> float:
    """A figure the data README states and the reference table does not (e.g. ``$6.93B in 40 minutes``)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{readme}: cannot read the data README for {what} ({exc})") from None
    m = re.search(pattern, text)
    if not m:
        raise ValueError(f"{readme}: expected {what} matching {pattern!r}, found none")
    return float(m.group(1))


# the October fit's weights: the wick's depth, its healing within the hour, the liquidations' timing
# and sides identify the transient impact; the 24h total is all of crypto (BTC a part of it), so it
# counts half; the open interest fell across all of crypto (not like for like): reported only
OCT_WEIGHTS = {"liquidations_24h": 0.5, "long_share": 1.0, "failure_window_share": 1.0, "wick_low": 1.0,
               "close_after_wick": 1.0, "open_interest_change_24h": 0.0}
FAILURE_START = pd.Timedelta(hours=1)  # the engine failure began at 21:00 UTC, an hour after the start
FAILURE_MINUTES = 40


def oct_2025_targets(reference_csv: str | Path, start="2025-10-10T20:00:00Z", *, closes: pd.Series | None = None,
                     fitted: bool = False) -> list[Target]:
    """The October 2025 figures as targets over the first 24 hours from ``start``: reported only
    (weight 0), or with ``fitted`` the weights of :data:`OCT_WEIGHTS` for the joint fit.

    ``closes`` (hourly closes by candle start, as :func:`engine.history.data.load_ohlcv` reads them)
    adds the close of the wick's hour (21:00 UTC): the move healed within the hour. The
    failure-window share (``$6.93B in 40 minutes`` of the 24 hours' total) is read from the data
    README beside the reference table, the only place that states it."""
    table, path = _reference_table(reference_csv)
    liq, liq_text = reference_value(table, "total crypto liquidations 24h", path=path)
    share, share_text = reference_value(table, "share of liquidations that were longs", path=path)
    low, low_text = reference_value(table, "BTC low on CoinDesk reference rate (CADLI)", path=path)
    oi = reference_value(table, "total crypto open interest before -> after", path=path)[1]
    m = re.search(r"\((-?[0-9.]+)%\)", oi)
    if not m:
        raise ValueError(f"{path}: 'total crypto open interest before -> after': expected '(-NN.N%)' in {oi!r}")
    oi_change = float(m.group(1)) / 100
    readme = Path(reference_csv).resolve().parents[1] / "README.md"
    burst = _readme_number(readme, r"\$([0-9.]+)B in 40 minutes", "the liquidations of the 40-minute failure")
    day = pd.Timestamp(start)
    failure = day + FAILURE_START
    w = OCT_WEIGHTS if fitted else dict.fromkeys(OCT_WEIGHTS, 0.0)
    out = [
        Target("liquidations_24h", "liquidations in the first 24 hours, long + short", liq, "USD",
               _liquidations(day, 24), 0.5, True, w["liquidations_24h"], f"reference: {liq_text} (all of crypto; the engine models BTC only)"),
        Target("long_share", "longs' share of those liquidations", share / 100, "fraction", _long_share(day, 24), 0.05,
               False, w["long_share"], f"reference: {share_text}% (all of crypto)"),
        Target("failure_window_share", f"share of those liquidations in the {FAILURE_MINUTES} minutes from 21:00 UTC",
               burst * 1e9 / liq, "fraction", _window_share(failure, FAILURE_MINUTES / 60, day, 24), 0.1, False,
               w["failure_window_share"],
               f"data README: ${burst:g}B in {FAILURE_MINUTES} minutes, of the {liq / 1e9:.3g}B (all of crypto)"),
        Target("wick_low", "lowest step close in the first 24 hours", low, "USD", _min_price(day, 24), 0.05, True,
               w["wick_low"], f"reference: CADLI index low {low_text} (Binance's own wick: 102,000)"),
    ]
    if closes is not None:
        hour = failure.tz_convert(None) if failure.tzinfo is not None and closes.index.tz is None else failure
        if hour not in closes.index:
            raise ValueError(f"the hourly closes have no {failure:%Y-%m-%d %H:%M} UTC candle for the wick's hour")
        out.append(Target("close_after_wick", "price an hour after the failure began (the wick's hour closed)",
                          float(closes.loc[hour]), "USD", _close_at(failure + pd.Timedelta(hours=1)), 0.02, True,
                          w["close_after_wick"], f"Binance hourly close of the {failure:%H:%M} UTC candle"))
    out.append(Target("open_interest_change_24h", "open interest after 24 hours", oi_change, "fraction",
                      _oi_change(24), 0.05, False, w["open_interest_change_24h"],
                      f"reference: total crypto open interest {oi} (not like for like: reported only)"))
    return out


# scenario name -> (what it is, its targets from the reference table and the scenario's start)
EPISODES = {
    "oct-2025-exchange-failure": ("October 2025 exchange failure", oct_2025_targets),
    "black-thursday-2020": ("Black Thursday, March 2020", mar_2020_targets),
}
# the episodes whose targets the joint fit uses (cascade calibrate's --episode); the others stay out of sample
FITTED = ("oct-2025-exchange-failure",)


def episode_targets(name: str, reference_csv: str | Path, start, *, closes: pd.Series | None = None,
                    fitted: bool = False) -> list[Target]:
    """The reference targets of the episode scenario ``name`` (a key of :data:`EPISODES`); with
    ``fitted``, weighted for the joint fit (only episodes in :data:`FITTED` can be)."""
    if name not in EPISODES:
        raise ValueError(f"no reference numbers for scenario {name!r}; expected one of {', '.join(EPISODES)}")
    if fitted and name not in FITTED:
        raise ValueError(f"{name}: its reference numbers are not fit targets; expected one of {', '.join(FITTED)}")
    start = pd.Timestamp(start)
    start = start if start.tzinfo else start.tz_localize("UTC")
    if name in FITTED:
        return EPISODES[name][1](reference_csv, start, closes=closes, fitted=fitted)
    return EPISODES[name][1](reference_csv, start)
