"""Plain-text rendering of a run for the terminal (``cascade run``)."""

from __future__ import annotations

from ..result import SUMMARY_METRICS
from ..scenario.units import format_amount

_FRACTIONS = {"max_drawdown", "open_interest_change"}
_PRICES = {"min_price", "terminal_price"}


def _fmt(metric: str, value: float) -> str:
    if metric in _FRACTIONS:
        return f"{value:+.1%}" if metric == "open_interest_change" else f"{value:.1%}"
    if metric in _PRICES:
        return f"{value:,.0f}"
    if metric.endswith("_usd"):
        return format_amount(value)
    return f"{value:.3g}"


def _pct(x: float) -> str:
    """A probability: two decimals below 1%, where one would round to 0.0%."""
    return f"{x:.2%}" if 0 < x < 0.01 else f"{x:.1%}"


def render_run(result) -> str:
    summary = result.summary()
    lines = [
        f"{result.name}: {result.n_paths:,} paths x {result.n_steps:,} steps "
        f"({result.timeline[0]:%Y-%m-%d %H:%M} .. {result.timeline[-1]:%Y-%m-%d %H:%M} UTC), seed {result.seed}",
        "",
        f"{'metric':<30}{'p05':>12}{'p50':>12}{'p95':>12}",
    ]
    for metric in SUMMARY_METRICS:
        row = summary.loc[metric]
        lines.append(f"{metric:<30}" + "".join(f"{_fmt(metric, row[q]):>12}" for q in ("p05", "p50", "p95")))
    lines += ["", f"{'probability over the horizon':<30}{'paths':>12}   95% interval"]
    errors = result.uncertainty["market"]
    directions = result.touch_directions()
    for key, value in result.probabilities().items():
        label = key.replace("prob_", "P(") + ")"
        if key.startswith("prob_touch_"):  # up: the path's high reaches the level; down: its low
            label = f"P(touch {float(key[11:]):,.0f}) {directions[key]}"
        e = errors[key]
        lines.append(f"{label:<30}{_pct(value):>12}   {_pct(e['ci95_low'])} - {_pct(e['ci95_high'])}")
    rate = result.path_steps_per_second
    t = result.timings
    lines += ["", f"simulated in {t['simulate_s']:.2f} s ({rate / 1e6:.1f} M path-steps/s); "
              f"prepared in {t['prepare_s']:.2f} s, kernel loaded in {t['kernel_load_s']:.2f} s"]
    return "\n".join(lines)


def _money(x: float) -> str:
    """USD in a table cell: ``19.59M``, ``25.2k``, ``740`` (the report's format, one definition)."""
    from ._prep import usd_k

    return usd_k(x)


def render_strategies(table) -> str:
    """The hedge comparison: one line per strategy and parameter set, the unhedged book first
    (the tail figures, with their errors, are :func:`render_risk_errors`'s table)."""
    from ..portfolio.hedge import row_label

    head = (f"{'strategy':<28} {'mean PnL':>10} {'premium':>9} {'fair value':>10} {'prem/fair':>9} "
            f"{'maxDD p95':>9} {'P(liq)':>7} {'dES99':>9} {'ES99 saved/$':>12}")
    lines = ["hedges (PnL in USD against the unhedged book's start value; premium net of costs; fair value: the "
             "option legs' mean payoff on the paths)", head, "-" * len(head)]
    for _, r in table.iterrows():
        eff = "" if r["effectiveness"] != r["effectiveness"] else f"{r['effectiveness']:.2f}"
        ratio = r.get("premium_over_fair", float("nan"))
        ratio = "" if ratio != ratio else f"{ratio:.2f}"
        lines.append(f"{row_label(r)[:28]:<28} {_money(r['pnl_mean']):>10} {_money(r['premium']):>9} "
                     f"{_money(r.get('fair_value', 0.0)):>10} {ratio:>9} {r['max_dd_p95']:>9.1%} "
                     f"{r['p_liquidated']:>7.1%} {_money(r['d_es99']):>9} {eff:>12}")
    skipped = table.attrs.get("not_evaluated") or []
    if skipped:
        lines.append(f"not evaluated yet: {', '.join(skipped)}")
    return "\n".join(lines)


def render_risk_errors(table, uncertainty: dict, n_paths: int) -> str:
    """The tail figures of the hedge table: VaR and ES at 95% and 99% and dES99 (losses positive,
    USD), each with the half-width of its 95% interval (:mod:`engine.results.risk`), one line per
    row of ``table``."""
    from ..portfolio.hedge import row_label
    from .risk import RESAMPLES, STRATEGY_METRICS

    errors = uncertainty.get("strategies") or {}
    names = {"var95": "VaR95", "es95": "ES95", "var99": "VaR99", "es99": "ES99", "d_es99": "dES99"}
    rows = []
    for _, r in table.iterrows():
        label = row_label(r)
        cells = []
        for m in STRATEGY_METRICS:
            e = errors.get(label, {}).get(m)
            cells.append("" if e is None else f"{_money(r[m])} ±{_money((e['ci95_high'] - e['ci95_low']) / 2)}")
        rows.append((label, cells))
    width = max([16] + [len(c) + 2 for _, cells in rows for c in cells])
    head = f"{'strategy':<28}" + "".join(f"{names[m]:>{width}}" for m in STRATEGY_METRICS)
    lines = [f"tail risk (losses in USD; ± the half-width of each figure's 95% interval, a bootstrap over the "
             f"{n_paths:,} paths, {RESAMPLES} resamples)", head, "-" * len(head)]
    lines += [f"{label[:28]:<28}" + "".join(f"{c:>{width}}" for c in cells) for label, cells in rows]
    return "\n".join(lines)


def _metric_key(name: str) -> str:
    """The part of a ``cascade check`` metric name that says its unit: ``market.min_price.p50`` ->
    ``min_price``, ``market.prob_adl`` -> ``prob_adl``, ``strategies.put.es99`` -> ``es99``."""
    parts = name.split(".")
    return parts[1] if parts[0] == "market" else parts[-1]


def render_limits(limits: list[dict]) -> str:
    """Each of the scenario's limits: ``ok`` or ``BREACHED``, the value (and its 95% interval
    where the run has one) and the bound."""
    from ._prep import fmt_value

    width = max(len(lim["metric"]) for lim in limits)
    lines = ["limits (the value, its 95% interval where known, and the bound; a bound inside the interval "
             "may flip with more paths)"]
    for lim in limits:
        key = _metric_key(lim["metric"])
        kind = "max" if "max" in lim else "min"
        interval = ""
        if "ci95_low" in lim:
            interval = f"[{fmt_value(key, lim['ci95_low'])}, {fmt_value(key, lim['ci95_high'])}]"
        status = "BREACHED" if lim["status"] == "breached" else "ok"
        line = (f"  {status:<8}  {lim['metric']:<{width}}  {fmt_value(key, lim['value']):>10}  {interval:<20}  "
                f"{kind} {fmt_value(key, lim[kind])}")
        if "ci95_low" in lim and lim["ci95_low"] <= lim[kind] <= lim["ci95_high"]:
            line += "  (bound inside the interval)"
        lines.append(line.rstrip())
    return "\n".join(lines)
