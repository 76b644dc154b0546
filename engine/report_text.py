"""Plain-text rendering of a run for the terminal (``cascade run``)."""

from __future__ import annotations

from .result import SUMMARY_METRICS
from .scenario.units import format_amount

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
    lines.append("")
    for key, value in result.probabilities().items():
        label = key.replace("prob_touch_", "P(touch ").replace("prob_", "P(") + ")"
        if key.startswith("prob_touch_"):
            label = f"P(touch {float(key[11:]):,.0f})"
        lines.append(f"{label:<30}{value:>12.1%}")
    rate = result.path_steps_per_second
    t = result.timings
    lines += ["", f"simulated in {t['simulate_s']:.2f} s ({rate / 1e6:.1f} M path-steps/s); "
              f"prepared in {t['prepare_s']:.2f} s, kernel loaded in {t['kernel_load_s']:.2f} s"]
    return "\n".join(lines)


def render_strategies(table) -> str:
    """The hedge comparison: one line per strategy and parameter set, the unhedged book first."""
    from .hedge import row_label

    def usd(x):
        return f"{x / 1e3:,.1f}k" if abs(x) >= 1e3 else f"{x:,.0f}"

    head = (f"{'strategy':<28} {'mean PnL':>10} {'ES95':>9} {'ES99':>9} {'VaR99':>9} {'maxDD p95':>9} "
            f"{'P(liq)':>7} {'premium':>9} {'fair value':>10} {'prem/fair':>9} {'dES99':>9} {'ES99 saved/$':>12}")
    lines = ["hedges (PnL in USD against the unhedged book's start value; losses positive in ES/VaR; fair value: "
             "the option legs' mean payoff on the paths)", head,
             "-" * len(head)]
    for _, r in table.iterrows():
        eff = "" if r["effectiveness"] != r["effectiveness"] else f"{r['effectiveness']:.2f}"
        ratio = r.get("premium_over_fair", float("nan"))
        ratio = "" if ratio != ratio else f"{ratio:.2f}"
        lines.append(f"{row_label(r)[:28]:<28} {usd(r['pnl_mean']):>10} {usd(r['es95']):>9} {usd(r['es99']):>9} "
                     f"{usd(r['var99']):>9} {r['max_dd_p95']:>9.1%} {r['p_liquidated']:>7.1%} {usd(r['premium']):>9} "
                     f"{usd(r.get('fair_value', 0.0)):>10} {ratio:>9} {usd(r['d_es99']):>9} {eff:>12}")
    skipped = table.attrs.get("not_evaluated") or []
    if skipped:
        lines.append(f"not evaluated yet: {', '.join(skipped)}")
    return "\n".join(lines)
