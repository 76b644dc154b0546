"""Hedging rules replayed on real history: one observed price path through the strategy kernel.

``backtest(data, scenario)`` reads an OHLCV file (:func:`load_ohlcv`), takes the scenario's
``portfolio:`` and ``strategies:`` (its market, shocks and horizon are replaced by the history),
and marks the book unhedged and with each rule along the observed closes, exactly as on simulated
paths (:mod:`engine.hedge`): same accounting, costs, rolls and metrics, on one path. Options are
priced with an implied vol that history does not give, so it is built from the data: the
annualised realised vol of log returns over ``vol_window`` plus ``vol_premium``, with the 25-delta
risk reversal ``skew`` (floored at 5%); the surface does not move otherwise along the path (the
realised vol already does). Perps pay no funding here.

Every row also comes back as a ``vectorbt.Portfolio`` (:func:`engine.hedge.path_to_vectorbt`),
whose ``stats()`` the CLI prints beside the table.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from pathlib import Path

import numpy as np

__all__ = ["load_ohlcv", "backtest", "implied_vol_from_history"]

TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "open_time", "Date", "Time", "Timestamp")
CLOSE_COLUMNS = ("close", "Close", "price", "Price", "adj_close", "Adj Close")
MAX_GAP_STEPS = 30  # a gap longer than this many median spacings is refused, not filled


def load_ohlcv(path: str | Path, time_column: str | None = None, close_column: str | None = None):
    """Closes indexed by UTC time from a CSV (the Binance and Bitstamp layouts of ``../shared/data``,
    or any file with a time and a close column, named or found among the usual names). Rows must
    be regular in time: the step is the most common spacing, and a missing row is filled with the
    previous close (the count is in ``attrs["filled"]``)."""
    import pandas as pd

    from ._files import read_csv_frame

    path = Path(path)
    raw = read_csv_frame(path, "a price history")
    tcol = time_column or next((c for c in TIME_COLUMNS if c in raw.columns), None)
    ccol = close_column or next((c for c in CLOSE_COLUMNS if c in raw.columns), None)
    for given, found, what, names in ((time_column, tcol, "time", TIME_COLUMNS), (close_column, ccol, "close", CLOSE_COLUMNS)):
        if found is None or found not in raw.columns:
            wanted = f"column {given!r}" if given else f"one of the columns {', '.join(names)}"
            raise ValueError(f"{path}: expected {wanted} for the {what}, found columns {list(raw.columns)}")
    times = pd.to_datetime(raw[tcol], utc=True, errors="coerce")
    close = pd.to_numeric(raw[ccol], errors="coerce")
    bad = times.isna() | close.isna() | ~np.isfinite(close.to_numpy(float, na_value=np.nan)) | (close <= 0)
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # the header is line 1
        raise ValueError(f"{path}:{line}: {tcol}={raw[tcol].iloc[line - 2]!r}, {ccol}={raw[ccol].iloc[line - 2]!r}: "
                         f"expected a time in column {tcol!r} and a finite positive close in column {ccol!r}")
    series, notes = _checked_series(path, pd.DatetimeIndex(times), close.to_numpy(float), tcol)
    if len(series) < 3:
        raise ValueError(f"{path}: {len(series)} rows, at least 3 needed")
    step = pd.Series(series.index).diff().mode().iloc[0]
    regular = series.reindex(pd.date_range(series.index[0], series.index[-1], freq=step)).ffill()
    regular.attrs["filled"] = int(len(regular) - len(series))
    regular.attrs["step"] = step
    regular.attrs["notes"] = notes
    return regular


def _checked_series(path: Path, times, close: np.ndarray, tcol: str):
    """The closes as a series in time order, after the checks of a file's rows (lines counted from
    the header, line 1): times never go back; a repeated time with the same close is dropped (a
    note), with another close refused naming both lines; no gap longer than ``MAX_GAP_STEPS``
    times the median spacing (a row far from the rest would fill years of rows).
    Returns ``(series, notes)``."""
    import pandas as pd

    lines = np.arange(len(close)) + 2
    back = np.flatnonzero(np.diff(times.asi8) < 0)
    if back.size:
        i = int(back[0])
        raise ValueError(f"{path}:{lines[i + 1]}: {tcol} {times[i + 1]} is earlier than line {lines[i]}'s "
                         f"{times[i]}: expected rows in increasing time")
    notes = []
    same = np.flatnonzero(np.diff(times.asi8) == 0)
    if same.size:
        differ = same[close[same] != close[same + 1]]
        if differ.size:
            i = int(differ[0])
            raise ValueError(f"{path}:{lines[i + 1]}: {tcol} {times[i + 1]} repeats line {lines[i]} with another "
                             f"close ({close[i + 1]!r} against {close[i]!r}): expected one close per time")
        notes.append(f"{path}: {same.size} repeated row(s) with the same time and close dropped "
                     f"(first at line {lines[same[0] + 1]})")
        keep = np.ones(len(close), dtype=bool)
        keep[same + 1] = False
        times, close, lines = times[keep], close[keep], lines[keep]
    gaps = np.diff(times.asi8)
    if gaps.size >= 2:
        median = float(np.median(gaps))
        far = np.flatnonzero(gaps > MAX_GAP_STEPS * median)
        if far.size:
            i = int(far[0])
            raise ValueError(f"{path}:{lines[i + 1]}: {tcol} {times[i + 1]} comes {times[i + 1] - times[i]} after "
                             f"line {lines[i]}, more than {MAX_GAP_STEPS} times the median spacing "
                             f"({pd.Timedelta(int(median), 'ns')}): expected a regular series (split the file at the gap)")
    return pd.Series(close, index=times, name="close"), notes


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

    from .compile.compiler import compile_scenario
    from .compile.layout import Param, Step
    from .hedge import evaluate_paths, path_to_vectorbt

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
