"""The HTML report and the PNG figures of a run folder.

* ``write_run`` writes ``report.html`` and ``figures/*.png`` (the scenario's ``outputs.report`` and
  ``outputs.figures``); the report is one offline file: plotly.js inlined once, no remote script,
  stylesheet or font, and every chart it names has data;
* a run without strategies says so where the hedges would be; a two-parameter strategy grid and a
  ``sweep`` table give heatmaps; the report is rebuilt from the folder alone, identically;
* the figures are PNGs, the same bytes for the same run;
* in a real headless Chromium the page throws no error and draws every chart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

import engine
from engine.results import _prep as prep
from engine.results.figures import write_figures
from engine.results.report import BOOK_CHART_ID, CHART_IDS, render_report
from engine.results.store import load_run, write_run

SMALL = ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml"
ON = ["outputs.report=true", "outputs.figures=true"]  # the CI scenario turns both off; the default is on
BOOK_CHARTS = {*CHART_IDS, BOOK_CHART_ID}  # the CI flagship's book holds a perp: its greeks are drawn
HEDGED_CHARTS = {*BOOK_CHARTS, "chart-strategy-pnl", "chart-heatmap-spread-es99", "chart-heatmap-spread-premium"}
FIGURES = {"fan.png", "liquidations.png", "open_interest.png", "flows.png"}


def _hedged_yaml(folder):
    """The CI flagship with a book and three strategies, one a put-spread grid of long strike x hedge ratio."""
    path = folder / "hedged.yaml"
    path.write_text(f"""\
extends: {os.path.relpath(SMALL, folder)}
name: ci-hedged
portfolio:
  spot_btc: 10
  cash_usd: 100k
  perp: {{size_btc: 5, leverage: 5}}
strategies:
  - {{rule: protective_put, name: put_60k, strike_usd: 60k, hedge_ratio: 100%, expiry: 2026-02-27T08:00:00Z}}
  - rule: put_spread
    name: spread
    long_strike_usd: {{values: [60k, 65k, 70k]}}
    short_strike_usd: 50k
    hedge_ratio: {{values: [50%, 100%]}}
    expiry: 2026-02-27T08:00:00Z
  - {{rule: perp_hedge, hedge_ratio: 50%, leverage: 3}}
""")
    return path


@pytest.fixture(scope="module")
def plain_result():
    """The CI flagship without its hedges."""
    return engine.run(engine.load_scenario(SMALL, overrides=[*ON, "strategies=[]"]), n_paths=500)


@pytest.fixture(scope="module")
def plain_run(plain_result, tmp_path_factory):
    return load_run(write_run(plain_result, tmp_path_factory.mktemp("report") / "plain"))


@pytest.fixture(scope="module")
def hedged_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    result = engine.run(engine.load_scenario(_hedged_yaml(folder), overrides=ON), n_paths=500)
    return load_run(write_run(result, folder / "hedged"))


def _charts(page: str) -> dict[str, tuple[list, dict]]:
    """Every ``Plotly.newPlot(id, data, layout)`` call of the page, decoded: {id: (data, layout)}."""
    decoder = json.JSONDecoder()
    out = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, m.end())
        layout, _ = decoder.raw_decode(page, page.index("{", end))
        out[m.group(1)] = (data, layout)
    return out


def _has_values(trace: dict) -> bool:
    for key in ("y", "x", "z", "q1", "base"):
        value = trace.get(key)
        if isinstance(value, dict) and value.get("bdata"):  # a typed array, base64
            return True
        if isinstance(value, list) and len(value):
            return True
    return False


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------- the page
@pytest.mark.slow
def test_report_is_one_offline_file_with_plotly_inlined_once(hedged_run):
    from plotly.offline import get_plotlyjs

    page = (hedged_run.path / "report.html").read_text(encoding="utf-8")
    assert page.count(get_plotlyjs()[:400]) == 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE), "a script loaded from elsewhere"
    assert not re.search(r"<link\b", page, re.IGNORECASE), "a linked stylesheet or font"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page, re.IGNORECASE), "a remote CSS resource"
    assert 4e6 < len(page) < 6.5e6  # plotly.js is ~4.8 MB; the data must stay small


def test_report_has_every_chart_and_every_chart_has_data(hedged_run):
    page = (hedged_run.path / "report.html").read_text(encoding="utf-8")
    charts = _charts(page)
    assert set(charts) == HEDGED_CHARTS
    for chart_id in HEDGED_CHARTS:
        assert page.count(f'id="{chart_id}"') == 1, chart_id
    for chart_id, (data, _) in charts.items():
        assert data and all(_has_values(t) for t in data), f"{chart_id} has a trace without data"
    # the time charts share one x range: the horizon
    ranges = {tuple(layout["xaxis"]["range"]) for cid, (_, layout) in charts.items()
              if cid in ("chart-shocks", "chart-price-fan", "chart-liquidations", "chart-open-interest", "chart-flows")}
    assert len(ranges) == 1
    for section in ("metrics", "market", "liquidations", "flows", "outcomes", "hedges", "details"):
        assert f'<section id="{section}">' in page


def test_header_and_tables_say_what_was_run(hedged_run):
    page = (hedged_run.path / "report.html").read_text(encoding="utf-8")
    m = hedged_run.manifest
    assert "<h1>ci-hedged</h1>" in page
    assert f"{m['seed']}" in page and "500 paths x 96 steps of 1h" in page
    assert "2026-01-29 00:00 .. 2026-02-02 00:00 UTC" in page
    assert m["scenario"]["hash"][:12] in page
    # the hedge table: every row, the unhedged book first, the same labels as the terminal table
    table = page[page.index('id="table-strategies"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == 1 + len(hedged_run.strategies)
    assert table.index(">unhedged<") < table.index(">put_60k<")
    assert "long_strike_usd=70000" in table and 'class="best"' in table
    # the key metrics: percentiles of the market metrics, touch probabilities as percentages
    market = hedged_run.metrics["market"]
    assert f"{market['min_price']['p50']:,.0f}" in page
    assert f"{market['prob_touch_73600']:.1%}" in page


@pytest.mark.slow
def test_a_run_without_strategies_says_so_instead_of_the_hedge_charts(plain_run):
    page = (plain_run.path / "report.html").read_text(encoding="utf-8")
    assert set(_charts(page)) == BOOK_CHARTS
    hedges = page[page.index('<section id="hedges">'):]
    hedges = hedges[:hedges.index("</section>")]
    assert 'class="note"' in hedges and "no strategies" in hedges
    assert "chart-strategy-pnl" not in page and "table-strategies" not in page
    assert '<section id="sweep">' not in page


def test_the_report_is_rebuilt_from_the_folder_alone_identically(plain_run):
    again = load_run(plain_run.path)
    first = render_report(again)
    assert render_report(load_run(plain_run.path)) == first
    assert "M path-steps/s" in first  # the manifest's timings, written after the first report


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "keep_steps", "charts", "figures"), [
    # per-path summaries only: no fan, no open interest; the flows still tell who sold
    ([], False, {"chart-shocks", "chart-liquidations", "chart-flows", "chart-flows-total", "chart-min-price",
                 "chart-drawdown"}, {"liquidations.png", "flows.png"}),
    # two quantiles (one band, no median), no sample paths, no levels, no bands
    (["outputs.quantiles=[10, 90]", "outputs.sample_paths=0", "outputs.price_levels_usd=[]",
      "outputs.price_bands=[]"], True, BOOK_CHARTS, FIGURES),
])
def test_runs_that_kept_less_still_get_a_report_with_notes(tmp_path, overrides, keep_steps, charts, figures):
    scenario = engine.load_scenario(SMALL, overrides=[*ON, "strategies=[]", *overrides])
    run = load_run(write_run(engine.run(scenario, n_paths=200, keep_steps=keep_steps), tmp_path / "run"))
    page = (run.path / "report.html").read_text(encoding="utf-8")
    assert set(_charts(page)) == charts
    assert page.count('class="note"') == (3 if not keep_steps else 1)  # fan, open interest; hedges
    assert {p.name for p in (run.path / "figures").glob("*.png")} == figures


def test_a_sweep_table_gives_heatmaps_over_its_first_two_parameters(plain_result, tmp_path):
    strikes, ratios, expiries = [55e3, 60e3, 65e3], [0.25, 0.5, 1.0], [7.0, 30.0]
    rows = [{"param.strike_usd": k, "param.hedge_ratio": r, "param.tenor_days": d, "es99": 1e5 * (1 - r) + k / 10,
             "premium": r * (k - 50e3) / 10, "pnl_mean": -1e4 * r, "p_liquidated": 0.1 * r, "label": "x"}
            for k in strikes for r in ratios for d in expiries]
    sweep = pd.DataFrame(rows)
    run = load_run(write_run(plain_result, tmp_path / "sweep", tables={"sweep": sweep}, figures=False))
    page = (run.path / "report.html").read_text(encoding="utf-8")
    charts = _charts(page)
    expected = {"chart-sweep-es99", "chart-sweep-premium", "chart-sweep-pnl-mean", "chart-sweep-p-liquidated"}
    assert expected <= set(charts)
    data, layout = charts["chart-sweep-es99"]
    assert data[0]["type"] == "heatmap" and data[0]["x"] == ["55k", "60k", "65k"] and data[0]["y"] == ["25%", "50%", "100%"]
    assert "tenor days = 7" in layout["title"]["text"]  # the third parameter is held at its first value
    # the cell at strike 60k, ratio 50%: the row with tenor 7 days
    g = prep.grid(sweep[sweep["param.tenor_days"] == 7.0], "param.strike_usd", "param.hedge_ratio", "es99")
    assert g.z[1, 1] == pytest.approx(1e5 * 0.5 + 6e3)


def test_a_sweep_table_with_one_parameter_gets_a_note():
    from engine.results._charts import Skip, sweep_heatmaps

    (skip,) = sweep_heatmaps(pd.DataFrame({"param.strike_usd": [1.0, 2.0], "es99": [3.0, 4.0]}))
    assert isinstance(skip, Skip) and "two param.* columns" in skip.note


# --------------------------------------------------------------------------- the figures
@pytest.mark.slow
def test_figures_are_pngs_and_the_same_bytes_for_the_same_run(hedged_run, tmp_path):
    folder = hedged_run.path / "figures"
    assert {p.name for p in folder.glob("*.png")} == FIGURES | {"pnl.png"}
    for path in folder.glob("*.png"):
        width, height = _png_size(path)
        assert width == 1500 and 300 < height < 1200, path.name
    again = write_figures(load_run(hedged_run.path), tmp_path / "again")
    assert sorted(p.name for p in again) == sorted(FIGURES | {"pnl.png"})
    for path in again:
        assert path.read_bytes() == (folder / path.name).read_bytes(), f"{path.name} differs between two draws"


def test_a_run_without_strategies_has_no_pnl_figure(plain_run):
    assert {p.name for p in (plain_run.path / "figures").glob("*.png")} == FIGURES


@pytest.mark.slow
def test_a_price_band_far_from_the_market_does_not_break_the_fan_figure(tmp_path):
    """Black Thursday trades near 7k, far below the price bands of February 2026 it inherits: the
    fan leaves them out instead of labelling them off the axes (which collapsed matplotlib's
    constrained layout, with a warning and a squashed chart)."""
    import warnings

    result = engine.run(ROOT / "scenarios" / "history" / "black-thursday-2020.yaml", n_paths=200)
    run = load_run(write_run(result, tmp_path / "run"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = write_figures(run, tmp_path / "figures")
    assert "fan.png" in {p.name for p in written}


# --------------------------------------------------------------------------- the choices
def _fan(levels):
    cols = pd.MultiIndex.from_tuples([("price", f"p{q:g}") for q in levels], names=["metric", "quantile"])
    return pd.DataFrame(np.arange(len(levels), dtype=float)[None, :].repeat(3, 0), columns=cols)


@pytest.mark.parametrize(("levels", "pairs", "middle"), [
    ([5, 25, 50, 75, 95], [("p5", "p95", "5-95%"), ("p25", "p75", "25-75%")], "p50"),
    ([10, 90], [("p10", "p90", "10-90%")], None),
    ([1, 50, 99], [("p1", "p99", "1-99%")], "p50"),
    ([2.5, 97.5], [("p2.5", "p97.5", "2.5-97.5%")], None),
    ([50], [], "p50"),
])
def test_fan_bands_pair_whatever_quantiles_the_run_kept(levels, pairs, middle):
    assert prep.bands(_fan(levels), "price") == (pairs, middle)


def test_pnl_chart_shows_the_unhedged_book_and_the_best_tails():
    table = pd.DataFrame({"es99": [100.0, 50, 90, 10, 70, 30, 60, 20, 80, 40, 95]})
    assert prep.pnl_rows(table.iloc[:8]) == list(range(8))
    assert prep.pnl_rows(table) == [0, 3, 7, 5, 9, 1, 6, 4]


def test_strategy_grids_need_exactly_two_varied_parameters(hedged_run):
    grids = prep.strategy_grids(hedged_run.strategies)
    assert [(name, x, y) for name, x, y, _ in grids] == [("spread", "param.long_strike_usd", "param.hedge_ratio")]
    g = prep.grid(grids[0][3], "param.long_strike_usd", "param.hedge_ratio", "es99")
    assert g.xs == [60e3, 65e3, 70e3] and g.ys == [0.5, 1.0] and np.isfinite(g.z).all()


@pytest.mark.parametrize(("name", "value", "text"), [
    ("premium", 9315.05, "9.315k"), ("es99", 387624.8, "387.6k"), ("p_liquidated", 0.534, "53.4%"),
    ("param.hedge_ratio", 0.5, "50%"), ("param.long_strike_usd", 65000.0, "65k"), ("effectiveness", 14.6362, "14.64"),
    ("premium", 929.03, "929"), ("es99", float("nan"), "-"),
])
def test_values_are_formatted_by_what_they_measure(name, value, text):
    assert prep.fmt_value(name, value) == text


# --------------------------------------------------------------------------- a real browser
@pytest.mark.slow
def test_the_report_draws_every_chart_in_chromium(chromium, hedged_run, tmp_path):
    from engine.results.browser import render_page

    check = render_page(hedged_run.path / "report.html", tmp_path / "report.png")
    assert check.errors == ()
    assert check.charts == len(HEDGED_CHARTS), check.undrawn_reasons
    assert check.charts_drawn == check.charts, check.undrawn_reasons
    assert _png_size(tmp_path / "report.png")[1] > 3000  # the whole page, not the first screen
    if os.environ.get("CASCADE_SAVE_SCREENSHOTS"):  # keep the repository clean unless asked
        target = ROOT / "results" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "report.png", target / "report-ci-hedged.png")


def test_levels_and_bands_are_the_scenarios(tmp_path):
    """outputs.price_levels_usd and outputs.price_bands are what the fan draws: change them and the
    chart's shapes and labels follow."""
    result = engine.run(engine.load_scenario(SMALL, overrides=[
        *ON, "strategies=[]", "outputs.price_levels_usd=[61234]",
        "outputs.price_bands=[{low_usd: 71k, high_usd: 72.5k, label: my shelf}]"]), n_paths=200)
    run = load_run(write_run(result, tmp_path / "run", figures=False))
    _, layout = _charts(render_report(run))["chart-price-fan"]
    text = json.dumps(layout)
    assert "my shelf" in text and "absorption" not in text
    rects = [s for s in layout.get("shapes", []) if s.get("type") == "rect"]
    assert any(abs(s["y0"] - 71_000) < 1 and abs(s["y1"] - 72_500) < 1 for s in rects)
    assert "61.23k" in text and "60k" not in text  # the default levels are gone
