"""In a notebook: ``_repr_html_`` and ``.plot()`` (plotly figures, the report's own charts) on a
simulation result, a run folder and a sweep."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from conftest import ROOT

import engine
from engine.results.store import load_run, write_run

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"
HEDGED = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"


@pytest.fixture(scope="module")
def hedged():
    return engine.run(HEDGED, n_paths=200)


def test_a_result_shows_its_tables_and_plots_its_fan(hedged):
    page = hedged._repr_html_()
    assert "feb-2026-deleveraging" in page and "200 paths" in page
    assert "min_price" in page and "prob_touch_60000" in page and "put_60k" in page and "<table" in page
    figure = hedged.plot()
    assert isinstance(figure, go.Figure)
    assert any(t.name == "sample paths" for t in figure.data) and len(figure.data) > 5


def test_a_result_without_steps_says_why_it_cannot_plot():
    flat = engine.run(CALM, n_paths=64, keep_steps=False)
    assert "min_price" in flat._repr_html_()
    with pytest.raises(ValueError, match="keep_steps=False"):
        flat.plot()


def test_a_run_folder_shows_its_metrics_and_plots_as_the_result_does(hedged, tmp_path):
    run = load_run(write_run(hedged, tmp_path / "run", report=False, figures=False))
    page = run._repr_html_()
    assert "run folder" in page and "min_price" in page and "put_60k" in page
    a, b = run.plot(), hedged.plot()
    assert [t.name for t in a.data] == [t.name for t in b.data]


def test_a_sweep_shows_its_best_rows_and_plots_a_heatmap(tmp_path):
    from engine.sweep import apply_grid

    scenario = apply_grid(engine.load_scenario(HEDGED, ["n_paths=100"]),
                          ["strategies[put_60k].strike_usd=55k,60k", "strategies[put_60k].hedge_ratio=50%,100%"])
    sweep = engine.run_sweep(scenario, root=tmp_path, report=False)
    page = sweep._repr_html_()
    assert "sweep" in page and "<table" in page and "es99" in page
    figure = sweep.plot("es99")
    assert isinstance(figure, go.Figure) and figure.data[0].type == "heatmap"
