"""Sweeps: grids laid out as the YAML and --grid say, identical on every backend, streamed and resumable.

* product / zip layouts, ``sweep.parameters`` keys under ``strategies[...]`` evaluated on shared
  paths, scenario keys re-simulated with common random numbers; every row carries its
  parameters and seed;
* the table is the same, bit for bit, on one job, loky with 2 jobs, threading, and a real
  2-worker Dask LocalCluster on loopback, whatever the chunk size;
* a rerun skips the chunks whose files verify, recomputes a damaged one, and a killed sweep
  resumes to the same table; failures come back as a table with ``on_error="collect"``;
* ``cascade sweep``: ``--grid``, the top-N table, exit codes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import engine
from engine import sweep as sw
from engine.sweep import chunks as sweep_chunks, run as sweep_run
from engine.cli import main
from engine.errors import RunFolderError, ScenarioError

from conftest import ROOT

SMALL = ROOT / "scenarios" / "ci" / "ci-feb-2026-small.yaml"
GRID = """\
extends: {small}
name: sweep-test
n_paths: 512
strategies:
  - rule: protective_put
    name: put
    strike_usd: {{values: [60k, 70k, 80k]}}
    hedge_ratio: {{values: [50%, 100%]}}
    expiry: 2026-02-27T08:00:00Z
  - {{rule: perp_hedge, name: perp, hedge_ratio: 50%, leverage: 3}}
sweep:
  mode: product
  parameters:
    shocks[metals_selloff].moves[0].move: [-20%, -34%]
"""


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    import os

    path = tmp_path_factory.mktemp("sweep") / "grid.yaml"
    path.write_text(GRID.format(small=os.path.relpath(SMALL, path.parent)))
    return path


@pytest.fixture(scope="module")
def scenario(grid_file):
    return engine.load_scenario(grid_file)


@pytest.fixture(scope="module")
def reference(scenario, tmp_path_factory):
    """The sweep on one job, in process: the table every other way of running it must equal."""
    return sw.run_sweep(scenario, out=tmp_path_factory.mktemp("ref") / "s", n_jobs=1, report=False)


def test_layout_of_a_product_grid(scenario, reference):
    plan = sw.plan_sweep(scenario)
    assert plan.scenario_keys == ["shocks[metals_selloff].moves[0].move"]
    assert [p["shocks[metals_selloff].moves[0].move"] for p in plan.points] == [-0.2, -0.34]
    assert plan.labels == ["put", "perp"] and len(plan.variants[0]) == 6 and plan.variants[1] == [{}]
    t = reference.table
    assert len(t) == 2 * (1 + 6 + 1) == len(plan.items)
    assert list(t["row"]) == list(range(len(t)))
    assert (t["seed"] == scenario.seed).all() and (t["n_paths"] == 512).all()
    assert list(t.groupby("point")["strategy"].first()) == ["unhedged", "unhedged"]
    puts = t[t["strategy"] == "put"]
    assert sorted(set(zip(puts["param.strike_usd"], puts["param.hedge_ratio"]))) == \
        [(s, h) for s in (60e3, 70e3, 80e3) for h in (0.5, 1.0)]
    # a deeper metals sell-off is a worse market at the same draws (common random numbers)
    market = t.groupby("point")["market.min_price.p50"].first()
    assert market[1] < market[0]
    # strategies change nothing about the market of their point
    assert t.groupby("point")["market.min_price.p50"].nunique().eq(1).all()


def test_rows_equal_a_plain_run_of_that_point(scenario, reference):
    """Each row is what `engine.run` + the hedge table give for its point and parameters."""
    from engine.portfolio.hedge import evaluate

    sc = engine.load_scenario(scenario.model_dump(mode="json") | {"sweep": None},
                              ["shocks[metals_selloff].moves[0].move=-0.34"])
    result = engine.run(sc)
    table = evaluate(result)
    row = table[(table["strategy"] == "put") & (table["param.strike_usd"] == 70e3)
                & (table["param.hedge_ratio"] == 1.0)].iloc[0]
    t = reference.table
    mine = t[(t["point"] == 1) & (t["strategy"] == "put") & (t["param.strike_usd"] == 70e3)
             & (t["param.hedge_ratio"] == 1.0)].iloc[0]
    for metric in ("pnl_mean", "es99", "premium", "p_liquidated", "d_es99"):
        assert mine[metric] == row[metric], metric
    assert mine["market.min_price.p50"] == result.summary().loc["min_price", "p50"]


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    {"n_jobs": 1, "chunk_size": 1},
    {"n_jobs": 2, "chunk_size": 3},
    {"n_jobs": 2, "backend": "threading", "chunk_size": 5},
    {"n_jobs": 2, "backend": "sequential", "chunk_size": 16},
])
def test_identical_whatever_runs_it(scenario, reference, tmp_path, kw):
    got = sw.run_sweep(scenario, out=tmp_path / "s", report=False, **kw)
    pd.testing.assert_frame_equal(got.table, reference.table, check_exact=True)


@pytest.mark.slow
def test_identical_on_a_real_dask_cluster(scenario, reference, tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    got = sw.run_sweep(scenario, out=tmp_path / "s", dask_local=2, chunk_size=2, report=False)
    pd.testing.assert_frame_equal(got.table, reference.table, check_exact=True)


@pytest.mark.slow
def test_identical_on_an_existing_dask_scheduler(scenario, reference, tmp_path):
    """--scheduler tcp://...: a cluster the sweep did not start (a LocalCluster on loopback here)."""
    distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        got = sw.run_sweep(scenario, out=tmp_path / "s", scheduler=cluster.scheduler_address, chunk_size=4,
                           report=False)
    pd.testing.assert_frame_equal(got.table, reference.table, check_exact=True)


@pytest.fixture(scope="module")
def one_point(scenario):
    """The grid without its scenario key: strategy parameters only, one simulation."""
    return engine.load_scenario(scenario.model_dump(mode="json") | {"sweep": None})


@pytest.fixture(scope="module")
def one_point_reference(one_point, tmp_path_factory):
    return sw.run_sweep(one_point, out=tmp_path_factory.mktemp("one") / "s", n_jobs=1, chunk_size=2, report=False)


def test_a_strategy_only_sweep_is_simulated_once(one_point, one_point_reference, tmp_path, monkeypatch):
    """The parent simulates the point once (on every core) and the chunks evaluate it; they do
    not simulate it again, nor does the run folder's base point. Simulated by the chunks
    themselves instead (as when the parent's simulation fails), the rows are the same."""
    import engine.simulate

    real, calls = engine.simulate.run, []
    monkeypatch.setattr(engine.simulate, "run", lambda *a, **k: calls.append(k.get("n_jobs")) or real(*a, **k))
    got = sw.run_sweep(one_point, out=tmp_path / "once", n_jobs=1, chunk_size=2, report=False)
    assert len(calls) == 1 and got.plan.n_chunks > 1
    pd.testing.assert_frame_equal(got.table, one_point_reference.table, check_exact=True)

    failures = iter([RuntimeError("no simulation in the parent")])

    def base_run(plan, _real=sweep_run._base_run):
        for error in failures:  # the first call (before the chunks) fails, the next (the run folder) works
            raise error
        return _real(plan)

    monkeypatch.setattr(sweep_run, "_base_run", base_run)
    sweep_chunks._CACHE.clear()
    calls.clear()
    got = sw.run_sweep(one_point, out=tmp_path / "workers", n_jobs=1, chunk_size=2, report=False)
    assert len(calls) == 2  # the chunks' own simulation, then the run folder's base point
    pd.testing.assert_frame_equal(got.table, one_point_reference.table, check_exact=True)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    {"n_jobs": 2, "chunk_size": 3},
    {"n_jobs": 2, "backend": "threading", "chunk_size": 3},
    {"dask_local": 2, "chunk_size": 2},
])
def test_a_strategy_only_sweep_is_identical_whatever_runs_it(one_point, one_point_reference, tmp_path, kw):
    """The parent's simulation reaches loky's workers as memory-mapped files, Dask's scattered,
    threads as the object itself: the same table every way."""
    if "dask_local" in kw:
        pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    got = sw.run_sweep(one_point, out=tmp_path / "s", report=False, **kw)
    assert got.plan.n_chunks >= 3
    pd.testing.assert_frame_equal(got.table, one_point_reference.table, check_exact=True)


def test_rerun_resumes_and_recomputes_a_damaged_chunk(scenario, reference, tmp_path):
    first = sw.run_sweep(scenario, out=tmp_path / "s", n_jobs=1, chunk_size=4, report=False)
    assert (first.computed, first.resumed) == (first.plan.n_chunks, 0)
    again = sw.run_sweep(scenario, out=tmp_path / "s", n_jobs=1, chunk_size=4, report=False)
    assert (again.computed, again.resumed) == (0, first.plan.n_chunks)
    damaged = tmp_path / "s" / "chunks" / "chunk-000001.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    third = sw.run_sweep(scenario, out=tmp_path / "s", n_jobs=1, chunk_size=4, report=False)
    assert (third.computed, third.resumed) == (1, first.plan.n_chunks - 1)
    pd.testing.assert_frame_equal(third.table, reference.table, check_exact=True)
    run = engine.load_run(tmp_path / "s")  # the finished sweep folder is a run folder
    pd.testing.assert_frame_equal(run.tables["sweep"], reference.table, check_exact=True)
    assert run.manifest["kind"] == "sweep" and run.manifest["sweep"]["rows"] == len(reference.table)


def test_a_folder_of_another_sweep_is_refused(scenario, tmp_path):
    sw.run_sweep(scenario, out=tmp_path / "s", n_jobs=1, report=False)
    with pytest.raises(RunFolderError, match="holds a different sweep"):
        sw.run_sweep(scenario, out=tmp_path / "s", n_jobs=1, seed=1, report=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(RunFolderError, match="not a sweep folder"):
        sw.run_sweep(scenario, out=tmp_path / "other", n_jobs=1, report=False)


def test_failures_are_collected_with_parameters_and_traceback(scenario, reference, tmp_path, monkeypatch):
    real = sweep_chunks._simulate

    def flaky(plan, point, threads):
        if point == 1:
            raise FloatingPointError("the model blew up at this point")
        return real(plan, point, threads)

    monkeypatch.setattr(sweep_chunks, "_simulate", flaky)
    with pytest.raises(FloatingPointError):
        sw.run_sweep(scenario, out=tmp_path / "raise", n_jobs=1, chunk_size=3, report=False)
    done = list((tmp_path / "raise" / "chunks").glob("*.json"))
    assert done, "chunks finished before the failure are kept"
    got = sw.run_sweep(scenario, out=tmp_path / "collect", n_jobs=1, chunk_size=3, on_error="collect", report=False)
    failed = got.failures
    assert set(failed["point"]) == {1} and len(failed) == 8
    assert (failed["seed"] == scenario.seed).all()
    assert all("blew up" in e for e in failed["error"]) and all("Traceback" in t for t in failed["traceback"])
    assert json.loads(failed["parameters"].iloc[0]) == {"shocks[metals_selloff].moves[0].move": -0.34}
    pd.testing.assert_frame_equal(got.table, reference.table[reference.table["point"] == 0].reset_index(drop=True),
                                  check_exact=True)


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_same_table(grid_file, scenario, reference, tmp_path):
    out = tmp_path / "killed"
    code = ("import engine; from engine import sweep as sw\n"
            f"s = engine.load_scenario({str(grid_file)!r})\n"
            f"sw.run_sweep(s, out={str(out)!r}, n_jobs=1, backend='sequential', chunk_size=1, report=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "chunks").glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = len(list((out / "chunks").glob("*.json")))
    plan = sw.plan_sweep(scenario, chunk_size=1)
    assert 2 <= done < plan.n_chunks, "the sweep was not interrupted half-way; make its chunks slower"
    assert not (out / "manifest.json").exists()  # not a finished run folder
    resumed = sw.run_sweep(scenario, out=out, n_jobs=1, chunk_size=1, report=False)
    assert resumed.resumed >= done - 1 and resumed.computed >= 1  # a chunk written as the kill hit may be redone
    pd.testing.assert_frame_equal(resumed.table, reference.table, check_exact=True)


def test_zip_pairs_points_and_refuses_unequal_lengths(grid_file):
    zipped = engine.load_scenario(grid_file, ["sweep.mode=zip", "strategies[put].hedge_ratio=1",
                                              "strategies[put].strike_usd={values: [60k, 80k]}"])
    plan = sw.plan_sweep(zipped)
    puts = [(it.point, plan.variants[it.strategy][it.variant]["strike_usd"]) for it in plan.items
            if it.strategy == 0]
    assert puts == [(0, 60e3), (1, 80e3)]
    with pytest.raises(ScenarioError, match="equally long"):
        engine.load_scenario(grid_file, ["sweep.mode=zip"])


def test_parameters_under_strategies_are_evaluated_not_resimulated(grid_file):
    s = engine.load_scenario(grid_file, ["sweep.parameters={'strategies[perp].hedge_ratio': [0.25, 0.75]}"])
    plan = sw.plan_sweep(s)
    assert plan.points == [{}] and plan.variants[1] == [{"hedge_ratio": 0.25}, {"hedge_ratio": 0.75}]


def test_parameters_under_strategies_take_friendly_numbers(grid_file, tmp_path):
    """``52k`` under a strategy key is the number 52,000, as under a market key and in an inline
    sweep: it stayed text, so a list mixing 52k and 54000 failed when its column was written."""
    s = engine.load_scenario(grid_file, ["sweep.parameters={'strategies[put].strike_usd': [52k, 54000]}",
                                         "n_paths=64"])
    plan = sw.plan_sweep(s)
    assert sorted({v["strike_usd"] for v in plan.variants[0]}) == [52_000.0, 54_000.0]
    table = sw.run_sweep(s, out=tmp_path / "s", n_jobs=1, report=False).table
    assert sorted(set(table["param.strike_usd"].dropna())) == [52_000.0, 54_000.0]


@pytest.mark.parametrize("text, spec", [
    ("strategies[put].strike_usd=50k:60k:2k", {"range": [50e3, 60e3, 2e3]}),
    ("market.impact.daily_volume_usd=10B,20B", {"values": [10e9, 20e9]}),
    ("x=linspace:0.1:0.9:5", {"linspace": [0.1, 0.9, 5]}),
    ("x=logspace:1M:100M:3", {"logspace": [1e6, 1e8, 3]}),
])
def test_grid_syntax(text, spec):
    assert sw.parse_grid(text)[1] == spec


@pytest.mark.parametrize("text, message", [
    ("nokey", "key.path=values"),
    ("x=1:2", "start:stop:step"),
    ("x=a,b", "not a number"),
    ("x=linspace:1:2", "start:stop:count"),
])
def test_bad_grids_are_user_errors(text, message):
    with pytest.raises(ScenarioError, match=message):
        sw.parse_grid(text)


def test_cli_sweep(capsys, grid_file, reference, tmp_path):
    code = main(["sweep", str(grid_file), "--out", str(tmp_path / "cli"), "--jobs", "1", "--top", "3",
                 "--by", "es99", "--no-progress", "--grid", "strategies[put].strike_usd=60k:80k:10k"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "2 scenario point(s) x 7 strategy parameter set(s)" in out.out and "best 3 by es99 (lowest first)" in out.out
    table = engine.load_run(tmp_path / "cli").tables["sweep"]
    pd.testing.assert_frame_equal(table, reference.table, check_exact=True)  # the --grid restated the YAML's grid
    best = table.sort_values("es99").iloc[0]
    assert f"{best['es99']:,.0f}" in out.out
    code = main(["sweep", str(grid_file), "--out", str(tmp_path / "cli"), "--jobs", "1", "--json",
                 "--grid", "strategies[put].strike_usd=60k:80k:10k"])
    got = json.loads(capsys.readouterr().out)
    assert code == 0 and got["resumed_chunks"] > 0 and got["computed_chunks"] == 0


@pytest.mark.parametrize("args, message", [
    (["--grid", "strategies[nope].strike_usd=1,2"], "no strategy 'nope'"),
    (["--grid", "strategies[put]=1,2"], "name a field of the strategy, like strategies[put].strike_usd"),
    (["--grid", "strategies[put].strike_usd.x=1,2"], "strike_usd.x: unknown key 'x'"),  # a sweep's key: once a hang
    (["--grid", "x=1:2"], "start:stop:step"),
    (["--by", "nope"], "--by nope: no such column"),
    (["--scheduler", "tcp://127.0.0.1:1", "--dask-local", "2"], "not both"),
])
def test_cli_user_errors(capsys, grid_file, tmp_path, args, message):
    code = main(["sweep", str(grid_file), "--out", str(tmp_path / "e"), "--jobs", "1", "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_nothing_swept_is_a_user_error(capsys):
    code = main(["sweep", str(ROOT / "scenarios" / "ci" / "ci-calm.yaml"), "--no-progress"])
    assert code == 2 and "nothing is swept" in capsys.readouterr().err


def test_heatmaps_of_a_strategy_sweep_in_the_report(grid_file, tmp_path):
    from engine.results.report import render_report

    result = sw.run_sweep(engine.load_scenario(grid_file, ["sweep=null"]), out=tmp_path / "s", n_jobs=1,
                          report=True)
    page = (tmp_path / "s" / "report.html").read_text()
    assert 'id="chart-sweep-es99"' in page
    assert 'id="chart-sweep-es99"' in render_report(engine.load_run(tmp_path / "s"))  # cascade report redraws it
    assert np.isfinite(result.table["es99"]).all()


def test_order_of_the_top_table(capsys, grid_file, tmp_path):
    args = ["sweep", str(grid_file), "--out", str(tmp_path / "o"), "--jobs", "1", "--no-progress", "--top", "2",
            "--by", "market.min_price.p50"]
    assert main(args) == 0
    low = capsys.readouterr().out
    assert main([*args, "--order", "highest"]) == 0
    high = capsys.readouterr().out
    assert "(lowest first)" in low and "(highest first)" in high
    t = engine.load_run(tmp_path / "o").tables["sweep"]
    assert f"{t['market.min_price.p50'].max():,.0f}" in high.split("best 2")[1]
    assert f"{t['market.min_price.p50'].max():,.0f}" not in low.split("best 2")[1]
    assert sweep_run.lowest_first("es99") and not sweep_run.lowest_first("pnl_mean")


def test_the_sweep_report_says_which_point_its_charts_show_and_where_the_hedges_are(reference):
    """A sweep's folder holds its first scenario point's market (simulated once) and the sweep
    table: the report says so above the metrics, and points to the Sweep section for the hedges,
    instead of claiming the scenario has no strategies."""
    from engine.results.report import render_report
    from engine.results.store import load_run_for_report

    page = render_report(load_run_for_report(reference.folder))
    assert "This is a sweep&#x27;s folder" in page or "This is a sweep's folder" in page
    assert "first scenario point" in page and "has no strategies" not in page
    assert "evaluated in the Sweep section below" in page
