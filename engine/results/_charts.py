"""The report's plotly figures, one builder per chart, from a :class:`~engine.results.store.Run`.

Every builder returns a :class:`Chart` (a figure, its height and how to read it) or a
:class:`Skip` (why there is nothing to draw), so the report never shows an empty chart. Arrays go
out as float32 (plotly encodes them as base64) and time axes as ``x0``/``dx`` when the steps are
regular, which keeps a 720-step report small. The time charts share one x range and one pair of
margins, so their plot areas line up under each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import _prep as prep
from .._format import signed_3g

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
MARGIN = {"l": 84, "r": 84, "t": 40, "b": 36}  # fixed (no automargin) on the time charts: plot areas align


@dataclass
class Chart:
    id: str
    figure: go.Figure
    height: int
    caption: str
    time_axis: bool = False  # zoom is shared between the time charts


@dataclass
class Skip:
    note: str


# --------------------------------------------------------------------------- helpers
def _f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _stamp(t: pd.Timestamp) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _tx(axis: prep.Axis) -> dict:
    """The x values of a per-step trace: ``x0``/``dx`` for a regular axis, else the labels."""
    if axis.regular:
        return {"x0": _stamp(axis.start), "dx": axis.step.total_seconds() * 1000.0}
    return {"x": [_stamp(t) for t in axis.times]}


def _layout(height: int, *, time: prep.Axis | None = None, **extra) -> dict:
    layout = {
        "height": height, "margin": dict(MARGIN), "font": {"family": FONT, "size": 12, "color": "#222"},
        "paper_bgcolor": "white", "plot_bgcolor": "white",
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                   "font": {"size": 11}},
        "hoverlabel": {"font": {"size": 11}},
        "xaxis": {"gridcolor": "#eee", "linecolor": "#999", "zeroline": False},
        "yaxis": {"gridcolor": "#eee", "linecolor": "#999", "zerolinecolor": "#bbb"},
    }
    if time is not None:
        lo, hi = time.view
        layout["xaxis"].update(type="date", range=[_stamp(lo), _stamp(hi)], hoverformat="%a %d %b %H:%M UTC")
        layout["yaxis"].update(automargin=False, title={"standoff": 6})
        layout["hovermode"] = "x unified"
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _time_chart(chart_id: str, fig: go.Figure, height: int, axis: prep.Axis, caption: str, **layout) -> Chart:
    """A chart on the run's time axis (zoomed together with the others): ``layout`` over :func:`_layout`'s."""
    fig.update_layout(_layout(height, time=axis, **layout))
    return Chart(chart_id, fig, height, caption, time_axis=True)


def _e_plotly(text: str) -> str:
    """Text for a plotly label: plotly renders a subset of HTML, so escape its markup characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _fan_traces(fan: pd.DataFrame, metric: str, axis: prep.Axis, scale: float, fmt: str, color: str,
                name: str, yaxis: str = "y") -> list[go.Scatter]:
    """Bands (outermost first, darker inwards) and the middle line of ``metric``'s fan."""
    pairs, middle = prep.bands(fan, metric)
    traces = []
    for i, (lo, hi, span) in enumerate(pairs):
        alpha = 0.12 + 0.16 * i / max(len(pairs) - 1, 1)
        traces.append(go.Scatter(y=_f32(fan[(metric, lo)] / scale), **_tx(axis), mode="lines", line={"width": 0},
                                 hovertemplate=f"{lo} {fmt}<extra></extra>", showlegend=False, yaxis=yaxis))
        traces.append(go.Scatter(y=_f32(fan[(metric, hi)] / scale), **_tx(axis), mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor=_rgba(color, alpha), name=f"{name} {span} of paths",
                                 hovertemplate=f"{hi} {fmt}<extra></extra>", yaxis=yaxis))
    if middle is not None:
        title = "median" if middle == "p50" else middle
        traces.append(go.Scatter(y=_f32(fan[(metric, middle)] / scale), **_tx(axis), mode="lines",
                                 line={"color": color, "width": 2}, name=f"{name} {title}",
                                 hovertemplate=f"{title} {fmt}<extra></extra>", yaxis=yaxis))
    return traces


# --------------------------------------------------------------------------- time charts
def shocks(run, axis: prep.Axis) -> Chart | Skip:
    frame = run.shocks
    if frame is None or frame.empty:
        return Skip("The scenario has no shocks: the market runs on its base parameters only.")
    start = pd.to_datetime(frame["start"], utc=True).dt.tz_localize(None)
    end = pd.to_datetime(frame["end"], utc=True).dt.tz_localize(None)
    end = end.where(end > start, start + axis.step)
    lo, hi = axis.view
    share = ((end.clip(upper=hi) - lo) / (hi - lo)).to_numpy()
    names = [f"{i} ({t.replace('_', ' ')})" for i, t in zip(frame["id"], frame["type"])]
    rows = list(range(len(frame)))
    fig = go.Figure(go.Bar(
        base=[_stamp(t) for t in start], x=((end - start).dt.total_seconds() * 1000).to_numpy(), y=rows,
        orientation="h", marker={"color": [prep.SHOCK_COLORS.get(t, "#7f7f7f") for t in frame["type"]]},
        width=0.72, customdata=np.stack([names, [_stamp(t)[:16] for t in start], [_stamp(t)[:16] for t in end]], axis=1),
        hovertemplate="%{customdata[0]}<br>%{customdata[1]} .. %{customdata[2]} UTC<extra></extra>", showlegend=False))
    # labels as annotations: inside the bar (white) when it runs on to the right end, else after it
    notes = []
    for row, (s, e, text, inside) in enumerate(zip(start, end, names, share > 0.7)):
        notes.append({"x": _stamp(max(s, lo) if inside else e), "y": row, "xanchor": "left", "showarrow": False,
                      "text": f" {_e_plotly(text)}", "font": {"size": 11, "color": "white" if inside else "#222"}})
    height = 50 + 26 * len(frame)
    return _time_chart("chart-shocks", fig, height, axis,
                       "Each bar is one shock's window on the horizon (ramps included); hover for its exact times. "
                       "The charts below share this time axis, and zooming one zooms them all.",
                       hovermode="closest", margin={"t": 8, "b": 24}, annotations=notes,
                       yaxis={"autorange": "reversed", "showticklabels": False, "showgrid": False,
                              "zeroline": False, "range": [len(frame) - 0.5, -0.5]})


def price_fan(run, axis: prep.Axis) -> Chart | Skip:
    fan = run.fan
    if fan is None or not prep.quantiles(fan, "price"):
        return Skip("This run kept no per-step prices (keep_steps=False): no price fan.")
    paths = run.sample_paths
    lo, hi, shown = prep.price_view(fan, run.levels)
    traces = []
    for k, col in enumerate(prep.sample_columns(paths)):
        traces.append(go.Scatter(y=_f32(paths[col]), **_tx(axis), mode="lines", hoverinfo="skip",
                                 line={"color": "rgba(90,90,90,0.45)", "width": 0.8}, legendgroup="paths",
                                 name="sample paths", showlegend=k == 0))
    traces += _fan_traces(fan, "price", axis, 1.0, "%{y:,.0f}", prep.FAN_COLOR, "price")
    touch = run.metrics.get("market", {})
    shapes, notes = [], []
    for low, high, text in run.bands:
        shapes.append({"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "y0": low, "y1": high, "layer": "below",
                       "fillcolor": _rgba(prep.BAND_COLOR, 0.22), "line": {"width": 0}})
        notes.append({"xref": "paper", "x": 0.995, "xanchor": "right", "y": high, "yanchor": "bottom",
                      "text": f"{text} {prep.usd(low)}-{prep.usd(high)}", "showarrow": False,
                      "font": {"size": 10, "color": "#8a6100"}, "bgcolor": "rgba(255,255,255,0.75)"})
    for level in shown:
        p = touch.get(f"prob_touch_{level:g}")
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": level, "y1": level,
                       "line": {"color": prep.LEVEL_COLOR, "width": 1, "dash": "dot"}})
        text = prep.usd(level) + (f" · P(touch) {p:.1%}" if p is not None else "")
        notes.append({"xref": "paper", "x": 0.005, "xanchor": "left", "y": level, "yanchor": "bottom",
                      "text": text, "showarrow": False, "font": {"size": 10, "color": prep.LEVEL_COLOR}})
    hidden = [prep.usd(v) for v in run.levels if v not in shown]
    caption = ("Shaded: the share of paths between two percentiles at each step (darker = nearer the middle); "
               "solid line: the median; grey lines: the first sample paths. Dotted lines are the scenario's price "
               "levels with the probability that a path touches them over the horizon.")
    if hidden:
        caption += f" Levels outside the simulated range, not drawn: {', '.join(hidden)}."
    return _time_chart("chart-price-fan", go.Figure(traces), 480, axis, caption, shapes=shapes, annotations=notes,
                       yaxis={"title": {"text": "BTC price (USD)"}, "range": [lo, hi], "tickformat": "~s"})


def liquidations(run, axis: prep.Axis) -> Chart | Skip:
    series = prep.liquidation_series(run)
    if series is None:
        return Skip("This run has no per-step flows: no liquidation chart.")
    longs, shorts, p95, peak = series
    if peak == 0:
        return Skip("No position was liquidated on any path at any step.")
    scale, suffix = prep.unit(peak)
    fmt = f"%{{y:,.3g}}{suffix}"
    traces = [go.Bar(y=_f32(longs / scale), **_tx(axis), name="long liquidations (mean, sold)",
                     marker={"color": prep.LONG_COLOR, "line": {"width": 0}}, hovertemplate=f"longs mean {fmt}<extra></extra>"),
              go.Bar(y=_f32(shorts / scale), **_tx(axis), name="short liquidations (mean, bought)",
                     marker={"color": prep.SHORT_COLOR, "line": {"width": 0}}, hovertemplate=f"shorts mean {fmt}<extra></extra>")]
    for side, (values, col) in p95.items():
        if np.any(values != 0):
            color = "#7a1010" if side == "long" else "#135c13"
            traces.append(go.Scatter(y=_f32(values / scale), **_tx(axis), mode="lines", name=f"{side}s {col}",
                                     line={"color": color, "width": 1.2, "dash": "dot", "shape": "hv"},
                                     hovertemplate=f"{side}s {col} {fmt}<extra></extra>"))
    return _time_chart("chart-liquidations", go.Figure(traces), 340, axis,
                       "Liquidated notional per step, averaged over paths: long positions sold below zero (red), "
                       "short positions bought back above (green). Dotted: the 95th percentile across paths of each "
                       "side, a bad but not extreme path's step.", barmode="relative", bargap=0,
                       yaxis={"title": {"text": f"USD {suffix} per step"}, "ticksuffix": suffix})


def open_interest(run, axis: prep.Axis) -> Chart | Skip:
    fan = run.fan
    if fan is None or not prep.quantiles(fan, "open_interest_usd"):
        return Skip("This run kept no per-step open interest (keep_steps=False).")
    oi = fan["open_interest_usd"].to_numpy(dtype=float)
    scale, suffix = prep.unit(np.nanmax(np.abs(oi)))
    traces = _fan_traces(fan, "open_interest_usd", axis, scale, f"%{{y:,.4g}}{suffix}", "#2a7f62", "open interest")
    layout = {"yaxis": {"title": {"text": f"open interest (USD {suffix})"}, "ticksuffix": suffix}}
    depth_col = prep.quantile_column(fan, "depth_usd_per_pct", 50)
    if depth_col is not None:
        depth = fan[("depth_usd_per_pct", depth_col)].to_numpy(dtype=float)
        d_scale, d_suffix = prep.unit(np.nanmax(np.abs(depth)))
        traces.append(go.Scatter(y=_f32(depth / d_scale), **_tx(axis), mode="lines", yaxis="y2",
                                 name="depth per 1% (right axis)",
                                 line={"color": prep.DEPTH_COLOR, "width": 1.5, "shape": "hv"},
                                 hovertemplate=f"depth %{{y:,.3g}}{d_suffix} per 1%<extra></extra>"))
        layout["yaxis2"] = {"title": {"text": f"depth (USD {d_suffix} per 1%)"}, "overlaying": "y", "side": "right",
                            "showgrid": False, "ticksuffix": d_suffix, "rangemode": "tozero", "linecolor": "#999",
                            "tickmode": "auto", "nticks": 6, "automargin": False}
    return _time_chart("chart-open-interest", go.Figure(traces), 340, axis,
                       "Open interest of the simulated book (bands: percentiles across paths; line: median) and, on "
                       "the right axis, the order-book depth in USD per 1% price move, which the shocks scale "
                       "(the same on every path).", **layout)


def flows(run, axis: prep.Axis) -> Chart | Skip:
    frame = run.flows
    cols = prep.flow_columns(frame)
    if not cols:
        return Skip("No participant traded on average at any step.")
    values = frame[cols].to_numpy(dtype=float)
    net = values.sum(axis=1)
    pos, neg = np.clip(values, 0, None).sum(axis=1), np.clip(values, None, 0).sum(axis=1)
    scale, suffix = prep.unit(max(pos.max(), -neg.min()))
    fmt = f"%{{y:,.3g}}{suffix}"
    traces = []
    for i, col in enumerate(cols):
        name, color = prep.flow_style(col, i)
        traces.append(go.Bar(y=_f32(frame[col] / scale), **_tx(axis), name=name,
                             marker={"color": color, "line": {"width": 0}}, hovertemplate=f"{name} {fmt}<extra></extra>"))
    traces.append(go.Scatter(y=_f32(net / scale), **_tx(axis), mode="lines", name="net flow",
                             line={"color": "#111", "width": 1}, hovertemplate=f"net {fmt}<extra></extra>"))
    return _time_chart("chart-flows", go.Figure(traces), 400, axis,
                       "Mean flow per step by who traded: sells below zero, buys above; the black line is the net "
                       "flow that moves the price. Liquidations, margin-hike cuts and the scenario's cross-asset "
                       "forced flow are separate sources, so nothing is counted twice.", barmode="relative", bargap=0,
                       yaxis={"title": {"text": f"USD {suffix} per step (sell < 0)"}, "ticksuffix": suffix})


def flow_totals(run) -> Chart | Skip:
    frame = run.flows
    if not prep.flow_columns(frame):
        return Skip("No participant traded on average over the horizon.")
    totals = prep.flow_totals(frame)
    net = float(totals.sum())
    scale, suffix = prep.unit(max(np.abs(totals).max(), abs(net)))
    names = [prep.flow_style(c, i)[0] for i, c in enumerate(totals.index)] + ["net"]
    colors = [prep.flow_style(c, i)[1] for i, c in enumerate(totals.index)] + ["#111111"]
    values = [*totals.to_numpy(), net]
    fig = go.Figure(go.Bar(x=_f32(np.array(values) / scale), y=names, orientation="h", marker={"color": colors},
                           text=[prep.usd(v) for v in values], textposition="outside", cliponaxis=False,
                           hovertemplate="%{y}: %{text}<extra></extra>", showlegend=False))
    height = 80 + 28 * len(names)
    scaled = np.array(values) / scale
    room = 0.22 * (scaled.max() - scaled.min() or 1.0)  # for the value labels outside the bars
    fig.update_layout(_layout(height, margin={"l": 170, "r": 60, "t": 16},
                              xaxis={"title": {"text": f"USD {suffix} over the horizon (sell < 0)"},
                                     "range": [min(scaled.min(), 0) - room, max(scaled.max(), 0) + room],
                                     "ticksuffix": suffix, "zeroline": True, "zerolinecolor": "#666"},
                              yaxis={"autorange": "reversed"}))
    return Chart("chart-flows-total", fig, height,
                 "Each participant's flow summed over the horizon, averaged over paths (USD; sell < 0), biggest "
                 "seller first; the last bar is the net.")


# --------------------------------------------------------------------------- distributions
def min_price(run) -> Chart | Skip:
    pp = run.per_path
    if pp is None or "min_price" not in pp:
        return Skip("No per-path summary in this run.")
    share, centres, width = prep.histogram(pp["min_price"])
    if not share.size:
        return Skip("No finite minimum price.")
    touch = run.metrics.get("market", {})
    fig = go.Figure(go.Bar(x=_f32(centres), y=_f32(share * 100), width=width, marker={"color": prep.FAN_COLOR,
                           "line": {"width": 0}}, hovertemplate="low %{x:,.0f}: %{y:.2f}% of paths<extra></extra>",
                           showlegend=False))
    lo, hi = centres[0] - width, centres[-1] + width
    near = [lv for lv in run.levels if lo * 0.9 <= lv <= hi * 1.1]
    shapes, notes = [], []
    for low, high, _ in run.bands:
        shapes.append({"type": "rect", "yref": "paper", "y0": 0, "y1": 1, "x0": low, "x1": high, "layer": "below",
                       "fillcolor": _rgba(prep.BAND_COLOR, 0.22), "line": {"width": 0}})
    for level in near:
        p = touch.get(f"prob_touch_{level:g}")
        shapes.append({"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": level, "x1": level,
                       "line": {"color": prep.LEVEL_COLOR, "width": 1, "dash": "dot"}})
        notes.append({"yref": "paper", "y": 1, "yanchor": "top", "x": level, "xanchor": "right", "textangle": -90,
                      "text": prep.usd(level) + (f" {p:.1%}" if p is not None else ""), "showarrow": False,
                      "font": {"size": 10, "color": prep.LEVEL_COLOR}, "bgcolor": "rgba(255,255,255,0.8)"})
    lo, hi = min([lo, *near]) - width, max([hi, *near]) + width
    fig.update_layout(_layout(320, shapes=shapes, annotations=notes, bargap=0,
                              xaxis={"title": {"text": "lowest price on the path (USD)"}, "tickformat": "~s",
                                     "range": [lo, hi]},
                              yaxis={"title": {"text": "% of paths"}, "ticksuffix": "%"}))
    far = [prep.usd(lv) for lv in run.levels if lv not in near]
    return Chart("chart-min-price", fig, 320,
                 "Where each path's lowest price fell. Dotted lines: the price levels, with the share of paths "
                 "whose low reached them (P(touch)); shaded: the scenario's price bands."
                 + (f" Levels far from every low, not drawn: {', '.join(far)}." if far else ""))


def drawdown(run) -> Chart | Skip:
    pp = run.per_path
    if pp is None or "max_drawdown" not in pp:
        return Skip("No per-path summary in this run.")
    share, centres, width = prep.histogram(pp["max_drawdown"] * 100)
    if not share.size:
        return Skip("No finite drawdown.")
    median = float(np.median(pp["max_drawdown"]) * 100)
    fig = go.Figure(go.Bar(x=_f32(centres), y=_f32(share * 100), width=width, marker={"color": "#b8433a",
                           "line": {"width": 0}}, hovertemplate="drawdown %{x:.1f}%: %{y:.2f}% of paths<extra></extra>",
                           showlegend=False))
    fig.update_layout(_layout(320, bargap=0, shapes=[{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": median,
                                                     "x1": median, "line": {"color": "#111", "width": 1, "dash": "dot"}}],
                              annotations=[{"yref": "paper", "y": 1, "x": median, "xanchor": "left", "yanchor": "top",
                                            "text": f" median {median:.1f}%", "showarrow": False, "font": {"size": 10}}],
                              xaxis={"title": {"text": "largest fall from a running peak (%)"}, "ticksuffix": "%"},
                              yaxis={"title": {"text": "% of paths"}, "ticksuffix": "%"}))
    return Chart("chart-drawdown", fig, 320, "How far each path fell from its running peak at worst (max drawdown).")


# --------------------------------------------------------------------------- strategies
def strategy_pnl(run) -> Chart | Skip:
    table, pnl = run.strategies, run.strategy_pnl
    if table is None or pnl is None or table.empty:
        return Skip("No strategies in this run.")
    rows = prep.pnl_rows(table)
    labels = prep.row_labels(table)
    scale, suffix = prep.unit(float(np.nanmax(np.abs(pnl.to_numpy(dtype=float)))) or 1.0)
    traces, es_x, es_y = [], [], []
    for k, i in enumerate(rows):
        s = prep.box_stats(pnl[str(i)].to_numpy())
        color = "#555555" if i == 0 else prep.PALETTE[k % len(prep.PALETTE)]
        traces.append(go.Box(y=[labels[i]], q1=[s["q1"] / scale], median=[s["med"] / scale], q3=[s["q3"] / scale],
                             lowerfence=[s["whislo"] / scale], upperfence=[s["whishi"] / scale],
                             mean=[s["mean"] / scale], orientation="h", name=labels[i], marker={"color": color},
                             line={"width": 1.5}, showlegend=False, hoverinfo="x"))
        es_x.append(s["es99"] / scale)
        es_y.append(labels[i])
    traces.append(go.Scatter(x=_f32(es_x), y=es_y, mode="markers", name="-ES99 (mean of the worst 1%)",
                             marker={"symbol": "x", "size": 9, "color": "#d62728"},
                             hovertemplate=f"-ES99 %{{x:,.1f}}{suffix}<extra></extra>"))
    height = 110 + 44 * len(rows)
    fig = go.Figure(traces)
    fig.update_layout(_layout(height, margin={"l": 200, "r": 40, "t": 30}, hovermode="closest",
                              xaxis={"title": {"text": f"PnL over the horizon (USD {suffix})"}, "ticksuffix": suffix,
                                     "zeroline": True, "zerolinecolor": "#666"},
                              yaxis={"autorange": "reversed", "type": "category"}))
    shown = "every row" if len(rows) == len(table) else (
        f"the unhedged book and the {len(rows) - 1} rows with the lowest ES99 out of {len(table) - 1}")
    return Chart("chart-strategy-pnl", fig, height,
                 f"PnL per path of {shown}: box from the 25th to the 75th percentile with the median, whiskers from "
                 "the 1st to the 99th, dashed the mean; the red cross is minus the ES99, the mean of the worst 1% "
                 "of paths.")


_LOWER_IS_BETTER = ("es", "var", "premium", "p_liquidated", "max_dd", "d_es")


def heatmap(g: prep.Grid, chart_id: str, title: str, caption: str) -> Chart | Skip:
    if not np.isfinite(g.z).any():
        return Skip(f"{title}: no value to draw.")
    xs = _tick_labels(g.x, g.xs)
    ys = _tick_labels(g.y, g.ys)
    text = [["" if prep.missing(v) else prep.fmt_value(g.metric, v) for v in row] for row in g.z]
    lower_better = g.metric.startswith(_LOWER_IS_BETTER)
    higher_better = g.metric.startswith(("pnl", "effectiveness", "d_pnl"))
    scale = "RdYlGn_r" if lower_better else "RdYlGn" if higher_better else "Viridis"
    fig = go.Figure(go.Heatmap(z=_f32(g.z), x=xs, y=ys, text=text, texttemplate="%{text}", colorscale=scale,
                               textfont={"size": 11}, hovertemplate=f"{prep.label(g.x)} %{{x}}, {prep.label(g.y)} "
                               f"%{{y}}: %{{text}}<extra></extra>",
                               colorbar={"thickness": 12, "tickformat": ".0%" if prep.is_fraction(g.metric) else "~s"}))
    height = max(260, 120 + 34 * len(ys))
    fig.update_layout(_layout(height, margin={"l": 90, "r": 30, "t": 40}, title={"text": title, "font": {"size": 13}},
                              xaxis={"title": {"text": prep.label(g.x)}, "type": "category"},
                              yaxis={"title": {"text": prep.label(g.y)}, "type": "category"}))
    return Chart(chart_id, fig, height, caption + (f" ({g.note})" if g.note else ""))


def _tick_labels(name: str, values: list) -> list[str]:
    out = [prep.fmt_value(name, v) for v in values]
    if len(set(out)) < len(out):
        out = [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in values]
    return out


def strategy_heatmaps(run) -> list[Chart | Skip]:
    out = []
    for name, x, y, rows in prep.strategy_grids(run.strategies):
        for metric in prep.HEATMAP_METRICS:
            if metric not in rows:
                continue
            g = prep.grid(rows, x, y, metric)
            out.append(heatmap(g, f"chart-heatmap-{prep.slug(name)}-{prep.slug(metric)}",
                               f"{name}: {metric.upper() if metric.startswith('es') else metric}",
                               f"{name}'s {metric} over its grid of {prep.label(x)} x {prep.label(y)}."))
    return out


def sweep_heatmaps(frame: pd.DataFrame, metrics=None, id_prefix: str = "chart-sweep") -> list[Chart | Skip]:
    """Heatmaps of a tidy sweep table over its first two ``param.*`` columns (see
    :func:`engine.results._prep.sweep_layout`), one per metric; ids ``<id_prefix>-<metric>``."""
    try:
        x, y, chosen, sliced, note = prep.sweep_layout(frame, metrics)
    except ValueError as error:
        return [Skip(str(error))]
    if not chosen:
        return [Skip("the sweep table has no numeric metric column to draw")]
    out = []
    for metric in chosen:
        g = prep.grid(sliced, x, y, metric)
        where = f" {note}" if note else ""
        out.append(heatmap(g, f"{id_prefix}-{prep.slug(metric)}", f"{metric}{where}",
                           f"{metric} over {prep.label(x)} x {prep.label(y)}{where}."))
    return out


# --------------------------------------------------------------------------- shock attribution
def _attribution_label(metric: str) -> str:
    if metric == "min_price_p50":
        return "median lowest price (USD)"
    if metric == "liquidations_mean":
        return "mean liquidations per path (USD)"
    return f"{metric.removeprefix('es99.')}: ES99 (USD)"


_compact = signed_3g


def attribution(run) -> list[Chart | Skip]:
    """One bar chart per metric of ``cascade attribute``'s table: each shock's marginal effect
    and the interaction, with +-2 standard errors; red where the shock makes things worse (a
    lower low, more liquidations, a larger ES99)."""
    frame = run.tables.get("attribution")
    if frame is None or frame.empty:
        return [Skip("no attribution table in this run folder (cascade attribute writes one)")]
    metrics = [c for c in frame.columns if c not in ("shock", "type") and not c.endswith("_se")]
    rows = frame[frame["shock"] != "all shocks"]
    total = frame[frame["shock"] == "all shocks"]
    labels = [str(s) for s in rows["shock"]][::-1]  # first shock on top
    out: list[Chart | Skip] = []
    for metric in metrics:
        values = rows[metric].to_numpy(np.float64)[::-1]
        se = rows[f"{metric}_se"].to_numpy(np.float64)[::-1]
        worse = values < 0 if metric == "min_price_p50" else values > 0
        colors = ["#c0392b" if w else "#27ae60" for w in worse]
        fmt = ",.0f" if metric == "min_price_p50" else "~s"
        fig = go.Figure(go.Bar(x=_f32(values), y=labels, orientation="h", marker={"color": colors},
                               error_x={"type": "data", "array": _f32(2.0 * se), "visible": True, "thickness": 1},
                               hovertemplate=f"%{{y}}: %{{x:{fmt}}}<extra></extra>"))
        all_text = ""
        if not total.empty:
            t = float(total[metric].iloc[0])
            all_text = f" (all shocks: {t:+,.0f})" if metric == "min_price_p50" else f" (all shocks: {_compact(t)})"
        title = _attribution_label(metric) + all_text
        height = max(220, 90 + 30 * len(labels))
        fig.update_layout(_layout(height, margin={"l": 150, "r": 30, "t": 40, "b": 36},
                                  title={"text": _e_plotly(title), "font": {"size": 13}},
                                  xaxis={"title": {"text": "effect (scenario minus scenario without the shock)"},
                                         "tickformat": fmt, "zeroline": True, "zerolinecolor": "#888"},
                                  yaxis={"type": "category", "automargin": True}, showlegend=False))
        out.append(Chart(f"chart-attribution-{prep.slug(metric)}", fig, height,
                         f"Each shock's marginal effect on the {_attribution_label(metric)}; whiskers: +-2 standard "
                         "errors (paired bootstrap over paths)."))
    return out


# --------------------------------------------------------------------------- the book's greeks
_GREEK_PANELS = (("delta_btc", "delta (BTC)", ",.2f"), ("gamma_btc_per_pct", "gamma (BTC per 1% move)", ",.3f"),
                 ("vega_usd_per_vol_pt", "vega (USD per vol point)", ",.0f"))
_DATE_COLORS = {"start": "#777777", "middle": "#1f77b4", "end": "#b8433a"}


def book_greeks(run) -> Chart | Skip:
    """The book's delta, gamma and vega against the price level at the start, middle and end of the
    horizon (``metrics.json``'s ``book_greeks``, :mod:`engine.portfolio.greeks`): one line per date, a
    marker at each of the fan's quantile prices on that date."""
    from plotly.subplots import make_subplots

    section = run.metrics.get("book_greeks")
    if not section:
        return Skip("The book holds no perp and no options: its greeks are its spot.")
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=[_e_plotly(title) for _, title, _ in _GREEK_PANELS])
    for curve in section["curves"]:
        color = _DATE_COLORS.get(curve["date"], "#333")
        when = curve["time"][:16].replace("T", " ")
        points = [p for p in section["points"] if p["date"] == curve["date"]]
        for col, (key, _, fmt) in enumerate(_GREEK_PANELS, start=1):
            fig.add_trace(go.Scatter(x=_f32(curve["price"]), y=_f32(curve[key]), mode="lines",
                                     line={"color": color, "width": 2}, name=f"{curve['date']} ({when} UTC)",
                                     legendgroup=curve["date"], showlegend=col == 1,
                                     hovertemplate=f"%{{x:,.0f}}: %{{y:{fmt}}}<extra>{curve['date']}</extra>"),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=_f32([p["price"] for p in points]), y=_f32([p[key] for p in points]),
                                     mode="markers+text", text=[p["level"] for p in points], textposition="top center",
                                     textfont={"size": 9, "color": color}, marker={"color": color, "size": 7},
                                     legendgroup=curve["date"], showlegend=False,
                                     hovertemplate=f"%{{text}} %{{x:,.0f}}: %{{y:{fmt}}}<extra>{curve['date']}</extra>"),
                          row=1, col=col)
    fig.update_layout(_layout(360, margin={"l": 60, "r": 30, "t": 60, "b": 44}))
    fig.update_layout(legend={"y": 1.12})
    fig.update_xaxes(tickformat="~s", gridcolor="#eee", linecolor="#999", title={"text": "price (USD)"})
    fig.update_yaxes(gridcolor="#eee", linecolor="#999", zerolinecolor="#bbb")
    return Chart("chart-book-greeks", fig, 360,
                 "The book's greeks against the price, at the start, the middle and the end of the horizon: options "
                 "aged to the date at the model's implied vol at each level (Black-Scholes on the vol surface the "
                 "hedges are marked on), the perp counted until the level passes its liquidation price. Markers: "
                 "the fan's quantile prices on that date (at the start, the spot).")
