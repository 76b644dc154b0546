"""Stylised facts of log returns, simulated and real, compared like with like.

:func:`stylised_facts` measures, on log returns (time along the last axis):

==================  ==========================================================================
``annual_vol``      standard deviation, annualised with 8,766 hours a year (crypto trades 24/7)
``skewness``        third standardised moment
``excess_kurtosis`` fourth standardised moment minus 3 (0 for a Gaussian)
``hill_left``       Hill tail index of the losses ``-r`` from the largest ``tail_fraction``
``hill_right``      the same for the gains ``r``
``acf_r_lag1``      autocorrelation of returns at lag 1 (about 0 in a liquid market)
``acf_abs_lagL``    autocorrelation of ``|r|`` at lags 1, 6, 24 steps (volatility clustering)
``acf_sq_lagL``     autocorrelation of ``r**2`` at the same lags
``max_drawdown``    largest fall from a running peak within the sample (``1 - P/peak``)
``abs_return``      the sample's whole move, ``|sum r|``: its median across samples measures how far
                    the price wanders over the horizon, which the hourly volatility does not say
                    when returns trend (a variance ratio above 1)
``share_3sigma``    share of steps with ``|r - mean| > 3`` standard deviations (0.27% if Gaussian)
==================  ==========================================================================

Each statistic is computed per *sample*: per path for simulated returns ``(n_paths, n_steps)``,
per rolling window of ``window`` steps for one real series. The table reports the 5th, 50th and
95th percentiles across samples (``p5``, ``p50``, ``p95``), so an observed value can be placed in
the model's range, and ``pooled``: every return at once (the whole real series, or all paths
together; autocorrelations pool the per-sample lagged products, never across a path's end).
``max_drawdown`` and ``abs_return`` have no pooled value: they depend on the sample's length, so
only windows of the model's horizon are compared, and their p5/p50/p95 *are* the distributions.

The Hill estimator, with ``X_(1) >= X_(2) >= ...`` the sorted tail values and ``k =
floor(tail_fraction * n)`` (5% by default: 16 of a 14-day window's 336 hourly returns), is
``alpha = 1 / mean_i<=k log(X_(i) / X_(k+1))``, standard error ``alpha / sqrt(k)``. At a fixed
fraction it is biased for anything but an exact Pareto tail: a Student-t with 3 degrees of freedom
gives 2.45 at 5% (2.88 at 0.5%), a Gaussian gives 4.72 at 5%, not infinity (:func:`hill_limit`).
So compare Hill indices only at the same fraction and sample size, as :func:`compare` does, and
read them against the ``normal`` column (i.i.d. Gaussian at the same fraction).

:func:`compare` puts a simulation (kept per-step prices) beside a real close series cut into
windows of the simulated horizon's length.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

__all__ = ["STATISTICS", "HOURS_PER_YEAR", "stylised_facts", "per_sample", "hill", "hill_limit", "max_drawdown",
           "simulated_log_returns", "select_period", "compare", "render_comparison"]

HOURS_PER_YEAR = 365.25 * 24
LAGS = (1, 6, 24)
TAIL_FRACTION = 0.05
QUANTILES = (5, 50, 95)
GAUSSIAN_3SIGMA = 2 * 0.0013498980316301  # P(|Z| > 3)


def _statistics(lags) -> dict[str, str]:
    out = {
        "annual_vol": "volatility, annualised",
        "skewness": "skewness",
        "excess_kurtosis": "excess kurtosis (0 if Gaussian)",
        "hill_left": "Hill tail index of losses",
        "hill_right": "Hill tail index of gains",
        "acf_r_lag1": "autocorrelation of r, lag 1",
    }
    out.update({f"acf_abs_lag{lag}": f"autocorrelation of |r|, lag {lag}" for lag in lags})
    out.update({f"acf_sq_lag{lag}": f"autocorrelation of r^2, lag {lag}" for lag in lags})
    out["max_drawdown"] = "max drawdown within the sample"
    out["abs_return"] = "|log return| over the sample"
    out["share_3sigma"] = "share of |r| > 3 sigma"
    return out


STATISTICS = _statistics(LAGS)
"""The statistics of :func:`stylised_facts` at the default lags, with how to read them."""


# ---------------------------------------------------------------------------- estimators
def _tail_count(n: int, tail_fraction: float) -> int:
    if not 0 < tail_fraction < 0.5:
        raise ValueError(f"tail_fraction must be in (0, 0.5), got {tail_fraction!r}")
    k = int(math.floor(tail_fraction * n))
    if k < 2:
        raise ValueError(f"tail_fraction {tail_fraction:g} of {n} returns leaves {k} in the tail; "
                         "at least 2 are needed: use longer samples or a larger fraction")
    return k


def hill(x: np.ndarray, tail_fraction: float = TAIL_FRACTION) -> tuple[np.ndarray, int]:
    """Hill tail index of the largest values along the last axis, and ``k`` (values in the tail).

    ``1 / mean(log(X_(i) / X_(k+1)))`` over the ``k = floor(tail_fraction * n)`` largest values;
    NaN where ``X_(k+1) <= 0`` (too few positive values). Standard error: ``alpha / sqrt(k)``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    k = _tail_count(n, tail_fraction)
    part = np.partition(x, n - k - 1, axis=-1)
    threshold = part[..., n - k - 1]
    top = part[..., n - k:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = threshold > 0
        mean_log = np.log(top / np.where(ok, threshold, 1.0)[..., None]).mean(axis=-1)
        alpha = np.where(ok & (mean_log > 0), 1.0 / mean_log, np.nan)
    return alpha, k


def hill_limit(distribution, tail_fraction: float = TAIL_FRACTION) -> float:
    """What :func:`hill` converges to for i.i.d. draws of a scipy distribution at a fixed
    ``tail_fraction``: ``1 / E[log(X/u) | X > u]`` with ``u`` the ``1 - tail_fraction`` quantile.
    For ``scipy.stats.norm`` at 5%: 4.72; for ``scipy.stats.t(3)``: 2.45 (3 only as the fraction
    goes to 0)."""
    from scipy import integrate

    u = float(distribution.isf(tail_fraction))
    mean_log, _ = integrate.quad(lambda v: math.log(v / u) * distribution.pdf(v), u, np.inf, limit=200)
    return tail_fraction / mean_log


def _acf(x: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: lagged products and sum of squares of the demeaned series (their ratio is the ACF)."""
    d = x - x.mean(axis=1, keepdims=True)
    return (d[:, :-lag] * d[:, lag:]).sum(axis=1), (d * d).sum(axis=1)


def max_drawdown(x: np.ndarray) -> np.ndarray:
    """Largest fall from a running peak, ``1 - min(P / running peak)``, per row of log returns
    ``(samples, steps)``; the price starts at 1 before the first return (the start is a peak)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    log_price = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    return 1.0 - np.exp((log_price - np.maximum.accumulate(log_price, axis=1)).min(axis=1))


def _moments(x: np.ndarray):
    d = x - x.mean(axis=1, keepdims=True)
    d2 = d * d
    m2 = d2.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = (d2 * d).mean(axis=1) / m2**1.5
        kurt = (d2 * d2).mean(axis=1) / (m2 * m2) - 3.0
        share = (np.abs(d) > 3.0 * np.sqrt(m2)[:, None]).mean(axis=1)
    return m2, skew, kurt, share


# ---------------------------------------------------------------------------- tables
def _as_2d(log_returns) -> np.ndarray:
    x = np.asarray(log_returns, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 3:
        raise ValueError(f"log returns must be 1-D or (samples, steps) with at least 3 steps, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("log returns contain NaN or infinite values")
    return x


def per_sample(log_returns, step_hours: float = 1.0, *, tail_fraction: float = TAIL_FRACTION,
               lags=LAGS) -> pd.DataFrame:
    """Every statistic for every sample (row) of ``log_returns`` ``(samples, steps)``: one row
    per sample, one column per statistic of :data:`STATISTICS` (at ``lags``)."""
    x = _as_2d(log_returns)
    n = x.shape[1]
    if max(lags) >= n:
        raise ValueError(f"lag {max(lags)} needs more than {n} steps per sample")
    m2, skew, kurt, share = _moments(x)
    out = {"annual_vol": np.sqrt(m2 * n / (n - 1) * HOURS_PER_YEAR / step_hours),
           "skewness": skew, "excess_kurtosis": kurt,
           "hill_left": hill(-x, tail_fraction)[0], "hill_right": hill(x, tail_fraction)[0]}
    with np.errstate(divide="ignore", invalid="ignore"):
        num, den = _acf(x, 1)
        out["acf_r_lag1"] = num / den
        for name, series in (("abs", np.abs(x)), ("sq", x * x)):
            for lag in lags:
                num, den = _acf(series, lag)
                out[f"acf_{name}_lag{lag}"] = num / den
    out["max_drawdown"] = max_drawdown(x)
    out["abs_return"] = np.abs(x.sum(axis=1))
    out["share_3sigma"] = share
    frame = pd.DataFrame(out)
    frame.index.name = "sample"
    return frame


def _pooled(x: np.ndarray, step_hours: float, tail_fraction: float, lags) -> tuple[dict, dict]:
    """Every return at once (rows joined for moments and tails; ACFs pool rows' lagged products)."""
    flat = x.reshape(1, -1)
    big_n = flat.shape[1]
    m2, skew, kurt, share = _moments(flat)
    vol = math.sqrt(m2[0] * big_n / (big_n - 1) * HOURS_PER_YEAR / step_hours)
    left, k = hill(-flat, tail_fraction)
    right, _ = hill(flat, tail_fraction)
    value = {"annual_vol": vol, "skewness": skew[0], "excess_kurtosis": kurt[0],
             "hill_left": left[0], "hill_right": right[0]}
    # standard errors under i.i.d. sampling (Gaussian for the moments); clustering makes them larger
    se = {"annual_vol": vol / math.sqrt(2 * big_n), "skewness": math.sqrt(6 / big_n),
          "excess_kurtosis": math.sqrt(24 / big_n), "hill_left": left[0] / math.sqrt(k),
          "hill_right": right[0] / math.sqrt(k)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, series, lag_list in (("r", x, (1,)), ("abs", np.abs(x), lags), ("sq", x * x, lags)):
            for lag in lag_list:
                num, den = _acf(series, lag)
                value[f"acf_{name}_lag{lag}"] = num.sum() / den.sum()
                se[f"acf_{name}_lag{lag}"] = 1 / math.sqrt(x.shape[0] * (x.shape[1] - lag))
    value["max_drawdown"], se["max_drawdown"] = np.nan, np.nan
    value["abs_return"], se["abs_return"] = np.nan, np.nan
    value["share_3sigma"] = share[0]
    se["share_3sigma"] = math.sqrt(max(share[0] * (1 - share[0]), 1e-12) / big_n)
    return value, se


def stylised_facts(log_returns, step_hours: float = 1.0, *, window: int | None = None, stride: int = 1,
                   tail_fraction: float = TAIL_FRACTION, lags=LAGS, quantiles=QUANTILES) -> pd.DataFrame:
    """Stylised facts of log returns: one row per statistic (:data:`STATISTICS`).

    ``log_returns``: ``(n_paths, n_steps)`` simulated paths (each path is a sample), or one 1-D
    series; a series is cut into windows of ``window`` steps every ``stride`` steps (all
    overlapping windows by default), each a sample, so that it compares with paths of that length
    (without ``window`` the whole series is the only sample). ``step_hours``: the returns' step.

    Columns: ``pooled`` (all returns at once; see the module docstring), ``se`` (its standard error
    under i.i.d. sampling: Gaussian for the moments, ``alpha/sqrt(k)`` for Hill, ``1/sqrt(n)`` for
    autocorrelations), then ``p5``, ``p50``, ``p95`` across samples. ``attrs`` holds the sample
    count and length, the tail fraction and ``k`` per sample.
    """
    return _facts(log_returns, step_hours, window, stride, tail_fraction, lags, quantiles)[0]


def _facts(log_returns, step_hours, window, stride, tail_fraction, lags, quantiles):
    """:func:`stylised_facts` and the per-sample table behind it."""
    x = _as_2d(log_returns)
    if not step_hours > 0:
        raise ValueError(f"step_hours must be positive, got {step_hours!r}")
    if window is not None:
        if np.ndim(log_returns) != 1:
            raise ValueError("window applies to one 1-D series; simulated paths are the samples already")
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride!r}")
        if not 3 <= window <= x.shape[1]:
            raise ValueError(f"window of {window} steps: the series has {x.shape[1]} returns")
        samples = np.lib.stride_tricks.sliding_window_view(x[0], window)[::stride]
    else:
        samples = x
    table = per_sample(samples, step_hours, tail_fraction=tail_fraction, lags=lags)
    pooled, se = _pooled(x, step_hours, tail_fraction, lags)
    with warnings.catch_warnings():  # a statistic undefined on every sample (e.g. flat paths) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanpercentile(table.to_numpy(), quantiles, axis=0)
    frame = pd.DataFrame({"pooled": pd.Series(pooled), "se": pd.Series(se)}).reindex(table.columns)
    for i, level in enumerate(quantiles):
        frame[f"p{level:g}"] = q[i]
    frame.index.name = "statistic"
    frame.attrs.update(n_samples=len(samples), sample_steps=samples.shape[1], step_hours=step_hours,
                       tail_fraction=tail_fraction, tail_k=_tail_count(samples.shape[1], tail_fraction),
                       pooled_returns=x.size, stride=stride if window is not None else None)
    return frame, table


# ---------------------------------------------------------------------------- model vs data
def simulated_log_returns(result) -> np.ndarray:
    """``(n_paths, n_steps)`` log returns of a :class:`engine.SimulationResult` run with
    ``keep_steps=True``, the first from the start price ``SPOT0``."""
    if not result.kept_steps:
        raise ValueError("this run kept no per-step prices: run it with keep_steps=True")
    price = result.step_values("price")
    log_price = np.log(price.astype(np.float64))
    start = np.full((price.shape[0], 1), math.log(result.compiled.param("SPOT0")))
    return np.diff(np.concatenate([start, log_price], axis=1), axis=1)


def _timestamp(text, what: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: expected a day or time like 2025-10-01 or 2025-10-01T12:00, got {text!r}") from None
    if stamp is pd.NaT:
        raise ValueError(f"{what}: expected a day or time, got {text!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def select_period(close: pd.Series, start=None, end=None) -> pd.Series:
    """The closes from ``start`` to ``end`` (UTC, both included; a day alone as ``end`` means
    the whole day), keeping ``attrs``."""
    keep = np.ones(len(close), dtype=bool)
    if start is not None:
        keep &= close.index >= _timestamp(start, "start")
    if end is not None:
        stamp = _timestamp(end, "end")
        whole_day = isinstance(end, str) and len(end.strip()) == 10
        keep &= (close.index < stamp + pd.Timedelta(days=1)) if whole_day else (close.index <= stamp)
    out = close[keep]
    out.attrs = dict(close.attrs)
    if len(out) < 3:
        raise ValueError(f"{len(out)} closes between {start or 'the start'} and {end or 'the end'}, at least 3 needed")
    return out


def _real_returns(real_close: pd.Series, step_seconds: float) -> tuple[np.ndarray, pd.Series]:
    """Log returns of the closes at the model's step (every k-th close when the data step divides it)."""
    close = real_close.dropna()
    if len(close) < 3:
        raise ValueError(f"the real series has {len(close)} closes, at least 3 needed")
    if not isinstance(close.index, pd.DatetimeIndex):
        raise ValueError("the real closes need a DatetimeIndex (see engine.history.data.load_ohlcv)")
    data_step = (close.attrs.get("step") or pd.Series(close.index).diff().mode().iloc[0]).total_seconds()
    ratio = step_seconds / data_step
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(f"the data's step ({data_step / 3600:g} h) does not divide the scenario's "
                         f"({step_seconds / 3600:g} h): give data at the scenario's step or finer")
    close = close.iloc[:: int(round(ratio))]
    return np.diff(np.log(close.to_numpy(dtype=np.float64))), close


def compare(sim_result, real_close: pd.Series, window: int | None = None, *, stride: int = 1,
            tail_fraction: float = TAIL_FRACTION, lags=LAGS) -> pd.DataFrame:
    """Stylised facts of real closes beside a simulation's, one row per statistic.

    The real series is cut into every window of ``window`` returns (default: the simulated
    horizon's steps), each compared with one simulated path. Columns: ``real`` (the whole real
    series pooled), ``real_p5/p50/p95`` across windows, ``model_p5/p50/p95`` across paths,
    ``model_pooled`` (all paths' returns pooled), ``normal`` (i.i.d. Gaussian returns: 0, 4.72
    for Hill at 5%, 0.27% of 3-sigma steps; NaN where it depends on the level), ``real_rank``: the
    share of model paths below the real windows' median (where it sits in the model's distribution,
    0 to 1), and ``in_range``: the real windows' median lies within the model's 5-95% range.

    ``in_range`` is a weak test for noisy statistics (a 14-day window's autocorrelations have a
    standard error near 0.05): a model without volatility clustering can "contain" the real median
    at 0.9 rank. Read ``real_rank`` and the pooled values beside it.
    """
    step_seconds = float(sim_result.compiled.step_seconds)
    step_hours = step_seconds / 3600
    window = window or sim_result.n_steps
    real_r, used = _real_returns(real_close, step_seconds)
    if window > len(real_r):
        raise ValueError(f"the real series has {len(real_r)} returns at the {step_hours:g} h step between "
                         f"{used.index[0]:%Y-%m-%d %H:%M} and {used.index[-1]:%Y-%m-%d %H:%M}, fewer than one "
                         f"window of {window}: give a longer period")
    real, _ = _facts(real_r, step_hours, window, stride, tail_fraction, lags, QUANTILES)
    sim_r = simulated_log_returns(sim_result)
    if sim_r.shape[1] != window:  # a shorter window than the horizon: the paths' first `window` steps
        if window > sim_r.shape[1]:
            raise ValueError(f"window {window} is longer than the simulated horizon ({sim_r.shape[1]} steps)")
        sim_r = sim_r[:, :window]
    model, paths = _facts(sim_r, step_hours, None, 1, tail_fraction, lags, QUANTILES)
    from scipy import stats

    normal = pd.Series(0.0, index=real.index)
    normal[["annual_vol", "max_drawdown", "abs_return"]] = np.nan
    normal[["hill_left", "hill_right"]] = hill_limit(stats.norm, tail_fraction)
    normal["share_3sigma"] = GAUSSIAN_3SIGMA
    table = pd.DataFrame({
        "real": real["pooled"], "real_p5": real["p5"], "real_p50": real["p50"], "real_p95": real["p95"],
        "model_p5": model["p5"], "model_p50": model["p50"], "model_p95": model["p95"],
        "model_pooled": model["pooled"], "normal": normal,
    })
    table["real_rank"] = [_rank(paths[s].to_numpy(), v) for s, v in table["real_p50"].items()]
    table["in_range"] = (table["model_p5"] <= table["real_p50"]) & (table["real_p50"] <= table["model_p95"])
    table.attrs.update(
        real_start=used.index[0], real_end=used.index[-1], real_returns=len(real_r),
        real_windows=real.attrs["n_samples"], stride=stride, window=window, step_hours=step_hours,
        scenario=sim_result.name, n_paths=sim_result.n_paths, seed=sim_result.seed,
        tail_fraction=tail_fraction, tail_k=real.attrs["tail_k"],
        real_se=real["se"].to_dict(), model_se=model["se"].to_dict(),
    )
    return table


def _rank(values: np.ndarray, value: float) -> float:
    """Share of the finite ``values`` below ``value`` (ties count half): where it sits, 0 to 1."""
    values = values[np.isfinite(values)]
    if not values.size or value != value:
        return np.nan
    return float(((values < value).sum() + 0.5 * (values == value).sum()) / values.size)


_PERCENT = {"annual_vol", "max_drawdown", "abs_return", "share_3sigma"}


def _fmt(statistic: str, value: float) -> str:
    if value != value:
        return "-"
    if statistic in _PERCENT:
        return f"{value:.2%}" if statistic == "share_3sigma" else f"{value:.1%}"
    return f"{value:+.3f}" if statistic.startswith(("acf", "skew")) else f"{value:.2f}"


def render_comparison(table: pd.DataFrame, data_label: str = "real") -> str:
    """The :func:`compare` table as text for the terminal (``cascade stylised``)."""
    a = table.attrs
    columns = ["real", "real_p5", "real_p50", "real_p95", "model_p5", "model_p50", "model_p95",
               "model_pooled", "normal"]
    hours = a["window"] * a["step_hours"]
    lines = [
        f"real: {data_label}, {a['real_start']:%Y-%m-%d %H:%M} .. {a['real_end']:%Y-%m-%d %H:%M} UTC, "
        f"{a['real_returns']:,} returns of {a['step_hours']:g} h; {a['real_windows']:,} window{'s' if a['real_windows'] != 1 else ''} of "
        f"{a['window']} steps ({hours / 24:g} days) every {a['stride']} step(s)",
        f"model: {a['scenario']}, {a['n_paths']:,} paths x {a['window']} steps, seed {a['seed']}",
        f"Hill tail indices from the largest {a['tail_fraction']:.0%} ({a['tail_k']} returns per window or path)",
        "",
        f"{'statistic':<16}" + "".join(f"{c:>13}" for c in columns) + f"{'rank':>6}{'in range':>9}",
    ]
    for statistic, row in table.iterrows():
        rank = "-" if row["real_rank"] != row["real_rank"] else f"{row['real_rank']:.2f}"
        lines.append(f"{statistic:<16}" + "".join(f"{_fmt(statistic, row[c]):>13}" for c in columns)
                     + f"{rank:>6}{'yes' if row['in_range'] else 'NO':>9}")
    missed = [s for s, ok in table["in_range"].items() if not ok]
    lines += ["", "real: the whole real series pooled; p5/p50/p95: across real windows and model paths; "
              "model_pooled: all paths pooled; normal: i.i.d. Gaussian returns",
              "rank: share of model paths below the real windows' median; "
              "in range: that median lies within the model's 5-95%",
              "missed: " + (", ".join(missed) if missed else "none")]
    return "\n".join(lines)
