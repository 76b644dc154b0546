"""Shock attribution (``engine.attribute``, ``cascade attribute``; module ``engine.analysis.attribution``).

Each shock's effect is the scenario minus the scenario without it, on the same random numbers:
checked against independent ``engine.run`` calls; a shock that does nothing has an effect of
exactly 0 with a standard error of 0 (which only common random numbers give); the interaction
closes the sum; the numbers do not depend on the threads; the CLI writes the table, the JSON and
a run folder whose report draws the chart; bad input exits 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import engine
from engine.analysis.attribution import attribute
from engine.results.store import load_run

from conftest import ROOT

SMALL = ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml"
PATHS = 400


def _copy(folder) -> dict:
    """ci-feb-2026-small as a document to write in ``folder`` (its ``extends`` re-pointed)."""
    doc = yaml.safe_load(SMALL.read_text())
    doc["extends"] = os.path.relpath((SMALL.parent / doc["extends"]).resolve(), folder)
    return doc


@pytest.fixture(scope="module")
def result():
    return attribute(SMALL, n_paths=PATHS, n_jobs=2)


@pytest.mark.slow
def test_rows_are_the_shocks_then_the_total_and_the_interaction(result):
    scenario = engine.load_scenario(SMALL)
    assert list(result.table["shock"]) == [s.id for s in scenario.shocks] + ["all shocks", "interaction"]
    assert result.metrics[:2] == ["min_price_p50", "liquidations_mean"]
    assert result.metrics[2:] == ["es99.unhedged", "es99.put_80k", "es99.put_spread_80k_70k"]


def test_each_effect_is_the_scenario_minus_the_scenario_without_the_shock(result):
    scenario = engine.load_scenario(SMALL)
    full = engine.run(scenario, n_paths=PATHS)
    for i, shock in enumerate(scenario.shocks):
        without = engine.run(scenario.model_copy(update={"shocks": [s for s in scenario.shocks if s is not shock]}),
                             n_paths=PATHS)
        expect_low = np.median(full.per_path["min_price"]) - np.median(without.per_path["min_price"])
        liq = lambda r: (r.per_path["long_liquidations_usd"] + r.per_path["short_liquidations_usd"]).mean()  # noqa: E731
        row = result.table.iloc[i]
        assert row["min_price_p50"] == pytest.approx(expect_low, rel=1e-12, abs=1e-6)
        assert row["liquidations_mean"] == pytest.approx(liq(full) - liq(without), rel=1e-9, abs=1e-3)
    none = engine.run(scenario.model_copy(update={"shocks": []}), n_paths=PATHS)
    total = result.table.set_index("shock").loc["all shocks"]
    assert total["min_price_p50"] == pytest.approx(
        np.median(full.per_path["min_price"]) - np.median(none.per_path["min_price"]), rel=1e-12)


def test_es99_effect_matches_the_hedge_table(result):
    scenario = engine.load_scenario(SMALL)
    full = engine.run(scenario, n_paths=PATHS, keep_steps=True).strategies.set_index("strategy")
    assert result.levels["scenario"]["es99.put_80k"] == pytest.approx(full.loc["put_80k", "es99"], rel=1e-9)


def test_the_interaction_closes_the_sum(result):
    t = result.table.set_index("shock")
    shocks = t.drop(index=["all shocks", "interaction"])
    for m in result.metrics:
        assert t.loc["interaction", m] == pytest.approx(t.loc["all shocks", m] - shocks[m].sum(), rel=1e-9, abs=1e-6)
        assert (t[f"{m}_se"] >= 0).all()


def test_a_shock_that_does_nothing_has_exactly_zero_effect(tmp_path):
    """An ETF 'outflow' of 0 USD changes no number: its effect and its standard error are 0
    exactly, which holds only if the runs share their random numbers path by path."""
    doc = _copy(tmp_path)
    doc["shocks"].append({"type": "etf_flows", "id": "nothing", "start": "2026-01-30",
                          "daily_flows_usd": {"2026-01-30": 0}})
    path = tmp_path / "with-nothing.yaml"
    path.write_text(yaml.safe_dump(doc))
    a = attribute(path, n_paths=200, n_jobs=1)
    row = a.table.set_index("shock").loc["nothing"]
    for m in a.metrics:
        assert row[m] == 0.0 and row[f"{m}_se"] == 0.0, m


def test_threads_do_not_change_the_attribution(result):
    other = attribute(SMALL, n_paths=PATHS, n_jobs=1)
    assert other.to_dict() == result.to_dict()


def cascade(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_cli_prints_the_table_and_writes_a_run_folder_with_the_chart(tmp_path):
    out = tmp_path / "run"
    proc = cascade("attribute", str(SMALL), "--paths", "300", "--out", str(out), "--set", "outputs.report=true")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for shock in ("farside_days", "metals_selloff", "warsh", "all shocks", "interaction"):
        assert shock in proc.stdout
    assert "median low" in proc.stdout and "put_80k ES99" in proc.stdout
    run = load_run(out)  # verifies every file against the manifest
    assert "attribution" in run.tables and run.manifest["attribution"]["metrics"][0] == "min_price_p50"
    html = (out / "report.html").read_text()
    assert 'id="attribution"' in html and "chart-attribution-min-price-p50" in html


@pytest.mark.slow
def test_cli_json(tmp_path):
    proc = cascade("attribute", str(SMALL), "--paths", "200", "--json", "--no-save")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["n_paths"] == 200 and data["attribution"][0]["shock"] == "farside_days"
    assert set(data["levels"]) == {"scenario", "no_shocks"}
    assert "run_dir" not in data


@pytest.mark.slow
@pytest.mark.parametrize("doc_change, message", [
    (lambda d: d.update(shocks=[]), "no shocks to attribute"),
    (lambda d: d.update(sweep={"parameters": {"shocks[warsh].depth_multiplier": [0.5, 0.7]}}), "not a sweep grid"),
])
def test_cli_refuses_what_it_cannot_attribute(tmp_path, doc_change, message):
    doc = _copy(tmp_path)
    doc_change(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    proc = cascade("attribute", str(path), "--paths", "50", "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "bad.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_the_package_exports_the_function():
    import engine.analysis.attribution  # noqa: F401  (the module is engine.analysis.attribution, so engine.attribute stays the function)

    assert engine.attribute is attribute and callable(engine.attribute)
