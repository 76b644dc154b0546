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
