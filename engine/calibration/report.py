"""The calibration report: one self-contained HTML page and the tables behind it.

Sections: what was fitted (parameters: start, fitted, box); each target with the observed value,
the model's median and 5-95% range, the Monte Carlo error of the median and whether the
observation lies inside; the price fan with the realised hourly path; stylised facts of returns
side by side with the real data; out of sample (the episodes of scenarios/history/, not
refitted); identifiability (which parameters and combinations the targets pin down); the
optimiser's history. Written by :func:`write_calibration` with its CSV tables and the parameter
file into one folder, atomically (a staging folder renamed into place), so a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from .._format import usd_2f

__all__ = ["render_calibration", "write_calibration"]


def _fmt(value, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "USD":
        return usd_2f(value, comma=True)
    if unit == "fraction":
        return f"{value * 100:+.1f}%" if value < 0 else f"{value * 100:.1f}%"
    if unit == "ratio":
        return f"{value:+.3f}"
    return f"{value:.4g}"


def targets_rows(table: pd.DataFrame) -> list[list[str]]:
    from ..results.report import _e

    rows = []
    for name, r in table.iterrows():
        rows.append([
            f"<b>{_e(name)}</b><br><small>{_e(r.description)}</small>", _fmt(r.observed, r.unit),
            _fmt(r.model_p50, r.unit), f"{_fmt(r.model_p05, r.unit)} – {_fmt(r.model_p95, r.unit)}",
            f"{_fmt(r.model_p25, r.unit)} – {_fmt(r.model_p75, r.unit)}", "±" + _fmt(r.mc_se_p50, r.unit),
            f"{r['rank']:.2f}", f"{r.z:+.2f}" if r.weight > 0 else f"({r.z:+.2f})",
            "yes" if r.inside_5_95 else "<b>no</b>", f"<small>{_e(r.source)}</small>",
        ])
    return rows


_TARGET_HEAD = ["target", "observed", "model median", "model 5–95%", "model 25–75%", "MC error of median",
                "rank of observed", "z (fitted)", "inside 5–95%", "source"]


def _fan_chart(fan: pd.DataFrame):
    import plotly.graph_objects as go

    from ..results._charts import Chart

    x = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in fan.index]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=fan["fan_hi"], line={"width": 0}, hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=x, y=fan["fan_lo"], fill="tonexty", fillcolor="rgba(31,78,156,0.15)",
                             line={"width": 0}, name="model 5–95%"))
    fig.add_trace(go.Scatter(x=x, y=fan["p75"], line={"width": 0}, hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=x, y=fan["p25"], fill="tonexty", fillcolor="rgba(31,78,156,0.3)",
                             line={"width": 0}, name="model 25–75%"))
    fig.add_trace(go.Scatter(x=x, y=fan["median"], line={"color": "#1f4e9c", "width": 1.5}, name="model median"))
    fig.add_trace(go.Scatter(x=x, y=fan["real"], line={"color": "#c0392b", "width": 1.8}, name="realised (hourly close)"))
    fig.update_layout(height=420, margin={"l": 60, "r": 20, "t": 30, "b": 40}, yaxis_title="BTC (USD)",
                      legend={"orientation": "h", "y": 1.08}, hovermode="x unified", template="plotly_white")
    inside = ((fan["real"] >= fan["fan_lo"]) & (fan["real"] <= fan["fan_hi"])).mean()
    return Chart("chart-calibration-fan", fig, 420,
                 f"The calibrated model's price fan (5–95% and 25–75% of paths, median) with the realised hourly "
                 f"closes: the realised path lies inside the 5–95% fan for {inside:.0%} of hours.")


def _history_chart(history: pd.DataFrame):
    import plotly.graph_objects as go

    from ..results._charts import Chart

    fig = go.Figure()
    for phase, color in (("start", "#c0392b"), ("design", "#999"), ("refine", "#1f4e9c")):
        h = history[history["phase"] == phase]
        if len(h):
            fig.add_trace(go.Scatter(x=h["evaluation"], y=h["objective"], mode="markers", name=phase,
                                     marker={"color": color, "size": 6}))
    fig.add_trace(go.Scatter(x=history["evaluation"], y=history["objective"].cummin(), mode="lines",
                             name="best so far", line={"color": "#1d1d1f"}))
    fig.update_layout(height=300, margin={"l": 60, "r": 20, "t": 30, "b": 40}, yaxis_type="log",
                      xaxis_title="evaluation", yaxis_title="objective", template="plotly_white")
    return Chart("chart-calibration-history", fig, 300,
                 "The objective at each evaluation: the scenario as given, the Sobol design over the box, then "
                 "Nelder-Mead from the best design point.")


def render_calibration(info: dict, table: pd.DataFrame, parameters: pd.DataFrame | None, fan: pd.DataFrame | None,
                       history: pd.DataFrame | None, stylised: pd.DataFrame | None,
                       oos: dict[str, pd.DataFrame] | None, identifiability=None) -> str:
    from plotly.offline import get_plotlyjs

    from ..results.report import _CSS, _chart_html, _e, _note, _section, _table

    sections = []
    if parameters is not None:
        rows = [[f"<b>{_e(n)}</b>", f"<code>{_e(r.key)}</code>", f"{r.start:.4g}", f"<b>{r.fitted:.4g}</b>",
                 f"[{r.low:g}, {r.high:g}]" + (" <b>at a bound</b>" if r.at_bound else ""), _e(r.meaning)]
                for n, r in parameters.iterrows()]
        body = _table(["parameter", "scenario key", "start", "fitted", "box", "meaning"], rows)
        lead = (f"Objective {info['start_objective']:.4g} as given, {info['objective']:.4g} fitted, after "
                f"{info['evaluations']} evaluations of {info['n_paths']:,} paths (seed {info['seed']}, the same "
                "for every evaluation).") if info.get("fitted") else "Evaluated as given; nothing was fitted."
        sections.append(_section("parameters", "Parameters", _e(lead), body))
    lead = ("The model's median against each observed figure, with its 5–95% range over paths and the Monte Carlo "
            "error of the median (order statistics). z is the median's miss in units of the target's scale, the "
            "quantity the fit minimises. Rank: the share of paths below the observed value.")
    sections.append(_section("targets", "Targets", _e(lead), _table(_TARGET_HEAD, targets_rows(table),
                                                                      table_id="calibration-targets")))
    if fan is not None:
        sections.append(_section("fan", "Realised path in the fan", "", _chart_html(_fan_chart(fan))))
    if stylised is not None:
        cols = ["real_p50", "real_p5", "real_p95", "model_p50", "model_p5", "model_p95", "real_rank", "in_range"]
        rows = [[_e(s)] + [("yes" if v else "<b>no</b>") if c == "in_range" else
                           ("–" if not np.isfinite(v) else f"{v:.3g}") for c, v in zip(cols, r[cols])]
                for s, r in stylised.iterrows()]
        a = stylised.attrs
        lead = (f"Statistics of hourly log returns per sample: per path for the model ({a.get('n_paths', '?'):,} paths "
                f"of {a.get('window', '?')} steps), per rolling window of the same length for the real closes "
                f"({a.get('real_start', '')} to {a.get('real_end', '')}, {a.get('real_windows', '?')} windows). "
                "The model is the crash fortnight while the real windows span the whole year, calm ones included, "
                "so volatility and drawdowns differ by design; compare the shapes: tails, skew, autocorrelation. "
                "Volatility clustering shows in the autocorrelations of |r| and r²; the model has none when those "
                "sit at 0.")
        sections.append(_section("stylised", "Stylised facts: model beside the market", _e(lead),
                                 _table(["statistic", "real median", "real 5%", "real 95%", "model median",
                                         "model 5%", "model 95%", "rank of real", "real inside"], rows)))
    if oos:
        from .oos import EPISODES

        fitted = set(info.get("fitted_episodes", ()))
        lead = ("The historical episodes (scenarios/history/), each run with the calibrated mechanics and its own "
                "state, against its reference numbers. An episode fitted jointly has targets with a weight; the "
                "others are out of sample, never refitted. Reported as they come out.")
        body = "".join(f"<h3>{_e(EPISODES.get(name, (name,))[0])} <small><code>{_e(name)}</code> "
                       f"{'fitted jointly' if name in fitted else 'out of sample'}</small></h3>"
                       + _table(_TARGET_HEAD, targets_rows(frame), table_id=f"calibration-oos-{_e(name)}")
                       for name, frame in oos.items())
        sections.append(_section("out-of-sample", "Historical episodes", _e(lead), body))
    if identifiability is not None:
        sections.append(_identifiability_section(identifiability))
    if history is not None and len(history):
        sections.append(_section("history", "Optimiser", "", _chart_html(_history_chart(history))))
    notes = "".join(_note(n) for n in info.get("notes", []))
    meta = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in info.get("meta", {}).items())
    toc = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
    title = f"{info.get('scenario', '')}: calibration"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body><main>"
            f"<header><h1>{_e(title)}</h1><dl class=\"meta\">{meta}</dl></header>{notes}"
            f"<nav class=\"toc\">{toc}</nav>" + "\n".join(body for _, _, body in sections)
            + "<footer>Written by <code>cascade calibrate</code>. Works offline: plotly.js is inlined.</footer>"
            "</main></body></html>\n")


def _identifiability_section(ident):
    from ..results.report import _e, _section, _table

    def span(low, high) -> str:
        return f"{low:.4g} – {high:.4g}"

    rows = [[f"<b>{_e(n)}</b>", f"{r.fitted:.4g}", span(r.alone_low, r.alone_high),
             span(r.profile_low, r.profile_high),
             "at a bound" if r.at_bound else "yes" if r.identified else "<b>no</b>"]
            for n, r in ident.parameters.iterrows()]
    findings = "".join(f"<li>{_e(f)}</li>" for f in ident.findings)
    lead = (f"The objective's curvature at the fit (central differences of each target's miss, same seed). "
            f"Spans: the values over which the objective rises by {ident.tolerance:.3g}, the "
            "parameter moved alone, and with the others re-fitted (the profile). A profile much wider than the "
            "alone span means another parameter makes up for it: a ridge.")
    body = f"<ul>{findings}</ul>" + _table(["parameter", "fitted", "alone", "others re-fitted", "identified"], rows,
                                            table_id="calibration-identifiability")
    return _section("identifiability", "Identifiability", _e(lead), body)


def write_calibration(out: str | Path, info: dict, table: pd.DataFrame, *, parameters=None, fan=None, history=None,
                      stylised=None, oos=None, parameter_file: str | None = None, identifiability=None) -> Path:
    """Write the report folder ``out``: ``calibration.html``, ``targets.csv``, ``parameters.csv``,
    ``fan.csv``, ``history.csv``, ``stylised.csv``, ``out_of_sample.csv``, ``identifiability.csv``,
    ``identifiability_directions.csv``, ``parameters.yaml`` and ``summary.json`` (those that apply). Replaces an existing folder only once the new one is
    complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        table.to_csv(staging / "targets.csv")
        oos_frame = None if not oos else pd.concat(
            [frame.assign(episode=name) for name, frame in oos.items()]).rename_axis("target")
        for name, frame in (("parameters", parameters), ("fan", fan), ("history", history), ("stylised", stylised),
                            ("out_of_sample", oos_frame)):
            if frame is not None:
                frame.to_csv(staging / f"{name}.csv")
        if parameter_file is not None:
            (staging / "parameters.yaml").write_text(parameter_file, encoding="utf-8")
        summary = {k: v for k, v in info.items() if k not in ("meta", "notes")}
        summary["targets"] = json.loads(table.to_json(orient="index"))
        if oos:
            summary["out_of_sample"] = {name: json.loads(frame.to_json(orient="index")) for name, frame in oos.items()}
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        if identifiability is not None:
            identifiability.parameters.to_csv(staging / "identifiability.csv")
            identifiability.directions.to_csv(staging / "identifiability_directions.csv")
        html = render_calibration(info, table, parameters, fan, history, stylised, oos, identifiability)
        (staging / "calibration.html").write_text(html, encoding="utf-8")
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
