"""The HTML report of a run folder: one self-contained file that works offline.

:func:`render_report` builds it from a :class:`~engine.results.store.Run` alone (the folder's
manifest, metrics and Parquet tables), so ``cascade report RUN_DIR`` regenerates it without the
simulation. plotly.js is inlined once in the ``<head>``; each chart is a ``<div>`` with a stable id
(:data:`CHART_IDS`, plus ``chart-heatmap-<strategy>-<metric>`` and ``chart-sweep-<metric>``) and
a sentence under it saying how to read it. A section with nothing to draw says so instead of
showing an empty chart. The time charts (shocks, price, liquidations, open interest, flows) share
one x axis: zooming one zooms the others.

Sections: header (scenario, seed, size, horizon, provenance, timings); key metrics; shocks and
the price fan; liquidations and open interest; who sold; per-path outcomes; hedges (the
comparison table as in ``cascade run``, PnL distributions, heatmaps of a two-parameter grid);
sweep heatmaps when the run has a ``sweep`` table; run details.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import plotly.io as pio

from .._atomic import write_text
from . import _charts as charts
from . import _prep as prep

__all__ = ["BOOK_CHART_ID", "CHART_IDS", "render_report", "write_report"]

CHART_IDS = ("chart-shocks", "chart-price-fan", "chart-liquidations", "chart-open-interest", "chart-flows",
             "chart-flows-total", "chart-min-price", "chart-drawdown")
"""The charts every report with per-step tables and shocks has; hedges add ``chart-strategy-pnl``
and heatmaps (``chart-heatmap-<strategy>-<metric>``), a sweep table ``chart-sweep-<metric>``, a
book holding a perp or options :data:`BOOK_CHART_ID`."""

BOOK_CHART_ID = "chart-book-greeks"
"""The book's greeks against the price (``metrics.json``'s ``book_greeks``)."""

_CONFIG = {"displaylogo": False, "responsive": True,
           "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}

_CSS = """
:root { --ink: #1d1d1f; --muted: #666; --rule: #e3e3e3; --accent: #1f4e9c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: white; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header .description { margin: 0 0 14px; color: #333; max-width: 900px; }
dl.meta { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 2px 24px; margin: 0;
          font-size: 13px; }
dl.meta div { display: flex; gap: 8px; border-bottom: 1px solid var(--rule); padding: 3px 0; }
dl.meta dt { color: var(--muted); min-width: 92px; }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
nav.toc { margin: 18px 0 4px; font-size: 13px; }
nav.toc a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
section { margin-top: 30px; }
h2 { font-size: 19px; margin: 0 0 6px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 18px 0 4px; }
p.lead { margin: 4px 0 10px; color: #333; max-width: 960px; }
p.note { margin: 8px 0; padding: 8px 12px; background: #f3f4f6; border-left: 3px solid #aaa; color: #444; }
figure.chart { margin: 10px 0 18px; }
figure.chart figcaption { font-size: 12.5px; color: var(--muted); margin: 2px 6px 0; max-width: 960px; }
/* two fixed columns: a chart is drawn while the page is parsed, before its neighbour exists, so an
   auto-fit grid would give the first chart the whole row */
.grid2 { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 0 20px; }
@media (max-width: 900px) { .grid2 { grid-template-columns: minmax(0, 1fr); } }
td.name.label { white-space: normal; max-width: 420px; }
.scroll.tall { max-height: 900px; overflow-y: auto; }
.scroll.tall th { position: sticky; top: 0; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--rule); text-align: right; white-space: nowrap; }
th { background: #f3f4f6; font-weight: 600; }
td.name, th.name { text-align: left; }
td.desc { text-align: left; color: var(--muted); white-space: normal; font-size: 12px; }
span.pm { color: var(--muted); font-size: 11.5px; margin-left: 3px; }
td.breached { color: #b00020; font-weight: 700; }
tr.base td { background: #fafafa; font-weight: 600; }
td.best { color: #176b2c; font-weight: 700; }
.tables { display: flex; flex-wrap: wrap; gap: 18px 36px; align-items: flex-start; }
.scroll { overflow-x: auto; }
p.glance { font-size: 15px; margin: 6px 0 14px; }
footer { margin-top: 40px; font-size: 12px; color: var(--muted); }
"""

_SYNC_JS = """
window.addEventListener('load', function () {
  var ids = IDS, busy = false;
  ids.forEach(function (id) {
    var gd = document.getElementById(id);
    if (!gd || !gd.on) return;
    gd.on('plotly_relayout', function (ev) {
      if (busy) return;
      var update = null;
      if (ev['xaxis.range[0]'] !== undefined) update = {'xaxis.range': [ev['xaxis.range[0]'], ev['xaxis.range[1]']]};
      else if (ev['xaxis.range']) update = {'xaxis.range': ev['xaxis.range']};
      else if (ev['xaxis.autorange']) update = {'xaxis.range': RANGE};
      if (!update) return;
      busy = true;
      var pending = ids.filter(function (o) { return o !== id; }).map(function (o) {
        var other = document.getElementById(o);
        return other && other._fullLayout ? Plotly.relayout(other, update) : null;
      });
      Promise.all(pending).then(function () { busy = false; }, function () { busy = false; });
    });
  });
});
"""


# --------------------------------------------------------------------------- small pieces
def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _chart_html(chart: charts.Chart) -> str:
    div = pio.to_html(chart.figure, include_plotlyjs=False, full_html=False, div_id=chart.id, config=_CONFIG,
                      default_height=f"{chart.height}px", default_width="100%", validate=False)
    return f'<figure class="chart">{div}<figcaption>{_e(chart.caption)}</figcaption></figure>'


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _block(item) -> str:
    return _chart_html(item) if isinstance(item, charts.Chart) else _note(item.note)


def _section(sid: str, title: str, lead: str, body: str) -> tuple[str, str, str]:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return sid, title, f'<section id="{sid}"><h2>{_e(title)}</h2>{lead_html}{body}</section>'


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None,
           row_classes: list[str] | None = None, table_id: str | None = None,
           cell_classes: dict[tuple[int, int], str] | None = None, tall_after: int = 40) -> str:
    """An HTML table of already escaped cells; ``classes`` per column, ``cell_classes`` by (row, column)."""
    classes = classes or [""] * len(head)
    cell_classes = cell_classes or {}
    th = "".join(f'<th class="{c}">{_e(h)}</th>' for h, c in zip(head, classes))
    body = []
    for k, row in enumerate(rows):
        rc = f' class="{row_classes[k]}"' if row_classes and row_classes[k] else ""
        tds = "".join(f'<td class="{cell_classes.get((k, j), c)}">{v}</td>' for j, (v, c) in enumerate(zip(row, classes)))
        body.append(f"<tr{rc}>{tds}</tr>")
    tid = f' id="{table_id}"' if table_id else ""
    box = "scroll tall" if len(rows) > tall_after else "scroll"  # long tables scroll under a fixed header
    return f'<div class="{box}"><table{tid}><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


# --------------------------------------------------------------------------- header
def _horizon(run) -> tuple[str, str, str]:
    m = run.manifest
    start = datetime.fromisoformat(str(m["start"]))
    step = timedelta(seconds=float(m.get("step_seconds") or 3600))
    end = start + step * int(m["n_steps"])
    return f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}", _duration(step)


def _duration(step: timedelta) -> str:
    s = int(step.total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def _timings(timings: dict, n_path_steps: int) -> str:
    names = (("simulate_s", "simulate"), ("prepare_s", "prepare"), ("kernel_load_s", "kernel load"),
             ("metrics_s", "metrics"), ("report_s", "report"), ("figures_s", "figures"), ("write_s", "write"))
    parts = [f"{label} {timings[key]:.2f} s" for key, label in names if key in timings]
    if timings.get("simulate_s"):
        parts.insert(1, f"{n_path_steps / timings['simulate_s'] / 1e6:.0f} M path-steps/s")
    return " · ".join(parts)


def _header(run) -> str:
    m = run.manifest
    scenario = run.scenario
    start, end, step = _horizon(run)
    git = m.get("git") or {}
    commit = (git.get("commit") or "")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    items = [
        ("seed", f"{m['seed']}"),
        ("size", f"{m['n_paths']:,} paths x {m['n_steps']:,} steps of {step}"),
        ("horizon", f"{start} .. {end} UTC"),
        ("created", str(m.get("created_utc", "")).replace("T", " ").replace("Z", " UTC")),
        ("engine", f"{m.get('engine', {}).get('name', 'cascade-engine')} {m.get('engine', {}).get('version', '?')}"),
        ("git", commit or "not a git checkout"),
        ("scenario hash", str(m.get("scenario", {}).get("hash", ""))[:12]),
        ("run hash", str(m.get("run_hash", ""))[:12]),
    ]
    source = m.get("scenario", {}).get("source")
    if source:
        items.append(("source", source))
    if m.get("overrides"):
        items.append(("overrides", " ".join(m["overrides"])))
    if m.get("book"):
        items.append(("book", f"{m['book']['file']} ({m['book']['via']}, sha256 {m['book']['sha256'][:12]})"))
    if m.get("command"):
        items.append(("command", " ".join(m["command"])))
    timings = m.get("timings") or {}
    items.append(("timings", _timings(timings, m["n_paths"] * m["n_steps"]) if timings
                  else "not recorded yet (written after the report; cascade report shows them)"))
    meta = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in items)
    description = (scenario.description or "").strip() or m.get("scenario", {}).get("description", "")
    return (f"<header><h1>{_e(m['scenario']['name'])}</h1><p class=\"description\">{_e(description)}</p>"
            f"<dl class=\"meta\">{meta}</dl></header>")


# --------------------------------------------------------------------------- metrics
def _glance(market: dict, levels: list[float]) -> str:
    bits = []
    low = market.get("min_price")
    if isinstance(low, dict):
        bits.append(f"the median path bottoms at <b>{low['p50']:,.0f}</b> (5% of paths below {low['p05']:,.0f})")
    liq = market.get("long_liquidations_usd")
    if isinstance(liq, dict):
        bits.append(f"median long liquidations <b>{prep.usd(liq['p50'])}</b> (p95 {prep.usd(liq['p95'])})")
    touched = [(lv, market.get(f"prob_touch_{lv:g}")) for lv in sorted(levels, reverse=True)]
    touched = [(lv, p) for lv, p in touched if p is not None]
    if touched:
        deepest = next(((lv, p) for lv, p in reversed(touched) if p >= 0.05), None)
        if deepest is not None:
            bits.append(f"{deepest[1]:.0%} of paths reach <b>{prep.usd(deepest[0])}</b>")
    oi = market.get("open_interest_change")
    if isinstance(oi, dict):
        bits.append(f"open interest changes by <b>{oi['p50']:+.0%}</b> on the median path")
    return f'<p class="glance">In this run {"; ".join(bits)}.</p>' if bits else ""


def _metrics_section(run) -> tuple[str, str, str]:
    from .text import _fmt, _pct
    from ..result import SUMMARY_METRICS

    market = run.metrics.get("market", {})
    rows = []
    for metric, value in market.items():
        if not isinstance(value, dict):
            continue
        cells = [_e(_fmt(metric, value[q])) if q in value else "-" for q in ("p05", "p50", "p95")]
        rows.append([_e(metric), *cells, _e(SUMMARY_METRICS.get(metric, ""))])
    market_table = _table(["metric", "p05", "p50", "p95", "what it is"], rows,
                          ["name", "", "", "", "desc"], table_id="table-metrics")
    prob_rows = []
    errors = run.metrics.get("uncertainty", {}).get("market", {})
    directions = run.metrics.get("touch_directions", {})
    for key, value in market.items():
        if isinstance(value, dict):
            continue
        if key.startswith("prob_touch_"):
            name = f"P(touch {float(key[11:]):,.0f}) {directions.get(key, '')}".rstrip()
        else:
            name = "P(" + key.removeprefix("prob_").replace("_", " ") + ")"
        e = errors.get(key)
        interval = f"{_pct(e['ci95_low'])} - {_pct(e['ci95_high'])}" if e else ""
        prob_rows.append([_e(name), _e(_pct(float(value))), _e(interval)])
    prob_table = _table(["probability over the horizon", "paths", "95% interval"], prob_rows, ["name", "", ""],
                        table_id="table-probabilities")
    lead = (f"Across {run.n_paths:,} paths: the 5th, 50th and 95th percentile of each per-path outcome, and the "
            "share of paths on which each event happens, with its 95% interval (Wilson). A level above the start "
            "price (up) is touched when a path's high reaches it, any other (down) when its low does. Flows are in "
            "USD (k, M, B); sells are negative.")
    body = _glance(market, run.levels) + f'<div class="tables">{market_table}{prob_table}</div>'
    body += _limits_table(run.metrics.get("limits") or [])
    return _section("metrics", "Key metrics", lead, body)


def _limits_table(limits: list[dict]) -> str:
    """The scenario's limits as ``cascade run`` prints them: status, metric, value, interval, bound."""
    if not limits:
        return ""
    from .text import _metric_key

    rows, cells = [], {}
    for k, lim in enumerate(limits):
        key = _metric_key(lim["metric"])
        kind = "max" if "max" in lim else "min"
        interval = (f"{prep.fmt_value(key, lim['ci95_low'])} - {prep.fmt_value(key, lim['ci95_high'])}"
                    if "ci95_low" in lim else "")
        breached = lim["status"] == "breached"
        rows.append([_e("BREACHED" if breached else "ok"), _e(lim["metric"]), _e(prep.fmt_value(key, lim["value"])),
                     _e(interval), _e(f"{kind} {prep.fmt_value(key, lim[kind])}")])
        if breached:
            cells[(k, 0)] = "name breached"
    table = _table(["status", "metric", "value", "95% interval", "bound"], rows, ["name", "name", "", "", ""],
                   table_id="table-limits", cell_classes=cells)
    return ("<h3>Limits</h3><p class=\"lead\">The scenario's limits: breached when the value is above its max "
            "(below its min). Where the bound lies inside the 95% interval, more paths may change the verdict.</p>"
            + table)


# --------------------------------------------------------------------------- hedges
_HEDGE_COLUMNS = (  # engine.results.text.render_strategies, column for column
    ("mean PnL", "pnl_mean", prep.usd_k), ("ES95", "es95", prep.usd_k), ("ES99", "es99", prep.usd_k),
    ("VaR99", "var99", prep.usd_k), ("maxDD p95", "max_dd_p95", lambda x: f"{x:.1%}"),
    ("P(liq)", "p_liquidated", lambda x: f"{x:.1%}"), ("premium", "premium", prep.usd_k),
    ("fair value", "fair_value", prep.usd_k),
    ("prem/fair", "premium_over_fair", lambda x: "" if prep.missing(x) else f"{x:.2f}"),
    ("dES99", "d_es99", prep.usd_k), ("ES99 saved/$", "effectiveness", lambda x: "" if prep.missing(x) else f"{x:.2f}"),
)


_HEDGE_ERRORS = ("es95", "es99", "var99", "d_es99")  # shown with the half-width of their 95% interval


def _hedge_table(table, errors: dict | None = None) -> str:
    """The hedge table; ``errors`` (``metrics.json``'s ``uncertainty.strategies``) adds ``±`` the
    half-width of the 95% interval to ES95, ES99, VaR99 and dES99."""
    errors = errors or {}
    labels = prep.row_labels(table)
    es = table["es99"].to_numpy(dtype=float)
    best = int(np.nanargmin(es)) if np.isfinite(es).any() else -1
    rows = []
    for i, (_, r) in enumerate(table.iterrows()):
        name = _e(labels[i]).replace(",", ",<wbr>").replace("[", "<wbr>[")  # break between parameters
        cells = [f'<span title="rule: {_e(r.get("rule", ""))}">{name}</span>']
        for _, key, fmt in _HEDGE_COLUMNS:
            cell = _e(fmt(float(r[key]))) if key in r else ""
            e = errors.get(labels[i], {}).get(key) if key in _HEDGE_ERRORS else None
            if e is not None:
                cell += f'<span class="pm">±{_e(prep.usd_k((e["ci95_high"] - e["ci95_low"]) / 2))}</span>'
            cells.append(cell)
        rows.append(cells)
    classes = ["name label"] + [""] * len(_HEDGE_COLUMNS)
    es_col = 1 + [key for _, key, _ in _HEDGE_COLUMNS].index("es99")
    return _table(["strategy", *[h for h, _, _ in _HEDGE_COLUMNS]], rows, classes,
                  row_classes=["base" if i == 0 else "" for i in range(len(rows))], table_id="table-strategies",
                  cell_classes={(best, es_col): "best"} if best >= 0 else None)


def _book_section(run) -> tuple[str, str, str] | None:
    """The book's greeks along the fan (a table as ``cascade run`` prints it, and the chart), when
    the book holds a perp or options."""
    section = run.metrics.get("book_greeks")
    if not section:
        return None
    rows = [[_e(p["time"][:16].replace("T", " ")), _e(p["level"]), _e(f"{p['price']:,.0f}"), _e(prep.pct(p["atm_iv"])),
             _e(f"{p['delta_btc']:,.3f}"), _e(f"{p['gamma_btc_per_pct']:,.3f}"), _e(f"{p['vega_usd_per_vol_pt']:,.1f}"),
             "liquidated" if p["perp_liquidated"] else ""] for p in section["points"]]
    table = _table(["date (UTC)", "level", "price", "ATM IV", "delta (BTC)", "gamma (BTC/1%)", "vega (USD/vol pt)",
                    "perp"], rows, ["name", "name", "", "", "", "", "", "name"], table_id="table-book-greeks")
    lead = ("The whole book's delta (BTC), gamma (the change of delta for a 1% move) and vega (USD per vol point) at "
            "the fan's quantile prices, at the start, the middle and the end of the horizon: options aged to the date "
            "and valued at the model's implied vol at each price (the mean ATM vol of the paths near it, on the "
            "scenario's skew), the perp counted until the price passes its liquidation price.")
    return _section("book", "The book's greeks", lead, _block(charts.book_greeks(run)) + table)


def _base_point_note(run) -> str:
    """For a sweep's folder: which grid point the market charts show (its first)."""
    sweep = run.manifest.get("sweep") or {}
    point = sweep.get("base_point")
    if run.manifest.get("kind") != "sweep":
        return ""
    where = ", ".join(f"{k} = {v}" for k, v in point.items()) if isinstance(point, dict) and point else ""
    return _note("This is a sweep's folder: the market charts and tables show its first scenario point"
                 + (f" ({_e(where)})" if where else " (the scenario as written)")
                 + ", simulated once; the sweep's own results are in the Sweep section.")


def _hedges_section(run) -> tuple[str, str, str]:
    table = run.strategies
    if (table is None or table.empty) and run.manifest.get("kind") == "sweep":
        body = _note("The strategies of this sweep are evaluated in the Sweep section below: one row per scenario "
                     "point, strategy and parameter set, with heatmaps over the first two parameters.")
        return _section("hedges", "Hedges", "", body)
    if table is None or table.empty:
        body = _note("This scenario has no strategies: add a strategies: section (and a portfolio:) to compare "
                     "hedges here (README, \"Hedging strategies\").")
        return _section("hedges", "Hedges", "", body)
    lead = ("PnL in USD against the unhedged book's start value; VaR and ES are losses (positive) at the 5th and "
            "1st percentiles; maxDD p95 is the 95th percentile of the book's worst drawdown; P(liq) the share of "
            "paths on which a perp of the book or hedge was liquidated; premium the option premium paid net of "
            "premium received, costs included; fair value the option legs' mean payoff on the simulated paths (what "
            "the model says they are worth: settlements, sales at rolls and their marks at the end, no rates) and "
            "prem/fair the premium per dollar of it; ES99 saved/$ the ES99 reduction per dollar of premium. The "
            "unhedged book is the first row; the lowest ES99 is in green. ± is the Monte Carlo error: the half-width "
            "of the figure's 95% interval (bootstrap over the paths).")
    parts = [_hedge_table(table, run.metrics.get("uncertainty", {}).get("strategies"))]
    skipped = run.manifest.get("strategies_not_evaluated")
    if skipped:
        parts.append(_note(f"Not evaluated yet: {', '.join(skipped)}."))
    parts.append("<h3>PnL distributions</h3>")
    parts.append(_block(charts.strategy_pnl(run)))
    maps = charts.strategy_heatmaps(run)
    parts.append("<h3>Parameter grids</h3>")
    if maps:
        parts.append('<div class="grid2">' + "".join(_block(m) for m in maps) + "</div>")
    else:
        parts.append(_note("No strategy varies exactly two parameters: sweep two (e.g. strike and hedge ratio) to "
                           "see ES99 and premium heatmaps over the grid."))
    return _section("hedges", "Hedges", lead, "".join(parts))


def _attribution_section(run) -> tuple[str, str, str] | None:
    if "attribution" not in run.tables:
        return None
    meta = run.manifest.get("attribution") or {}
    lead = ("Which shock did how much (cascade attribute): the scenario was simulated again with each shock removed, "
            "and with none, on the same random numbers. A shock's bar is the scenario minus the scenario without it; "
            "the interaction is what the shocks do together beyond the sum of the bars.")
    parts = ['<div class="grid2">' + "".join(_block(c) for c in charts.attribution(run)) + "</div>"]
    parts += [_note(f"Note: {n}") for n in meta.get("notes") or [] if isinstance(n, str)]
    return _section("attribution", "Shock attribution", lead, "".join(parts))


def _sweep_section(run) -> tuple[str, str, str] | None:
    frame = run.tables.get("sweep")
    if frame is None:
        return None
    maps = charts.sweep_heatmaps(frame)
    lead = (f"The sweep table ({len(frame):,} rows): metrics over its first two parameters; green is better "
            "(lower for losses, premium and liquidation probability; higher for PnL).")
    return _section("sweep", "Sweep", lead, '<div class="grid2">' + "".join(_block(m) for m in maps) + "</div>")


# --------------------------------------------------------------------------- details
def _details_section(run) -> tuple[str, str, str]:
    m = run.manifest
    deps = m.get("dependencies") or {}
    machine = m.get("machine") or {}
    rows = [[_e(k), _e(v if v is not None else "-")] for k, v in deps.items()]
    rows += [[_e(k), _e(v)] for k, v in machine.items() if k != "node"]
    body = ("<details><summary>Versions and machine</summary>"
            + _table(["component", "version / value"], rows, ["name", "name"], table_id="table-provenance")
            + "</details>")
    body += (f'<p class="lead">Scenario hash {_e(m.get("scenario", {}).get("hash", ""))}; the resolved scenario '
             "is scenario.yaml in the run folder, and every table behind these charts is a Parquet file beside "
             "it.</p>")
    return _section("details", "Run details", "", body)


# --------------------------------------------------------------------------- the page
def _time_sections(run) -> tuple[list[tuple[str, str, str]], list[str], prep.Axis | None]:
    flows = run.flows
    index = run.fan.index if run.fan is not None else flows.index if flows is not None else None
    if index is None or len(index) == 0:
        note = _note("This run kept no per-step tables: no time charts.")
        return [_section("market", "Shocks and price", "", note)], [], None
    axis = prep.time_axis(index, run.manifest.get("step_seconds"))
    price = [charts.shocks(run, axis), charts.price_fan(run, axis)]
    liq = [charts.liquidations(run, axis), charts.open_interest(run, axis)]
    who = [charts.flows(run, axis), charts.flow_totals(run)]
    timed = [c.id for c in price + liq + who if isinstance(c, charts.Chart) and c.time_axis]
    sections = [
        _section("market", "Shocks and price",
                 "The scenario's shocks on the horizon, and the price paths they produce.",
                 "".join(_block(c) for c in price)),
        _section("liquidations", "Liquidations and open interest",
                 "How much leverage the cascade burns, step by step.", "".join(_block(c) for c in liq)),
        _section("flows", "Who sold",
                 "The flows behind the price: every participant's mean trade per step, and in total.",
                 "".join(_block(c) for c in who)),
    ]
    return sections, timed, axis


def render_report(run) -> str:
    """The report of ``run`` (a :class:`~engine.results.store.Run`) as one HTML page."""
    import json

    from plotly.offline import get_plotlyjs

    sections, timed, axis = _time_sections(run)
    metrics = _metrics_section(run)
    note = _base_point_note(run)
    if note:  # under the section's title, above its table
        sid, title, body = metrics
        head, sep, rest = body.partition("</h2>")
        metrics = (sid, title, head + sep + note + rest) if sep else (sid, title, note + body)
    sections.insert(0, metrics)
    outcomes = [charts.min_price(run), charts.drawdown(run)]
    sections.append(_section("outcomes", "Per-path outcomes", "The distribution over paths of two outcomes.",
                             '<div class="grid2">' + "".join(_block(c) for c in outcomes) + "</div>"))
    sections.append(_hedges_section(run))
    book = _book_section(run)  # after the hedges: the book's own exposure, for a closer look
    if book is not None:
        sections.append(book)
    attribution = _attribution_section(run)
    if attribution is not None:
        sections.append(attribution)
    sweep = _sweep_section(run)
    if sweep is not None:
        sections.append(sweep)
    sections.append(_details_section(run))
    toc = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    sync = ""
    if len(timed) > 1 and axis is not None:
        lo, hi = axis.view
        script = _SYNC_JS.replace("IDS", json.dumps(timed)).replace(
            "RANGE", json.dumps([charts._stamp(lo), charts._stamp(hi)]))
        sync = f"<script>{script}</script>"
    title = f"{run.name}: cascade report"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body><main>"
            f"{_header(run)}<nav class=\"toc\">{toc}</nav>"
            + "\n".join(body for _, _, body in sections)
            + "<footer>Written by cascade-engine from the run folder's tables; regenerate it with "
            "<code>cascade report RUN_DIR</code>. Works offline: plotly.js is inlined.</footer>"
            f"</main>{sync}</body></html>\n")


def write_report(run, path) -> Path:
    """Write :func:`render_report` of ``run`` to ``path`` (atomically: a temporary file, renamed)."""
    path = Path(path)
    text = render_report(run)
    return write_text(path, text)
