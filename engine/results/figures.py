"""PNG figures of a run folder (matplotlib, Agg): the report's main charts for documents and slides.

:func:`write_figures` draws from a :class:`~engine.results.store.Run` alone, like the HTML report,
and makes the same choices (:mod:`engine.results._prep`): ``fan.png`` (shock windows above the price
fan, levels and bands), ``liquidations.png``, ``open_interest.png``, ``flows.png`` (who sold: per step
and in total) and, when the run has strategies, ``pnl.png``. Figures are
:class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, never pyplot, so nothing
leaks between calls; the PNGs carry no software or time stamp, so the same run gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .._atomic import write_with
from . import _prep as prep

__all__ = ["DPI", "write_figures"]

DPI = 150
WIDTH_IN = 10.0  # 1500 px at 150 dpi: a page or slide width
_METADATA = {"Software": None}  # Agg writes no time stamp; drop the version too: same run, same bytes
_STYLE = {"fontsize": 9}


def write_figures(run, folder) -> list[Path]:
    """Draw the run's figures into ``folder`` (created) and return the PNG paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    axis = None
    index = run.fan.index if run.fan is not None else run.flows.index if run.flows is not None else None
    if index is not None and len(index):
        axis = prep.time_axis(index, run.manifest.get("step_seconds"))
    drawers = (("fan", _fan), ("liquidations", _liquidations), ("open_interest", _open_interest),
               ("flows", _flows), ("pnl", _pnl))
    for name, draw in drawers:
        fig = draw(run, axis)
        if fig is None:
            continue
        path = folder / f"{name}.png"
        FigureCanvasAgg(fig)
        write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata=_METADATA, facecolor="white"))
        written.append(path)
    return written


# --------------------------------------------------------------------------- helpers
def _figure(height_in: float, **kw) -> Figure:
    return Figure(figsize=(WIDTH_IN, height_in), layout="constrained", **kw)


def _dates(axis: prep.Axis):
    return axis.times.to_numpy()


def _time_axis(ax, axis: prep.Axis, labels: bool = True) -> None:
    lo, hi = axis.view
    ax.set_xlim(lo.to_numpy(), hi.to_numpy())
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if not labels:
        ax.tick_params(labelbottom=False)


def _style(ax) -> None:
    ax.grid(True, color="#e6e6e6", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _compact(suffix: str = ""):
    return FuncFormatter(lambda v, _: f"{v:,.4g}{suffix}")


def _price_formatter():
    return FuncFormatter(lambda v, _: prep.usd(v))


def _usd_per_step(ax, axis: prep.Axis, suffix: str, label: str) -> None:
    """A signed USD-per-step panel on the time axis: the zero line, compact ticks, the label."""
    ax.axhline(0, color="#888", linewidth=0.6)
    ax.yaxis.set_major_formatter(_compact(suffix=suffix))
    ax.set_ylabel(label, **_STYLE)
    _style(ax)
    _time_axis(ax, axis)


def _bars(ax, axis: prep.Axis, values: np.ndarray, bottom=None, **kw):
    """Bars one step wide centred on each step label, drawn as one stepped polygon (thousands of
    bar patches take seconds to draw; this takes milliseconds)."""
    edges = _edges(axis)
    low = np.zeros(len(values)) if bottom is None else np.asarray(bottom, dtype=float)
    high = low + np.asarray(values, dtype=float)
    return ax.fill_between(edges, np.append(low, low[-1]), np.append(high, high[-1]), step="post", linewidth=0, **kw)


def _edges(axis: prep.Axis) -> np.ndarray:
    times = _dates(axis)
    half = (axis.step / 2).to_timedelta64()
    return np.append(times - half, times[-1] + half)


def _fan_fill(ax, fan, metric: str, axis: prep.Axis, scale: float, color: str, name: str) -> None:
    pairs, middle = prep.bands(fan, metric)
    x = _dates(axis)
    for i, (lo, hi, span) in enumerate(pairs):
        alpha = 0.14 + 0.18 * i / max(len(pairs) - 1, 1)
        ax.fill_between(x, fan[(metric, lo)] / scale, fan[(metric, hi)] / scale, color=color, alpha=alpha,
                        linewidth=0, label=f"{name} {span} of paths")
    if middle is not None:
        ax.plot(x, fan[(metric, middle)] / scale, color=color, linewidth=1.6,
                label=f"{name} {'median' if middle == 'p50' else middle}")


# --------------------------------------------------------------------------- charts
def _fan(run, axis):
    fan = run.fan
    if axis is None or fan is None or not prep.quantiles(fan, "price"):
        return None
    shocks = run.shocks if run.shocks is not None and len(run.shocks) else None
    fig = _figure(5.8 if shocks is not None else 5.0)
    if shocks is not None:
        top, ax = fig.subplots(2, 1, sharex=True, height_ratios=[1 + 0.22 * len(shocks), 5])
        _shock_strip(top, shocks, axis)
    else:
        ax = fig.subplots()
    paths = run.sample_paths
    lo, hi, shown = prep.price_view(fan, run.levels)
    for k, col in enumerate(prep.sample_columns(paths)):
        ax.plot(_dates(axis), paths[col], color="#5a5a5a", alpha=0.45, linewidth=0.6,
                label="sample paths" if k == 0 else None)
    _fan_fill(ax, fan, "price", axis, 1.0, prep.FAN_COLOR, "price")
    touch = run.metrics.get("market", {})
    for low, high, text in run.bands:
        if high < lo or low > hi:  # a band far from this market's prices (its label would stretch the layout)
            continue
        ax.axhspan(low, high, color=prep.BAND_COLOR, alpha=0.22, linewidth=0, zorder=0)
        ax.annotate(f"{text} {prep.usd(low)}-{prep.usd(high)}", xy=(0.995, min(high, hi)),
                    xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=7.5, color="#8a6100")
    for level in shown:
        ax.axhline(level, color=prep.LEVEL_COLOR, linewidth=0.8, linestyle=":")
        p = touch.get(f"prob_touch_{level:g}")
        ax.annotate(prep.usd(level) + (f"  P(touch) {p:.1%}" if p is not None else ""), xy=(0.005, level),
                    xycoords=("axes fraction", "data"), ha="left", va="bottom", fontsize=7.5, color=prep.LEVEL_COLOR)
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_formatter(_price_formatter())
    ax.set_ylabel("BTC price (USD)", **_STYLE)
    _style(ax)
    _time_axis(ax, axis)
    ax.legend(fontsize=7.5, loc="upper right", frameon=False, ncol=2)
    fig.suptitle(f"{run.name}: price fan ({run.n_paths:,} paths)", fontsize=11)
    return fig


def _shock_strip(ax, shocks, axis: prep.Axis) -> None:
    start = shocks["start"].dt.tz_convert("UTC").dt.tz_localize(None)
    end = shocks["end"].dt.tz_convert("UTC").dt.tz_localize(None)
    end = end.where(end > start, start + axis.step)
    lo, hi = axis.view
    for i, (s, e, sid, kind) in enumerate(zip(start, end, shocks["id"], shocks["type"])):
        ax.barh(i, (e - s).to_timedelta64(), left=s.to_numpy(), height=0.7,
                color=prep.SHOCK_COLORS.get(kind, "#7f7f7f"), linewidth=0)
        inside = (min(e, hi) - lo) / (hi - lo) > 0.7
        ax.text(s.to_numpy() if inside else e.to_numpy(), i, f" {sid} ({kind.replace('_', ' ')})", va="center",
                ha="left", fontsize=7, color="white" if inside else "#222", clip_on=True)
    ax.set_ylim(len(shocks) - 0.5, -0.5)
    ax.set_yticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title("shocks", fontsize=8, loc="left", color="#555")
    _time_axis(ax, axis, labels=False)


def _liquidations(run, axis):
    series = prep.liquidation_series(run) if axis is not None else None
    if series is None:
        return None
    longs, shorts, p95, peak = series
    if peak == 0:
        return None
    scale, suffix = prep.unit(peak)
    fig = _figure(3.6)
    ax = fig.subplots()
    _bars(ax, axis, longs / scale, color=prep.LONG_COLOR, label="long liquidations (mean, sold)")
    _bars(ax, axis, shorts / scale, color=prep.SHORT_COLOR, label="short liquidations (mean, bought)")
    for side, (values, col) in p95.items():
        if np.any(values != 0):
            ax.step(_dates(axis), values / scale, where="post", linewidth=0.9, linestyle=":",
                    color="#7a1010" if side == "long" else "#135c13", label=f"{side}s {col}")
    _usd_per_step(ax, axis, suffix, f"USD {suffix} per step")
    ax.legend(fontsize=7.5, loc="lower right", frameon=False, ncol=2)
    fig.suptitle(f"{run.name}: liquidations per step (longs < 0 < shorts)", fontsize=11)
    return fig


def _open_interest(run, axis):
    fan = run.fan
    if axis is None or fan is None or not prep.quantiles(fan, "open_interest_usd"):
        return None
    scale, suffix = prep.unit(np.nanmax(np.abs(fan["open_interest_usd"].to_numpy(dtype=float))))
    fig = _figure(3.6)
    ax = fig.subplots()
    _fan_fill(ax, fan, "open_interest_usd", axis, scale, "#2a7f62", "open interest")
    ax.yaxis.set_major_formatter(_compact(suffix=suffix))
    ax.set_ylabel(f"open interest (USD {suffix})", **_STYLE)
    _style(ax)
    handles, labels = ax.get_legend_handles_labels()
    col = prep.quantile_column(fan, "depth_usd_per_pct", 50)
    if col is not None:
        depth = fan[("depth_usd_per_pct", col)].to_numpy(dtype=float)
        d_scale, d_suffix = prep.unit(np.nanmax(np.abs(depth)))
        ax2 = ax.twinx()
        ax2.step(_dates(axis), depth / d_scale, where="post", color=prep.DEPTH_COLOR, linewidth=1.2,
                 label="depth per 1% (right axis)")
        ax2.set_ylim(0, None)
        ax2.yaxis.set_major_formatter(_compact(suffix=d_suffix))
        ax2.set_ylabel(f"depth (USD {d_suffix} per 1%)", **_STYLE)
        ax2.tick_params(labelsize=8)
        ax2.spines["top"].set_visible(False)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    _time_axis(ax, axis)
    ax.legend(handles, labels, fontsize=7.5, loc="lower left", frameon=False, ncol=2)
    fig.suptitle(f"{run.name}: open interest and market depth", fontsize=11)
    return fig


def _flows(run, axis):
    frame = run.flows
    cols = prep.flow_columns(frame)
    if axis is None or not cols:
        return None
    values = frame[cols].to_numpy(dtype=float)
    pos_total, neg_total = np.clip(values, 0, None).sum(axis=1), np.clip(values, None, 0).sum(axis=1)
    totals = prep.flow_totals(frame)
    scale, suffix = prep.unit(max(pos_total.max(), -neg_total.min()))
    fig = _figure(4.4)
    ax, bx = fig.subplots(1, 2, width_ratios=[2.6, 1])
    up, down = np.zeros(len(values)), np.zeros(len(values))
    for i, col in enumerate(cols):
        name, color = prep.flow_style(col, i)
        v = values[:, i] / scale
        pos, neg = np.clip(v, 0, None), np.clip(v, None, 0)
        _bars(ax, axis, pos, bottom=up, color=color, label=name)
        _bars(ax, axis, neg, bottom=down, color=color)
        up += pos
        down += neg
    ax.step(_dates(axis), values.sum(axis=1) / scale, where="mid", color="#111", linewidth=0.7, label="net flow")
    _usd_per_step(ax, axis, suffix, f"USD {suffix} per step (sell < 0)")
    ax.legend(fontsize=7, loc="lower left", frameon=False, ncol=2)
    names = [prep.flow_style(c, i)[0] for i, c in enumerate(totals.index)] + ["net"]
    colors = [prep.flow_style(c, i)[1] for i, c in enumerate(totals.index)] + ["#111111"]
    sums = np.array([*totals.to_numpy(), totals.sum()])
    t_scale, t_suffix = prep.unit(np.abs(sums).max())
    y = np.arange(len(sums))
    bx.barh(y, sums / t_scale, color=colors, height=0.7)
    for yi, v in zip(y, sums):
        bx.annotate(prep.usd(v), xy=(v / t_scale, yi), xytext=(3 if v >= 0 else -3, 0), textcoords="offset points",
                    ha="left" if v >= 0 else "right", va="center", fontsize=7)
    bx.set_yticks(y, names, fontsize=7.5)
    bx.invert_yaxis()
    bx.axvline(0, color="#666", linewidth=0.7)
    scaled = sums / t_scale
    room = 0.45 * (max(scaled.max(), 0) - min(scaled.min(), 0) or 1.0)  # for the value labels
    bx.set_xlim(min(scaled.min(), 0) - (room if (scaled < 0).any() else 0),
                max(scaled.max(), 0) + (room if (scaled > 0).any() else 0.05 * room))
    bx.xaxis.set_major_formatter(_compact(suffix=t_suffix))
    bx.set_title("total over the horizon", fontsize=8.5)
    _style(bx)
    fig.suptitle(f"{run.name}: who sold (mean flow per step, USD; sell < 0)", fontsize=11)
    return fig


def _pnl(run, axis):
    table, pnl = run.strategies, run.strategy_pnl
    if table is None or pnl is None or table.empty:
        return None
    rows = prep.pnl_rows(table)
    labels = prep.row_labels(table)
    scale, suffix = prep.unit(float(np.nanmax(np.abs(pnl.to_numpy(dtype=float)))) or 1.0)
    stats = []
    for i in rows:
        s = prep.box_stats(pnl[str(i)].to_numpy())
        stats.append({**{k: s[k] / scale for k in ("whislo", "q1", "med", "q3", "whishi", "mean")},
                      "label": labels[i][:40], "fliers": []})
    fig = _figure(1.2 + 0.42 * len(rows))
    ax = fig.subplots()
    y = np.arange(1, len(rows) + 1)
    boxes = ax.bxp(stats, positions=y, orientation="horizontal", showmeans=True, meanline=True, widths=0.55,
                   patch_artist=True, medianprops={"color": "#111"}, meanprops={"color": "#111", "linestyle": "--"})
    for k, (patch, i) in enumerate(zip(boxes["boxes"], rows)):
        patch.set_facecolor("#bbbbbb" if i == 0 else prep.PALETTE[k % len(prep.PALETTE)])
        patch.set_alpha(0.55)
    es = [prep.box_stats(pnl[str(i)].to_numpy())["es99"] / scale for i in rows]
    ax.scatter(es, y, marker="x", color="#d62728", zorder=3, label="-ES99 (mean of the worst 1%)")
    ax.invert_yaxis()
    ax.axvline(0, color="#666", linewidth=0.7)
    ax.xaxis.set_major_formatter(_compact(suffix=suffix))
    ax.set_xlabel(f"PnL over the horizon (USD {suffix}); box 25-75%, whiskers 1-99%", **_STYLE)
    ax.tick_params(axis="y", labelsize=8)
    _style(ax)
    ax.legend(fontsize=7.5, loc="lower right", frameon=False)
    fig.suptitle(f"{run.name}: hedge PnL per path", fontsize=11)
    return fig
