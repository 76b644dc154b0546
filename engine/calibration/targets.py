"""Calibration targets: what happened in the February 2026 crash, and the same figure read off each
simulated path.

A :class:`Target` pairs an observed value with a statistic computed per path from a simulation
run with ``keep_steps=True``. Prices are the model's step closes (candle convention: the row of
a step's start holds its close), so targets on the real side are read off hourly closes too; where
the facts file quotes an intraday figure the hourly closes cannot show (the 6 Feb low of 60,000 is
a wick: the lowest hourly close is 63,509), the target says so and uses the closes.

:func:`feb_2026_targets` builds the default set from ``../shared/facts/feb-2026-deleveraging.yaml``
and the real hourly path; :func:`evaluate` reduces a simulation to one row per target with the
model's median, 5-95% range, Monte Carlo error of the median and the standardised miss that
:mod:`engine.calibration.fit` minimises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Target", "feb_2026_targets", "calm_targets", "evaluate", "fan_coverage", "order_statistic_se", "real_window",
           "CRASH_WINDOWS"]

Q_LO, Q_HI = 5.0, 95.0  # the "central range" of the issue: the 5-95% fan


@dataclass(frozen=True)
class Target:
    """One observed figure and how to read it off the simulated paths.

    ``statistic(sim)`` returns one value per path. ``scale`` is the miss that counts as one unit in
    the objective: in log units when ``log`` (0.05 = 5%), else in the statistic's own units.
    ``weight`` multiplies its squared miss (0 = reported, not fitted). ``on="replay"`` targets
    read :class:`engine.history.replay.ReplayResult` (the book and flows along the real path) instead:
    liquidations and open interest *given* the observed prices, where a simulation can only say
    how likely such a day was.
    """

    name: str
    description: str
    observed: float
    unit: str
    statistic: Callable = field(repr=False, compare=False)
    scale: float = 0.05
    log: bool = False
    weight: float = 1.0
    source: str = ""
    on: str = "simulation"  # or "replay": read off the book run along the observed path (one value),
    # or "calm": read off the scenario simulated with its shocks removed (the calm market)

    def miss(self, model_median: float) -> float:
        """The standardised distance of the model's median from the observed value."""
        if self.log:
            if not (model_median > 0 and self.observed > 0):
                return math.inf
            return (math.log(model_median) - math.log(self.observed)) / self.scale
        return (model_median - self.observed) / self.scale


# --------------------------------------------------------------------------- reading a simulation
def _step_index(sim, when: pd.Timestamp) -> int:
    """Index of the step whose *close* is at ``when`` (a step's end); -1 for the start."""
    timeline = sim.timeline
    step = pd.Timedelta(seconds=float(sim.compiled.step_seconds))
    i = timeline.get_indexer([when - step])[0]
    if i < 0:
        if when == timeline[0]:
            return -1
        raise ValueError(f"{when:%Y-%m-%d %H:%M} is not a step close of {sim.name} "
                         f"({timeline[0]:%Y-%m-%d %H:%M} .. {timeline[-1] + step:%Y-%m-%d %H:%M})")
    return int(i)


def _steps_of_day(sim, day: pd.Timestamp) -> slice:
    """The steps that start on a UTC day (their closes fall inside it or at its end)."""
    timeline = sim.timeline
    lo = timeline.searchsorted(day)
    hi = timeline.searchsorted(day + pd.Timedelta(days=1))
    if hi - lo < 1:
        raise ValueError(f"{day:%Y-%m-%d} is outside {sim.name}'s horizon")
    return slice(int(lo), int(hi))


def _array(sim, name: str) -> np.ndarray:
    if not sim.kept_steps:
        raise ValueError("this run kept no per-step arrays: run it with keep_steps=True")
    return sim.step_values(name)


def price_at(when) -> Callable:
    when = pd.Timestamp(when)

    def stat(sim):
        i = _step_index(sim, when)
        if i < 0:
            return np.full(sim.n_paths, sim.compiled.param("SPOT0"))
        return _array(sim, "price")[:, i].astype(np.float64)
    return stat


def day_extreme(day, which: str) -> Callable:
    day = pd.Timestamp(day)

    def stat(sim):
        block = _array(sim, "price")[:, _steps_of_day(sim, day)].astype(np.float64)
        return block.min(axis=1) if which == "min" else block.max(axis=1)
    return stat


def day_sum(day, name: str) -> Callable:
    day = pd.Timestamp(day)

    def stat(sim):
        return _array(sim, name)[:, _steps_of_day(sim, day)].astype(np.float64).sum(axis=1)
    return stat


def open_interest_change(start, end) -> Callable:
    start, end = pd.Timestamp(start), pd.Timestamp(end)

    def stat(sim):
        oi = _array(sim, "open_interest")
        i0, i1 = _step_index(sim, start), _step_index(sim, end)
        first = sim.per_path["open_interest_start_usd"].to_numpy() if i0 < 0 else oi[:, i0].astype(np.float64)
        return oi[:, i1].astype(np.float64) / first - 1.0
    return stat


def _log_prices(sim, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Log closes from ``start`` to ``end`` (step closes; the start price when ``start`` is the horizon's)."""
    price = _array(sim, "price").astype(np.float64)
    i0, i1 = _step_index(sim, start), _step_index(sim, end)
    lp = np.log(price[:, max(i0, 0): i1 + 1])
    if i0 < 0:
        lp = np.concatenate([np.full((lp.shape[0], 1), math.log(sim.compiled.param("SPOT0"))), lp], axis=1)
    return lp


def realised_vol(start, end) -> Callable:
    start, end = pd.Timestamp(start), pd.Timestamp(end)

    def stat(sim):
        per_year = 365.25 * 86400 / float(sim.compiled.step_seconds)
        return np.diff(_log_prices(sim, start, end), axis=1).std(axis=1, ddof=1) * math.sqrt(per_year)
    return stat


def return_autocorrelation(start, end) -> Callable:
    """Lag-1 autocorrelation of the step returns between two closes, per path."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    return lambda sim: _lag1(np.diff(_log_prices(sim, start, end), axis=1))


def _lag1(r: np.ndarray) -> np.ndarray:
    d = r - r.mean(axis=-1, keepdims=True)
    den = (d * d).sum(axis=-1)
    return np.divide((d[..., 1:] * d[..., :-1]).sum(axis=-1), den, out=np.full(den.shape, np.nan), where=den > 0)


def replay_day_total(day, column: str) -> Callable:
    day = pd.Timestamp(day)
    return lambda rr: np.array([rr.day_total(column, day)], dtype=np.float64)


def replay_open_interest_change(end) -> Callable:
    end = pd.Timestamp(end)

    def stat(rr):
        first, last = rr.totals["open_interest_start_usd"], rr.open_interest_at(end)
        return np.array([last / first - 1.0 if last is not None and first > 0 else np.nan])
    return stat


def replay_window_sum(start, end, column: str) -> Callable:
    """``column`` of the replay summed over the steps from ``start`` to ``end`` (both step starts)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)

    def stat(rr):
        t = rr.table
        return np.array([float(t.loc[(t.index >= start) & (t.index < end), column].sum())])
    return stat


def _etf_flows(facts: dict) -> tuple[float, str] | None:
    """ETF net flow over 29 Jan - 6 Feb: Farside's 29 and 30 Jan, plus the week to 9 Feb (2-6 Feb)."""
    etf = facts.get("etf") or {}
    daily = {str(k): float(v) for k, v in (etf.get("daily_net_flow_usd") or {}).items()}
    week = etf.get("week_to_feb_9_net_flow_usd")
    if week is None or "2026-01-29" not in daily or "2026-01-30" not in daily:
        return None
    total = daily["2026-01-29"] + daily["2026-01-30"] + float(week)
    return total, (f"facts etf.daily_net_flow_usd 29-30 Jan ({(daily['2026-01-29'] + daily['2026-01-30']) / 1e6:,.0f}M) "
                   f"+ week_to_feb_9_net_flow_usd ({float(week) / 1e6:,.0f}M)")


# --------------------------------------------------------------------------- the February targets
def _utc(value) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def real_window(close: pd.Series, start, end) -> pd.Series:
    """Hourly closes labelled by their *close* time (a candle's start + 1 step), ``start`` (the
    open of the first candle) to ``end`` included, the layout a simulation's price path has."""
    step = close.attrs.get("step") or pd.Series(close.index).diff().mode().iloc[0]
    at_close = pd.Series(close.to_numpy(dtype=np.float64), index=close.index + step)
    start, end = _utc(start), _utc(end)
    opening = close[close.index >= start]
    if opening.empty or opening.index[0] != start:
        raise ValueError(f"the data has no candle opening at {start:%Y-%m-%d %H:%M} UTC")
    # the open of the first candle is the previous close (Binance's hourly rows chain exactly)
    first = at_close[at_close.index <= start]
    out = at_close[(at_close.index > start) & (at_close.index <= end)]
    if not first.empty and first.index[-1] == start:
        out = pd.concat([first.iloc[-1:], out])
    if len(out) < 2 or out.index[-1] < end:
        raise ValueError(f"the data covers {close.index[0]:%Y-%m-%d %H:%M} .. {close.index[-1]:%Y-%m-%d %H:%M} UTC; "
                         f"the calibration window is {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}")
    out.attrs["step"] = step
    return out


def _fact_price(facts: dict, date: str, key: str) -> float | None:
    for row in (facts.get("price") or {}).get("daily") or []:
        if str(row.get("date")) == date and key in row:
            return float(row[key])
    return None


def _fact_oi(facts: dict, date: str) -> float | None:
    for row in (facts.get("derivatives") or {}).get("futures_open_interest_usd") or []:
        if str(row.get("date")) == date:
            return float(row["usd"])
    return None


def _fact_liq(facts: dict, date: str, side: str) -> float | None:
    for row in (facts.get("derivatives") or {}).get("liquidations_usd") or []:
        if str(row.get("date")) == date and row.get("side") == side:
            return float(row["usd"])
    return None


def feb_2026_targets(facts: dict, real: pd.Series, start="2026-01-29", end="2026-02-12") -> list[Target]:
    """The February 2026 targets from the facts file and the real hourly closes (``real_window``
    layout, or raw candles: they are re-labelled here)."""
    start, end = _utc(start), _utc(end)
    path = real if real.attrs.get("labelled_by_close") else real_window(real, start, end)
    feb5 = pd.Timestamp("2026-02-05", tz="UTC")
    feb6 = pd.Timestamp("2026-02-06", tz="UTC")
    feb7 = pd.Timestamp("2026-02-07", tz="UTC")
    need = {
        "price.daily[2026-02-05].open": _fact_price(facts, "2026-02-05", "open"),
        "price.daily[2026-02-05].close": _fact_price(facts, "2026-02-05", "close"),
        "derivatives.futures_open_interest_usd[2026-01-29]": _fact_oi(facts, "2026-01-29"),
        "derivatives.futures_open_interest_usd[2026-02-05]": _fact_oi(facts, "2026-02-05"),
        "derivatives.liquidations_usd[2026-02-05, long]": _fact_liq(facts, "2026-02-05", "long"),
    }
    etf = _etf_flows(facts)
    need["etf.daily_net_flow_usd[2026-01-29, 2026-01-30] and etf.week_to_feb_9_net_flow_usd"] = etf
    missing = [k for k, v in need.items() if v is None]
    if missing:
        raise ValueError(f"the facts file lacks {', '.join(missing)}")
    day6 = path[(path.index > feb6) & (path.index <= feb7)]
    window = path[(path.index >= start) & (path.index <= end)]
    r = np.diff(np.log(window.to_numpy()))
    per_year = 365.25 * 86400 / pd.Timedelta(path.attrs["step"]).total_seconds()
    fact6 = (_fact_price(facts, "2026-02-06", "low"), _fact_price(facts, "2026-02-06", "high"))
    oi0, oi1 = need["derivatives.futures_open_interest_usd[2026-01-29]"], need["derivatives.futures_open_interest_usd[2026-02-05]"]
    return [
        Target("price_5feb_open", "price at the open of 5 Feb (00:00 UTC)", need["price.daily[2026-02-05].open"], "USD",
               price_at(feb5), 0.05, True, source="facts price.daily 2026-02-05 open"),
        Target("price_5feb_close", "price at the close of 5 Feb (24:00 UTC)", need["price.daily[2026-02-05].close"],
               "USD", price_at(feb5 + pd.Timedelta(days=1)), 0.05, True, source="facts price.daily 2026-02-05 close"),
        Target("long_liquidations_5feb_replay", "long liquidations on 5 Feb, book replayed along the real path",
               need["derivatives.liquidations_usd[2026-02-05, long]"], "USD",
               replay_day_total(feb5, "long_liquidations_usd"), 0.5, True,
               source="facts derivatives.liquidations_usd 2026-02-05 (about 1B)", on="replay"),
        Target("open_interest_change_replay", "open interest, 29 Jan -> 5 Feb close, replayed along the real path",
               oi1 / oi0 - 1.0, "fraction", replay_open_interest_change(feb5 + pd.Timedelta(days=1)), 0.05, False,
               source=f"facts futures_open_interest_usd {oi0 / 1e9:g}B -> {oi1 / 1e9:g}B", on="replay"),
        # the scheduled Farside flows are inputs; what the reflexive redemptions add on top must keep
        # the total at what the funds reported
        Target("etf_flow_29jan_6feb_replay", "ETF net flow 29 Jan - 6 Feb, replayed along the real path", etf[0],
               "USD", replay_window_sum(start, feb6 + pd.Timedelta(days=1), "etf_flow_usd"), 0.5e9, False,
               source=etf[1], on="replay"),
        Target("long_liquidations_5feb", "long liquidations on 5 Feb, simulated",
               need["derivatives.liquidations_usd[2026-02-05, long]"], "USD", day_sum(feb5, "liq_long"), 0.5, True,
               weight=0.0, source="facts derivatives.liquidations_usd 2026-02-05 (about 1B)"),
        Target("open_interest_change_29jan_5feb", "open interest, 29 Jan -> 5 Feb close, simulated", oi1 / oi0 - 1.0,
               "fraction", open_interest_change(start, feb5 + pd.Timedelta(days=1)), 0.05, False, weight=0.5,
               source=f"facts futures_open_interest_usd {oi0 / 1e9:g}B -> {oi1 / 1e9:g}B"),
        Target("low_6feb", "lowest hourly close on 6 Feb", float(day6.min()), "USD", day_extreme(feb6, "min"), 0.05,
               True, source=f"hourly closes (the facts' low {fact6[0]:,.0f} is an intraday wick)"
               if fact6[0] else "hourly closes"),
        Target("high_6feb", "highest hourly close on 6 Feb", float(day6.max()), "USD", day_extreme(feb6, "max"), 0.05,
               True, source=f"hourly closes (facts' high {fact6[1]:,.0f})" if fact6[1] else "hourly closes"),
        Target("realised_vol", f"hourly realised volatility, {start:%d %b} - {end:%d %b}, annualised",
               float(r.std(ddof=1) * math.sqrt(per_year)), "fraction", realised_vol(start, end), 0.1, True,
               source="hourly closes"),
        # momentum traders feed the move they follow: without this target the fit buys open interest
        # with trending returns (lag-1 autocorrelation +0.14 where the market has none)
        Target("return_autocorrelation", "lag-1 autocorrelation of hourly returns", float(_lag1(r)), "ratio",
               return_autocorrelation(start, end), 0.05, False, source="hourly closes"),
        collapse_target(),
    ]


COLLAPSE_LEVEL = 0.25  # a path whose price falls below a quarter of spot within the horizon has collapsed
COLLAPSE_SCALE = 0.005  # half a percent of paths collapsing counts as one unit


def collapse_share(sim) -> np.ndarray:
    """The share of paths whose lowest price fell below ``COLLAPSE_LEVEL`` of spot, on every path
    (the objective reads a median: this makes it read the share)."""
    low = sim.per_path["min_price"].to_numpy(dtype=np.float64)
    return np.full(low.size, float(np.mean(low < COLLAPSE_LEVEL * sim.compiled.param("SPOT0"))))


def collapse_target(on: str = "simulation", prefix: str = "") -> Target:
    """No runaway: a market that loses three quarters of its price in weeks has not been seen in
    BTC's hourly history (the worst fortnight since 2020, March 2020, lost about half). Medians
    cannot see a few per cent of paths running to the floor, so this target reads their share."""
    return Target(f"{prefix}collapsed_paths", f"{prefix.replace('_', ' ')}share of paths falling below "
                  f"{COLLAPSE_LEVEL:.0%} of spot".lstrip(), 0.0, "fraction", collapse_share, COLLAPSE_SCALE,
                  False, source="none in the hourly and daily history's fortnights", on=on)


# --------------------------------------------------------------------------- reducing a simulation
# the two crashes of the hourly year, left out of the calm market's windows: 10-11 Oct 2025 (the
# exchange-failure cascade) and 29 Jan - 12 Feb 2026 (the February deleveraging, the flagship)
CRASH_WINDOWS = (("2025-10-10", "2025-10-12"), ("2026-01-29", "2026-02-12"))

# the calm market's statistics the fit asks for: (statistic of engine.calibration.stylised, scale, log)
CALM_STATISTICS = {
    "annual_vol": ("annualised volatility of hourly returns", 0.10, True),
    "acf_abs_lag1": ("lag-1 autocorrelation of |r| (volatility clustering)", 0.03, False),
    "acf_r_lag1": ("lag-1 autocorrelation of hourly returns", 0.015, False),
    "max_drawdown": ("largest fall from a running peak", 0.20, True),
    # how far the price wanders over the horizon: hourly vol and drawdown can match while the
    # returns trend and the horizon's moves are twice the real ones (a variance ratio near 3)
    "abs_return": ("absolute log return over the horizon", 0.20, True),
}
DRIFT_SCALE = 0.02  # the calm market's median log return over the horizon: 2% off counts as one unit


def _calm_samples(sim):
    """Per-path stylised statistics of a calm simulation, computed once per simulation."""
    from .stylised import per_sample, simulated_log_returns

    cached = getattr(sim, "_calm_samples", None)
    if cached is None:
        cached = per_sample(simulated_log_returns(sim), float(sim.compiled.step_seconds) / 3600)
        sim._calm_samples = cached
    return cached


def _calm_statistic(name: str) -> Callable:
    return lambda sim: _calm_samples(sim)[name].to_numpy()


def _calm_drift(sim) -> np.ndarray:
    return np.log(_array(sim, "price")[:, -1].astype(np.float64) / sim.compiled.param("SPOT0"))


def calm_targets(close: pd.Series, window: int, step_seconds: float = 3600.0, *, stride: int = 24,
                 exclude=CRASH_WINDOWS, weight: float = 1.0) -> list[Target]:
    """The calm market: the median over the real series' windows of ``window`` steps (every
    ``stride`` returns, windows touching a crash in ``exclude`` left out) of each statistic in
    :data:`CALM_STATISTICS`, and no drift (the median log return over the horizon is 0: the
    scenario's drift is the only drift). Read off the scenario simulated with no shocks."""
    from .stylised import _real_returns, per_sample

    r, used = _real_returns(close, step_seconds)
    if window > len(r):
        raise ValueError(f"the real series has {len(r)} returns, fewer than one window of {window}")
    starts = np.arange(0, len(r) - window + 1, stride)
    times = used.index
    keep = np.ones(starts.size, dtype=bool)
    for lo, hi in exclude:
        lo, hi = _utc(lo), _utc(hi)
        # window k covers the returns ending at closes starts[k]+1 .. starts[k]+window
        first, last = times[starts], times[starts + window]
        keep &= ~((first < hi) & (last > lo))
    if not keep.any():
        raise ValueError("every window of the real series touches a crash window")
    windows = np.stack([r[k:k + window] for k in starts[keep]])
    table = per_sample(windows, step_seconds / 3600)
    source = (f"median of {int(keep.sum())} windows of {window} returns, {times[0]:%Y-%m-%d} - {times[-1]:%Y-%m-%d}, "
              f"crashes excluded")
    out = [Target(f"calm_{name}", f"calm market: {text}", float(np.nanmedian(table[name])),
                  "fraction" if log else "ratio", _calm_statistic(name),
                  scale, log, weight, source, on="calm")
           for name, (text, scale, log) in CALM_STATISTICS.items()]
    out.append(collapse_target("calm", "calm_"))
    out.append(Target("calm_drift", "calm market: median log return over the horizon (no shocks, no drift)", 0.0,
                      "fraction", _calm_drift, DRIFT_SCALE, False, weight, "the scenario's drift is 0", on="calm"))
    return out


def order_statistic_se(values: np.ndarray, q: float) -> float:
    """Monte Carlo standard error of the ``q``-quantile (0-100) from order statistics: half the
    distance between the ranks ``n q +- sqrt(n q (1-q))`` (a distribution-free 68% interval)."""
    x = np.sort(values[np.isfinite(values)])
    n = x.size
    if n < 2:
        return math.nan
    p = q / 100.0
    half = math.sqrt(n * p * (1 - p))
    lo = int(np.clip(math.floor(n * p - half), 0, n - 1))
    hi = int(np.clip(math.ceil(n * p + half), 0, n - 1))
    return float(x[hi] - x[lo]) / 2.0


def evaluate(sim, targets: list[Target], replay=None) -> pd.DataFrame:
    """One row per target: observed, model p05/p25/p50/p75/p95, MC error of the median, the
    observed value's rank among the paths, the standardised miss and whether the observed value
    lies inside the model's 5-95% range. Replay targets (``replay``: the book along the real path)
    have one value: its quantiles are that value, with no Monte Carlo error."""
    rows = []
    for t in targets:
        if t.on == "replay" and replay is None:
            raise ValueError(f"target {t.name} is read off a replay: pass replay=")
        values = np.asarray(t.statistic(replay if t.on == "replay" else sim), dtype=np.float64)
        finite = values[np.isfinite(values)]
        q = np.percentile(finite, [Q_LO, 25, 50, 75, Q_HI]) if finite.size else np.full(5, np.nan)
        rank = float((np.sum(finite < t.observed) + 0.5 * np.sum(finite == t.observed)) / max(finite.size, 1))
        rows.append({
            "target": t.name, "description": t.description, "unit": t.unit, "observed": t.observed,
            "model_p05": q[0], "model_p25": q[1], "model_p50": q[2], "model_p75": q[3], "model_p95": q[4],
            "mc_se_p50": order_statistic_se(finite, 50.0) if t.on != "replay" else 0.0, "rank": rank, "z": t.miss(q[2]),
            # a replay has one value: "inside" means within one scale of the observation (z in [-1, 1])
            "inside_5_95": bool(q[0] <= t.observed <= q[4]) if t.on != "replay" else bool(abs(t.miss(q[2])) <= 1),
            "weight": t.weight, "scale": t.scale,
            "log_scale": t.log, "on": t.on, "source": t.source,
        })
    return pd.DataFrame(rows).set_index("target")


def fan_coverage(sim, real_path: pd.Series, lo: float = Q_LO, hi: float = Q_HI) -> tuple[float, pd.DataFrame]:
    """Share of the real path's hourly closes inside the model's ``lo``-``hi`` fan, over the
    steps both cover, and the per-step table (close time, real, fan bounds, quartiles, median)."""
    price = _array(sim, "price")
    step = pd.Timedelta(seconds=float(sim.compiled.step_seconds))
    closes = sim.timeline + step
    real = real_path.reindex(closes)
    keep = real.notna().to_numpy()
    if not keep.any():
        raise ValueError("the real path and the simulation share no step")
    q = np.percentile(price[:, keep], [lo, 25.0, 50.0, 75.0, hi], axis=0)
    frame = pd.DataFrame({"real": real.to_numpy()[keep], "fan_lo": q[0], "p25": q[1], "median": q[2], "p75": q[3],
                          "fan_hi": q[4]}, index=closes[keep])
    frame.index.name = "time"
    inside = (frame["real"] >= frame["fan_lo"]) & (frame["real"] <= frame["fan_hi"])
    return float(inside.mean()), frame
