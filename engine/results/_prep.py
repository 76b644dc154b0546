"""What the charts of a run show, shaped once for both renderers: the HTML report (plotly,
:mod:`engine.results.report`) and the PNG figures (matplotlib, :mod:`engine.results.figures`).

No plotting library is imported here: only the choices (which quantiles make which band, which
strategy rows a PnL chart shows, which grid a heatmap spans), the labels, the colours and the
number formats, so that the report and the figures say the same thing the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._format import usd as compact_usd, usd_k as compact_usd_k

# --------------------------------------------------------------------------- who traded
# engine.nb.kernel.FLOW_FIELDS in kernel order: label and colour. The nine flows are disjoint and add
# up to the step's net flow: "forced" is the scenarios' scheduled FORCED_FLOW_USD (a cross-asset
# shock's forced selling, a relief rally's momentum buying), not liquidations, which have their
# own fields, nor the cuts an initial-margin hike forces (margin_cuts).
FLOWS = {
    "etf": ("ETF flows", "#1f77b4"),
    "long_liquidations": ("long liquidations", "#d62728"),
    "short_liquidations": ("short liquidations", "#2ca02c"),
    "deleveraging": ("voluntary deleveraging", "#ff7f0e"),
    "dealers": ("dealer hedging", "#9467bd"),
    "miners": ("miners", "#8c564b"),
    "momentum": ("momentum traders", "#17becf"),
    "forced": ("cross-asset forced flow", "#e377c2"),
    "margin_cuts": ("margin-hike cuts", "#7f7f7f"),
}
LONG_COLOR, SHORT_COLOR = FLOWS["long_liquidations"][1], FLOWS["short_liquidations"][1]
FAN_COLOR = "#1f4e9c"
DEPTH_COLOR = "#ff7f0e"
LEVEL_COLOR = "#555555"
BAND_COLOR = "#f2b134"
SHOCK_COLORS = {
    "etf_flows": "#1f77b4", "margin_hike": "#d62728", "balance_sheet_tightening": "#9467bd",
    "cross_asset_shock": "#e377c2", "options_positioning": "#2ca02c", "exchange_failure": "#7f7f7f",
    "miner_capitulation": "#8c564b", "relief_rally": "#17becf", "price_jump": "#ff7f0e",
}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")

MAX_SAMPLE_PATHS = 8  # thin sample paths drawn on the fan
MAX_PNL_ROWS = 8  # strategy rows in the PnL chart: unhedged + the best by ES99
HEATMAP_METRICS = ("es99", "premium")  # over a strategy's two-parameter grid
SWEEP_METRICS = ("es99", "pnl_mean", "premium", "p_liquidated", "effectiveness", "var99", "max_dd_p95")
MAX_SWEEP_METRICS = 4


# --------------------------------------------------------------------------- numbers
def missing(x) -> bool:
    """None or NaN."""
    return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x))


def unit(max_abs: float) -> tuple[float, str]:
    """The scale and suffix that make ``max_abs`` a number of a few digits: (1e9, 'B'), ..."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if max_abs >= size:
            return size, suffix
    return 1.0, ""


def usd(x: float) -> str:
    """Compact USD: 61B, 689.2M, 73.6k (engine.scenario.units.format_amount), '-' for NaN."""
    return "-" if missing(x) else compact_usd(float(x))


def usd_k(x: float) -> str:
    """The hedge table's USD format (as engine.results.text's terminal tables): -19.65M, -258.2k, 740."""
    return "" if missing(x) else compact_usd_k(float(x))


def pct(x: float, digits: int = 1) -> str:
    return "-" if missing(x) else f"{x:.{digits}%}"


_FRACTION = re.compile(r"(^p_|^prob_|max_dd|drawdown|_change$|ratio|pct|_rate$|fraction|share|trigger|delta_target)")
_USD = re.compile(r"(_usd$|^premium$|_price$|^pnl_|^d_pnl|^d_es|^var\d|^es\d)")


def is_fraction(name: str) -> bool:
    """Metrics and parameters read as percentages (p_liquidated, max_dd_p95, hedge_ratio, ...)."""
    return bool(_FRACTION.search(name.removeprefix("param.")))


def fmt_value(name: str, x) -> str:
    """A metric or parameter value by its name: USD compact, fractions as %, else 4 digits."""
    if isinstance(x, str):
        return x
    if missing(x):
        return "-"
    bare = name.removeprefix("param.")
    if _USD.search(bare):
        return usd(x)
    if is_fraction(bare) and abs(x) <= 10:
        return f"{x:.0%}" if float(x * 100).is_integer() else f"{x:.1%}"
    return f"{x:.4g}"


def label(name: str) -> str:
    """A column name for a human: ``param.long_strike_usd`` -> ``long strike usd``."""
    return name.removeprefix("param.").replace("_", " ")


def slug(text: str) -> str:
    """A stable id fragment: lower case, [a-z0-9-] only."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


# --------------------------------------------------------------------------- time
@dataclass(frozen=True)
class Axis:
    """The run's time axis: step labels (UTC, naive) and the step length."""

    times: pd.DatetimeIndex
    step: pd.Timedelta
    regular: bool

    @property
    def start(self) -> pd.Timestamp:
        return self.times[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.times[-1] + self.step

    @property
    def view(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The x range every time chart shares: the horizon, half a step of room either side."""
        return self.start - self.step / 2, self.end - self.step / 2


def time_axis(index: pd.Index, step_seconds: float | None = None) -> Axis:
    times = pd.DatetimeIndex(index)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    diffs = np.diff(times.asi8)
    regular = len(diffs) == 0 or bool((diffs == diffs[0]).all())
    if step_seconds:
        step = pd.Timedelta(seconds=float(step_seconds))
    elif len(diffs):
        step = pd.Timedelta(int(np.median(diffs)), unit="ns")
    else:
        step = pd.Timedelta(hours=1)
    return Axis(times, step, regular)


# --------------------------------------------------------------------------- fans
def quantiles(fan: pd.DataFrame, metric: str) -> list[tuple[float, str]]:
    """The fan's quantiles of ``metric`` as (level, column label), increasing: [(5.0, 'p5'), ...]."""
    if fan is None or metric not in fan.columns.get_level_values(0):
        return []
    out = []
    for q in fan[metric].columns:
        try:
            out.append((float(str(q).lstrip("p")), str(q)))
        except ValueError:
            continue
    return sorted(out)


def bands(fan: pd.DataFrame, metric: str) -> tuple[list[tuple[str, str, str]], str | None]:
    """Which quantiles make which band: [(low col, high col, '5-95%'), ...] outermost first, and the
    middle column when the number of quantiles is odd (the median for the default 5/25/50/75/95)."""
    qs = quantiles(fan, metric)
    n = len(qs)
    pairs = [(qs[i][1], qs[n - 1 - i][1], f"{qs[i][0]:g}-{qs[n - 1 - i][0]:g}%") for i in range(n // 2)]
    middle = qs[n // 2][1] if n % 2 else None
    return pairs, middle


def quantile_column(fan: pd.DataFrame, metric: str, wanted: float) -> str | None:
    """The fan column of ``metric`` nearest to the percentile ``wanted`` (p95 -> 'p95')."""
    qs = quantiles(fan, metric)
    if not qs:
        return None
    return min(qs, key=lambda q: abs(q[0] - wanted))[1]


def price_view(fan: pd.DataFrame, levels: list[float]) -> tuple[float, float, list[float]]:
    """The price range the fan chart shows, from its outer band (sample paths may leave it: a single
    wild path should not squash the fan), and the levels inside it (levels within 15% of the band
    are drawn and widen the range; farther ones would squash the fan)."""
    values = fan["price"].to_numpy(dtype=float)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    shown = [lv for lv in levels if lo * 0.85 <= lv <= hi * 1.15]
    lo, hi = min([lo, *shown]), max([hi, *shown])
    pad = (hi - lo) * 0.04 or hi * 0.02
    return lo - pad, hi + pad, shown


def sample_columns(paths: pd.DataFrame | None) -> list:
    if paths is None:
        return []
    return list(paths.columns[:MAX_SAMPLE_PATHS])


# --------------------------------------------------------------------------- flows
def flow_columns(flows: pd.DataFrame | None) -> list[str]:
    """The flow fields with any flow, in kernel order (then unknown extra columns)."""
    if flows is None:
        return []
    known = [c for c in FLOWS if c in flows.columns]
    extra = [c for c in flows.columns if c not in FLOWS]
    return [c for c in known + extra if np.any(flows[c].to_numpy(dtype=float) != 0.0)]


def flow_style(column: str, i: int = 0) -> tuple[str, str]:
    return FLOWS.get(column, (label(column), PALETTE[i % len(PALETTE)]))


def flow_totals(flows: pd.DataFrame) -> pd.Series:
    """Cumulative mean flow per participant over the horizon (USD, sell < 0), most sold first."""
    cols = flow_columns(flows)
    return flows[cols].sum().sort_values()


# --------------------------------------------------------------------------- distributions
def histogram(values, bins: int = 60) -> tuple[np.ndarray, np.ndarray, float]:
    """Counts, bin centres and bin width of finite ``values`` (share of paths, so it sums to 1)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.zeros(0), np.zeros(0), 0.0
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-3 or 1.0)
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    return counts / x.size, (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])


# --------------------------------------------------------------------------- strategies
def row_labels(strategies: pd.DataFrame) -> list[str]:
    from ..portfolio.hedge import row_label

    return [row_label(r) for _, r in strategies.iterrows()]


def pnl_rows(strategies: pd.DataFrame, limit: int = MAX_PNL_ROWS) -> list[int]:
    """The table rows the PnL chart shows: all when they fit, else the unhedged row (0) and the
    ``limit - 1`` rows with the lowest ES99 (the best tails), best first."""
    n = len(strategies)
    if n <= limit:
        return list(range(n))
    es = strategies["es99"].to_numpy(dtype=float)
    rest = sorted(range(1, n), key=lambda i: (math.inf if math.isnan(es[i]) else es[i], i))
    return [0, *rest[: limit - 1]]


def box_stats(pnl: np.ndarray) -> dict:
    """A box from percentiles (1, 25, 50, 75, 99 as whiskers), the mean and -ES99 (the mean of the
    worst 1% of outcomes, as a PnL) of one row's per-path PnL."""
    x = np.asarray(pnl, dtype=float)
    x = x[np.isfinite(x)]
    p1, q1, med, q3, p99 = np.percentile(x, [1, 25, 50, 75, 99])
    tail = x[x <= p1]
    return {"whislo": p1, "q1": q1, "med": med, "q3": q3, "whishi": p99, "mean": float(x.mean()),
            "es99": float(tail.mean()) if tail.size else p1}


@dataclass(frozen=True)
class Grid:
    """One heatmap: ``z[y, x]`` of ``metric`` over two parameters, and what it is a slice of."""

    x: str
    y: str
    xs: list
    ys: list
    z: np.ndarray
    metric: str
    note: str = ""


def ordered(values) -> list:
    """Parameter values sorted for an axis: numbers by value, swept durations (the texts a
    duration sweep expands to: ``7d``, ``14d``, ``1d12h``) by their length, not their spelling."""
    from ..scenario.units import DURATION_PATTERN, parse_duration

    values = list(values)
    if values and all(isinstance(v, str) and re.fullmatch(DURATION_PATTERN, v) for v in values):
        return sorted(values, key=parse_duration)
    return sorted(values)


def grid(frame: pd.DataFrame, x: str, y: str, metric: str) -> Grid:
    """``metric`` pivoted over the values of ``x`` and ``y`` (sorted, durations by length); cells
    without a row are NaN; several rows in a cell are averaged (the note says how many)."""
    data = frame[[x, y, metric]].dropna(subset=[x, y])
    table = data.pivot_table(index=y, columns=x, values=metric, aggfunc="mean", dropna=False)
    table = table.reindex(index=ordered(table.index), columns=ordered(table.columns))
    counts = data.groupby([y, x]).size()
    note = f"mean of up to {int(counts.max())} rows per cell" if len(counts) and counts.max() > 1 else ""
    return Grid(x, y, list(table.columns), list(table.index), table.to_numpy(dtype=float), metric, note)


def varied_params(frame: pd.DataFrame) -> list[str]:
    """The ``param.*`` columns that take more than one value in ``frame``."""
    return [c for c in frame.columns if str(c).startswith("param.") and frame[c].dropna().nunique() > 1]


def strategy_grids(strategies: pd.DataFrame | None) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(strategy, x param, y param, its rows) for each strategy that varies exactly two parameters;
    x is the one with more values."""
    if strategies is None:
        return []
    out = []
    for name in dict.fromkeys(strategies["strategy"]):
        rows = strategies[strategies["strategy"] == name]
        params = varied_params(rows)
        if len(params) == 2:
            a, b = params
            x, y = (a, b) if rows[a].nunique() >= rows[b].nunique() else (b, a)
            out.append((str(name), x, y, rows))
    return out


def sweep_layout(frame: pd.DataFrame, metrics=None) -> tuple[str, str, list[str], pd.DataFrame, str]:
    """How a tidy sweep table (``param.*`` columns + metric columns) is drawn: its first two
    parameters as x and y, up to :data:`MAX_SWEEP_METRICS` metrics (the usual hedge metrics when
    present, else the first numeric columns), and the slice drawn when more parameters vary (the
    others at their first value). Raises ``ValueError`` when it has fewer than two parameters."""
    params = [c for c in frame.columns if str(c).startswith("param.")]
    if len(params) < 2:
        raise ValueError(f"a sweep heatmap needs two param.* columns, the table has {params or 'none'}")
    x, y = params[:2]
    numeric = [c for c in frame.columns if c not in params and pd.api.types.is_numeric_dtype(frame[c])
               and frame[c].notna().any()]
    if metrics is None:
        metrics = [m for m in SWEEP_METRICS if m in numeric]
        metrics += [m for m in numeric if m not in metrics]
        metrics = metrics[:MAX_SWEEP_METRICS]
    else:
        metrics = [m for m in metrics if m in numeric]
    sliced, fixed = frame, []
    for p in params[2:]:
        values = ordered(frame[p].dropna().unique())
        if len(values) > 1:
            sliced = sliced[sliced[p] == values[0]]
            fixed.append(f"{label(p)} = {fmt_value(p, values[0])}")
    note = f"at {', '.join(fixed)}" if fixed else ""
    return x, y, metrics, sliced, note


def liquidation_series(run):
    """Per-step mean liquidations (longs sold <= 0, shorts bought >= 0), each side's p95 from the
    fan signed the same way ({side: (values, column)}), and the largest magnitude; ``None`` when the
    run has no per-step flows. Shared by the HTML chart and the PNG."""
    flows, fan = run.flows, run.fan
    if flows is None or not {"long_liquidations", "short_liquidations"} <= set(flows.columns):
        return None
    longs = flows["long_liquidations"].to_numpy(dtype=float)
    shorts = flows["short_liquidations"].to_numpy(dtype=float)
    p95 = {}
    for side, sign in (("long", -1.0), ("short", 1.0)):
        col = quantile_column(fan, f"{side}_liquidations_usd", 95) if fan is not None else None
        if col is not None:
            p95[side] = (sign * fan[(f"{side}_liquidations_usd", col)].to_numpy(dtype=float), col)
    peak = max([np.abs(longs).max(), np.abs(shorts).max(), *[np.abs(v).max() for v, _ in p95.values()]])
    return longs, shorts, p95, peak
