"""Hedging rules replayed on real history: one observed price path through the strategy kernel.

``backtest(data, scenario)`` reads an OHLCV file (:func:`engine.history.data.load_ohlcv`), takes the scenario's
``portfolio:`` and ``strategies:`` (its market, shocks and horizon are replaced by the history),
and marks the book unhedged and with each rule along the observed closes, exactly as on simulated
paths (:mod:`engine.portfolio.hedge`): same accounting, costs, rolls and metrics, on one path. Options are
priced with an implied vol that history does not give, so it is built from the data: the
annualised realised vol of log returns over ``vol_window`` plus ``vol_premium``, with the 25-delta
risk reversal ``skew`` (floored at 5%); the surface does not move otherwise along the path (the
realised vol already does). Perps pay no funding here.

Every row also comes back as a ``vectorbt.Portfolio`` (:func:`engine.portfolio.hedge.path_to_vectorbt`),
whose ``stats()`` the CLI prints beside the table.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from pathlib import Path

import numpy as np

from .data import load_ohlcv

__all__ = ["backtest", "implied_vol_from_history"]


def implied_vol_from_history(close, window: timedelta, premium: float):
    """Annualised realised vol of log returns over ``window`` (the first ``window`` uses what it
    has, at least two returns) plus ``premium``, floored at 5%: one value per row."""
    step = close.attrs.get("step") or (close.index[1] - close.index[0])
    per_year = timedelta(days=365.25) / step
    n = max(2, round(window / step))
    r = np.log(close).diff()
    vol = r.rolling(n, min_periods=2).std() * math.sqrt(per_year)
    vol = vol.bfill().fillna(0.0)
    return np.maximum(vol.to_numpy() + premium, 0.05)


def backtest(data: str | Path, scenario, start=None, end=None, vol_window: timedelta = timedelta(days=30),
             vol_premium: float = 0.05, skew: float = -0.05, close=None):
    """The strategies table on history, the prepared inputs, and a function giving each row's
    ``vectorbt.Portfolio``: ``(table, portfolio_of_row)``."""
    import pandas as pd

    from ..compile.compiler import compile_scenario
    from ..compile.layout import Param, Step
    from ..portfolio.hedge import evaluate_paths, path_to_vectorbt

    close = close if close is not None else load_ohlcv(data)
    step = close.attrs.get("step") or (close.index[1] - close.index[0])
    if not timedelta(minutes=1) <= step <= timedelta(days=1):
        raise ValueError(f"{data}: rows every {step}, expected between 1 minute and 1 day")
    span = close.index[-1] - close.index[0]
    if not step <= vol_window < span:
        raise ValueError(f"--vol-window {vol_window}: expected at least one row's spacing ({step}) and shorter "
                         f"than the data ({span} in {data})")
    # the implied vol from the whole file, so the first days of a window see the history before them
    vol = pd.Series(implied_vol_from_history(close, vol_window, vol_premium), index=close.index)
    keep = np.ones(len(close), dtype=bool)
    if start is not None:
        keep &= close.index >= pd.Timestamp(start, tz="UTC")
    if end is not None:
        keep &= close.index <= pd.Timestamp(end, tz="UTC")
    filled = close.attrs.get("filled", 0)
    close, vol = close[keep], vol[keep].to_numpy()
    if len(close) < 3:
        raise ValueError(f"{data}: fewer than 3 rows between {start} and {end}")
    horizon = scenario.horizon.model_copy(update={"start": close.index[0].to_pydatetime(),
                                                  "duration": step * (len(close) - 1), "step": step})
    # the market's own book, flows and options do not act on history: an empty book at the first close
    perps = scenario.market.perpetuals
    empty = perps.model_copy(update={"long": perps.long.model_copy(update={"notional_usd": 0.0}),
                                     "short": perps.short.model_copy(update={"notional_usd": 0.0})})
    options = scenario.market.options.model_copy(update={"open_interest": []})
    market = scenario.market.model_copy(update={"spot_usd": float(close.iloc[0]), "perpetuals": empty,
                                                "options": options})
    history = scenario.model_copy(update={"horizon": horizon, "market": market, "shocks": [], "n_paths": 1})
    compiled = compile_scenario(history, n_paths=1)
    steps = compiled.steps.copy()
    steps[Step.ATM_IV] = vol[1:]  # step t ends at row t + 1
    steps[Step.RISK_REVERSAL_25D] = skew
    steps[Step.TERM_SLOPE] = 0.0
    steps[Step.FUNDING_EVENTS] = 0.0
    params = compiled.params.copy()
    params[Param.SURFACE_SPOT_VOL_BETA] = 0.0
    params[Param.SURFACE_SKEW_BETA] = 0.0
    compiled = dataclasses.replace(compiled, steps=steps, params=params)
    prices = close.to_numpy(float)[None, 1:]
    table = evaluate_paths(prices, np.array([close.min()]), compiled, history)
    table.attrs.update(filled=filled, start=close.index[0], end=close.index[-1], rows=len(close))

    def portfolio(row: int):
        return path_to_vectorbt(prices, compiled, history, row, 0)[0]

    return table, portfolio
