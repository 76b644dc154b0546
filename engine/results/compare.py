"""``cascade compare RUN_A RUN_B``: what changed between two run folders, metric by metric."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .store import Run, metrics_rows
from .._format import compare_value

__all__ = ["compare_runs", "render_comparison"]

_KEYS = ["section", "name", "statistic"]


def _notes(a: Run, b: Run) -> list[str]:
    """How the two runs differ in what was run (so a metric change can be read)."""
    ma, mb = a.manifest, b.manifest
    notes = []
    if ma["scenario"]["name"] != mb["scenario"]["name"]:
        notes.append(f"different scenarios: {ma['scenario']['name']} vs {mb['scenario']['name']}")
    elif ma["scenario"]["hash"] != mb["scenario"]["hash"]:
        notes.append(f"the resolved scenario differs (hash {ma['scenario']['hash'][:12]} vs "
                     f"{mb['scenario']['hash'][:12]}); diff the two scenario.yaml files")
    for key in ("seed", "n_paths", "n_steps"):
        if ma[key] != mb[key]:
            notes.append(f"{key}: {ma[key]} vs {mb[key]}")
    va, vb = ma["engine"]["version"], mb["engine"]["version"]
    if va != vb:
        notes.append(f"engine version: {va} vs {vb}")
    ga, gb = (ma.get("git") or {}).get("commit"), (mb.get("git") or {}).get("commit")
    if ga and gb and ga != gb:
        notes.append(f"git commit: {ga[:10]} vs {gb[:10]}")
    for name, (x, y) in {k: (ma["dependencies"].get(k), mb["dependencies"].get(k))
                         for k in ma["dependencies"]}.items():
        if x != y:
            notes.append(f"{name}: {x} vs {y}")
    return notes


def compare_runs(a: Run, b: Run) -> tuple[pd.DataFrame, list[str]]:
    """Every metric of either run: ``a``, ``b``, ``diff`` (b - a) and ``rel_diff`` (over |a|).

    A metric present in one run only has NaN on the other side (e.g. a strategy row added).
    Rows are sorted by the size of the relative change, the largest first.
    """
    ta = metrics_rows(a.metrics).rename(columns={"value": "a"})
    tb = metrics_rows(b.metrics).rename(columns={"value": "b"})
    table = ta.merge(tb, on=_KEYS, how="outer", sort=False)
    table["diff"] = table["b"] - table["a"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(table["a"].abs() > 0, table["diff"] / table["a"].abs(),
                       np.where(table["diff"] == 0, 0.0, np.inf))
    table["rel_diff"] = np.where(table["a"].isna() | table["b"].isna(), np.nan, rel)
    order = np.argsort(-np.nan_to_num(np.abs(table["rel_diff"].to_numpy()), nan=np.inf), kind="stable")
    return table.iloc[order].reset_index(drop=True), _notes(a, b)


def _fmt(value: float, name: str) -> str:
    if value != value:
        return "-"
    if name.startswith("prob") or name.startswith("p_") or "drawdown" in name or name.endswith("_change") \
            or name.startswith("max_dd"):
        return f"{value:.2%}"
    return compare_value(value)


def render_comparison(a: Run, b: Run, table: pd.DataFrame, notes: list[str], *, show_all: bool = False) -> str:
    lines = [f"A: {a.path}", f"B: {b.path}"]
    lines += [f"   {note}" for note in notes] or ["   same scenario, seed, paths and engine"]
    changed = table[(table["diff"] != 0) | table["diff"].isna()]
    shown = table if show_all else changed
    lines.append("")
    if shown.empty:
        lines.append(f"all {len(table)} metrics identical")
        return "\n".join(lines)
    width = max(40, min(60, max(len(f"{r.section}.{r.name}.{r.statistic}") for r in shown.itertuples())))
    lines.append(f"{'metric':<{width}} {'A':>14} {'B':>14} {'B - A':>14} {'change':>9}")
    for r in shown.itertuples():
        label = f"{r.section}.{r.name}" + ("" if r.statistic == "value" else f".{r.statistic}")
        change = "-" if r.rel_diff != r.rel_diff else ("new" if np.isinf(r.rel_diff) else f"{r.rel_diff:+.2%}")
        key = r.statistic if r.section == "strategies" else r.name
        lines.append(f"{label[:width]:<{width}} {_fmt(r.a, key):>14} {_fmt(r.b, key):>14} "
                     f"{_fmt(r.diff, key):>14} {change:>9}")
    lines.append("")
    lines.append(f"{len(changed)} of {len(table)} metrics differ" + ("" if show_all else " (--all lists every one)"))
    return "\n".join(lines)
