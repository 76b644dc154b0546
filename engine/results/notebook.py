"""In a notebook: ``_repr_html_`` (Jupyter shows it when a result is the cell's value) and
``.plot()`` (a plotly figure, the report's own chart) for a simulation result, a run folder and a
sweep. The methods on :class:`engine.result.SimulationResult`, :class:`engine.results.store.Run`
and :class:`engine.sweep.SweepResult` call these.

The HTML is a few small tables, with every text from a scenario escaped; the figures are built by
the report's chart code (:mod:`engine.results._charts`), so a notebook and the report draw the
same thing.
"""

from __future__ import annotations

import html
from types import SimpleNamespace

import pandas as pd

from . import _prep as prep

__all__ = ["result_html", "run_html", "sweep_html", "price_figure", "sweep_figure"]

_STYLE = "font-family: system-ui, sans-serif; font-size: 13px"


def _table(frame: pd.DataFrame) -> str:
    """A table whose numbers read as the report's (USD in k/M/B, fractions in %)."""
    shown = frame.copy().astype(object)
    for column in shown.columns:
        shown[column] = [v if isinstance(v, str) else prep.fmt_value(str(name), v)
                         for name, v in zip(shown.index, frame[column])]
    return shown.to_html(escape=True, border=0, classes="cascade-table")


def _head(title: str, detail: str) -> str:
    return f'<div style="{_STYLE}"><b>{html.escape(title)}</b> <span>{html.escape(detail)}</span>'


def _probabilities(market: dict) -> pd.DataFrame:
    probs = {k: v for k, v in market.items() if k.startswith("prob_") and not isinstance(v, dict)}
    return pd.DataFrame({"probability": probs}) if probs else pd.DataFrame()


def result_html(result) -> str:
    """The HTML of :meth:`engine.result.SimulationResult._repr_html_`: the market's percentiles, the
    probabilities and, with strategies, the hedge table."""
    parts = [_head(result.name, f"{result.n_paths:,} paths x {result.n_steps:,} steps, seed {result.seed}")]
    summary = result.summary()
    parts.append(_table(summary.drop(columns=[c for c in ("mean",) if c in summary.columns])))
    probs = _probabilities(result.probabilities())
    if not probs.empty:
        parts.append(_table(probs))
    strategies = result.strategy_metrics()
    if strategies is not None:
        table = pd.DataFrame(strategies).T
        parts.append(_table(table[[c for c in ("pnl_mean", "premium", "es99", "d_es99", "p_liquidated") if c in table]]))
    return "".join(parts) + "</div>"


def run_html(run) -> str:
    """The HTML of :meth:`engine.results.store.Run._repr_html_`: what ``metrics.json`` holds."""
    m = run.metrics
    parts = [_head(run.name, f"run folder, {m['n_paths']:,} paths x {m['n_steps']:,} steps, seed {m['seed']}")]
    market = m.get("market", {})
    rows = {k: v for k, v in market.items() if isinstance(v, dict)}
    if rows:
        parts.append(_table(pd.DataFrame(rows).T))
    probs = _probabilities(market)
    if not probs.empty:
        parts.append(_table(probs))
    if m.get("strategies"):
        parts.append(_table(pd.DataFrame(m["strategies"]).T))
    return "".join(parts) + "</div>"


def sweep_html(sweep, n: int = 10) -> str:
    """The HTML of :meth:`engine.sweep.SweepResult._repr_html_`: the size and the best rows."""
    plan = sweep.plan
    head = _head(plan.name, f"sweep, {len(sweep.table):,} rows over {len(plan.points):,} scenario point(s), "
                            f"{plan.n_paths:,} paths, seed {plan.seed}, in {sweep.seconds:.1f} s")
    try:
        best = sweep.top(n)
    except (KeyError, ValueError):  # no es99 column (a sweep of the market alone): its first rows
        best = sweep.table.head(n)
    return head + best.to_html(escape=True, border=0, index=False, float_format=lambda x: f"{x:,.6g}") + "</div>"


def price_figure(view):
    """The report's price fan of ``view`` (a :class:`Run`, or :func:`result_view` of a result)."""
    from . import _charts

    if view.fan is None:
        raise ValueError("this run kept no per-step prices (keep_steps=False): nothing to plot")
    chart = _charts.price_fan(view, prep.time_axis(view.fan.index, view.manifest.get("step_seconds")))
    if isinstance(chart, _charts.Skip):
        raise ValueError(chart.note)
    return chart.figure


def result_view(result) -> SimpleNamespace:
    """What the report's chart code reads from a run folder, from a result in memory."""
    kept = result.kept_steps
    compiled = result.compiled
    return SimpleNamespace(
        fan=result.fan if kept else None, sample_paths=result.sample_paths if kept else None,
        metrics={"market": result.probabilities()}, manifest={"step_seconds": float(compiled.step_seconds)},
        levels=[float(x) for x in compiled.outputs.price_levels_usd],
        bands=[(float(b.low_usd), float(b.high_usd), b.label)
               for b in (result.scenario.outputs.price_bands if result.scenario is not None else ())])


def sweep_figure(sweep, metric: str | None = None):
    """The report's heatmap of ``metric`` (default: the first the report draws) over the sweep's
    first two parameters."""
    from . import _charts

    charts = _charts.sweep_heatmaps(sweep.table, [metric] if metric else None)
    chart = charts[0]
    if isinstance(chart, _charts.Skip):
        raise ValueError(chart.note)
    return chart.figure
