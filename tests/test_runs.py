"""Run folders: written atomically, read back as the same tables, rerun bit-identically, compared.

* ``write_run`` + ``load_run`` give back every table of the result unchanged, and the manifest
  names the resolved scenario, seed, paths, versions and the SHA-256 of every file;
* a failure (or Ctrl-C) while writing leaves nothing that looks like a run; a damaged or
  unfinished folder is refused with a message naming the file;
* ``cascade rerun`` reproduces a run bit for bit from its folder, whatever the thread count;
* ``cascade compare`` lists exactly the metrics that moved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import engine
from engine.cli import main
from engine.errors import RunFolderError
from engine.results import store
from engine.results.store import load_run, write_run

from conftest import ROOT

CALM = ROOT / "scenarios" / "ci" / "ci-calm.yaml"


def _hedged(write_yaml, tiny_scenario):
    """A tiny scenario with a book and a put-spread grid, so the strategy tables are written."""
    tiny = dict(tiny_scenario, n_paths=128)
    tiny["portfolio"] = {"spot_btc": 10, "cash_usd": "100k"}
    tiny["strategies"] = [{"rule": "put_spread", "long_strike_usd": {"values": ["86k", "84k"]}, "short_strike_usd": "78k",
                           "size_btc": 10, "tenor": "30d"}]
    return write_yaml("hedged.yaml", tiny)


@pytest.fixture(scope="module")
def calm_result():
    return engine.run(CALM, n_paths=256, seed=11, n_jobs=2)


@pytest.fixture(scope="module")
def calm_run(calm_result, tmp_path_factory):
    return write_run(calm_result, tmp_path_factory.mktemp("runs") / "calm", report=False, figures=False,
                     source=CALM)


def test_tables_round_trip(calm_result, calm_run):
    run = load_run(calm_run)
    pd.testing.assert_frame_equal(run.per_path, calm_result.per_path)
    pd.testing.assert_frame_equal(run.fan, calm_result.fan)
    pd.testing.assert_frame_equal(run.flows, calm_result.flows)
    pd.testing.assert_frame_equal(run.sample_paths, calm_result.sample_paths)
    assert run.metrics == json.loads(json.dumps(calm_result.to_dict()))
    assert run.strategies is None and run.strategy_pnl is None
    assert list(run.shocks.columns) == ["id", "type", "start", "end"]
    assert engine.load_run is load_run


def test_manifest_says_what_was_run(calm_result, calm_run):
    m = load_run(calm_run).manifest
    assert m["scenario"]["name"] == "ci-calm" and m["seed"] == 11 and m["n_paths"] == 256
    assert m["scenario"]["hash"] == store.scenario_hash((calm_run / "scenario.yaml").read_text())
    assert m["scenario"]["fingerprint"] == calm_result.compiled.fingerprint()
    assert m["engine"]["version"] == engine.__version__
    assert {"numpy", "pandas", "numba", "pyarrow", "python"} <= set(m["dependencies"])
    assert {"simulate_s", "write_s"} <= set(m["timings"]) and m["machine"]["cpu_count"] >= 1
    files = set(m["files"])
    assert {"scenario.yaml", "metrics.json", "metrics.csv", "per_path.parquet", "fan.parquet", "flows.parquet",
            "shocks.parquet", "sample_paths.parquet"} <= files
    assert "manifest.json" not in files and "report.html" not in files  # report=False was obeyed
    csv = pd.read_csv(calm_run / "metrics.csv")
    assert list(csv.columns) == ["section", "name", "statistic", "value"]
    p50 = csv.query("name == 'min_price' and statistic == 'p50'")["value"].item()
    assert p50 == pytest.approx(calm_result.summary().loc["min_price", "p50"])


def test_default_folder_name_and_outputs_flags(calm_result, tmp_path):
    first = write_run(calm_result, root=tmp_path, report=False, figures=False)
    second = write_run(calm_result, root=tmp_path, report=False, figures=False)
    assert first.parent == second.parent == tmp_path / "ci-calm"
    stamp, short = first.name.split("-")[:2]
    assert len(stamp) == 16 and stamp.endswith("Z") and len(short) == 8
    # the same run hash in both names; a second folder in the same second gets the suffix -2 (the two
    # writes may also straddle a second boundary, so the stamps are not compared)
    assert second.name.split("-")[1] == short
    if second.name.split("-")[0] == stamp:
        assert second.name == first.name + "-2"
    assert first != second
    # ci-calm says outputs.report: false and outputs.figures: false: nothing drawn by default
    third = write_run(calm_result, tmp_path / "third")
    assert not (third / "report.html").exists() and not (third / "figures").exists()


def test_a_failure_while_writing_leaves_nothing(calm_result, tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_write_json_atomic", boom)  # the manifest is the last file written
    with pytest.raises(KeyboardInterrupt):
        write_run(calm_result, tmp_path / "run", report=False, figures=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_killed_writer_leaves_a_hidden_folder_the_next_run_removes(calm_result, tmp_path):
    """SIGKILL cannot be cleaned up after: the staging folder stays hidden, is refused by
    load_run, and the next run in the same place removes it (its process is gone)."""
    code = (f"import os, engine; from engine.results import store\n"
            f"r = engine.run({str(CALM)!r}, n_paths=64)\n"
            f"store._write_json_atomic = lambda *a: os.kill(os.getpid(), 9)\n"
            f"store.write_run(r, {str(tmp_path / 'killed')!r}, report=False, figures=False)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".killed.partial-")
    assert (left[0] / "per_path.parquet").exists() and not (left[0] / "manifest.json").exists()
    with pytest.raises(RunFolderError, match="unfinished"):
        load_run(left[0])
    write_run(calm_result, tmp_path / "next", report=False, figures=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["next"]


def test_out_folder_must_be_new_or_empty(calm_result, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(RunFolderError, match="not empty"):
        write_run(calm_result, tmp_path / "full", report=False, figures=False)
    assert (tmp_path / "full" / "x").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    assert write_run(calm_result, tmp_path / "empty", report=False, figures=False) == tmp_path / "empty"


def test_damaged_or_unfinished_folders_are_refused(calm_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(calm_run, copy)
    load_run(copy)
    with open(copy / "per_path.parquet", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(RunFolderError, match=r"per_path\.parquet: changed since the run was written"):
        load_run(copy)
    load_run(copy, verify=False)  # the user may insist
    (copy / "fan.parquet").unlink()
    with pytest.raises(RunFolderError, match=r"fan\.parquet: listed in the manifest but missing"):
        load_run(copy, verify=True)
    partial = tmp_path / ".x.partial-1"
    shutil.copytree(calm_run, partial)
    with pytest.raises(RunFolderError, match="unfinished"):
        load_run(partial)
    (copy / "manifest.json").write_text("{\n oops")
    with pytest.raises(RunFolderError, match=r"manifest\.json: line 2"):
        load_run(copy)
    with pytest.raises(RunFolderError, match="no such run folder"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(RunFolderError, match="no manifest"):
        load_run(tmp_path)


def test_strategy_tables_round_trip(write_yaml, tiny_scenario, tmp_path):
    result = engine.run(_hedged(write_yaml, tiny_scenario))
    run = load_run(write_run(result, tmp_path / "hedged", report=False, figures=False))
    table = result.strategies.copy()
    table.attrs = {}
    pd.testing.assert_frame_equal(run.strategies, table)
    assert run.strategy_pnl.shape == (128, len(table))
    np.testing.assert_array_equal(run.strategy_pnl.to_numpy().T, result.strategy_paths["pnl"])
    # the table's mean PnL is the mean of the stored per-path PnL
    np.testing.assert_allclose(run.strategy_pnl.mean().to_numpy(), table["pnl_mean"].to_numpy(), rtol=1e-12)
    extra = pd.DataFrame({"param.x": [1, 2], "es99": [3.0, 4.0]})
    run2 = load_run(write_run(result, tmp_path / "sweep", report=False, figures=False, tables={"sweep": extra}))
    pd.testing.assert_frame_equal(run2.tables["sweep"], extra)
    with pytest.raises(ValueError, match="reserved"):
        write_run(result, tmp_path / "bad", report=False, figures=False, tables={"fan": extra})


def test_shock_windows_of_the_flagship():
    scenario = engine.load_scenario(ROOT / "scenarios" / "feb-2026-deleveraging.yaml")
    windows = store.shock_windows(scenario)
    assert len(windows) == len(scenario.shocks)
    h = scenario.horizon
    assert (windows["start"] >= pd.Timestamp(h.start) - pd.Timedelta("1D")).all()
    assert (windows["end"] <= pd.Timestamp(h.end)).all() and (windows["end"] > windows["start"]).all()


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cascade_run_writes_a_folder_and_rerun_is_bit_identical(capsys, tmp_path):
    code, out, _ = _cli(capsys, "run", CALM, "--paths", "256", "--jobs", "2", "--out", tmp_path / "a", "--json")
    assert code == 0 and json.loads(out)["run_dir"] == str(tmp_path / "a")
    m = load_run(tmp_path / "a").manifest
    assert m["command"][:3] == ["cascade", "run", str(CALM)]
    # a different thread count: the same numbers, bit for bit
    code, out, err = _cli(capsys, "rerun", tmp_path / "a", "--out", tmp_path / "b", "--jobs", "1")
    assert code == 0, err
    assert "bit-identical" in out
    assert store.identical(load_run(tmp_path / "a"), load_run(tmp_path / "b")) == []


def test_rerun_notices_a_changed_result(capsys, tmp_path, calm_run):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(calm_run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["market"]["min_price"]["p50"] += 1.0
    (copy / "metrics.json").write_text(json.dumps(metrics))
    code, _, err = _cli(capsys, "rerun", copy, "--out", tmp_path / "again")
    assert code == 2 and "metrics.json: changed since the run was written" in err  # the manifest guards it
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"].pop("metrics.json")  # an unlisted file is not read at all
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _cli(capsys, "rerun", copy, "--out", tmp_path / "again")
    assert code == 2 and "files: metrics.json is not listed" in err
    import hashlib  # a manifest doctored to match: the rerun itself notices

    manifest["files"]["metrics.json"] = hashlib.sha256((copy / "metrics.json").read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = _cli(capsys, "rerun", copy, "--out", tmp_path / "again")
    assert code == 1 and "NOT bit-identical: metrics differ" in err, err


def test_compare_lists_what_moved(capsys, tmp_path, calm_run):
    code, out, _ = _cli(capsys, "run", CALM, "--paths", "256", "--seed", "11", "--out", tmp_path / "same",
                        "--no-progress")
    assert code == 0
    code, out, _ = _cli(capsys, "compare", calm_run, tmp_path / "same")
    assert code == 0 and "same scenario, seed, paths and engine" in out and "metrics identical" in out
    code, _, _ = _cli(capsys, "run", CALM, "--paths", "256", "--seed", "12", "--out", tmp_path / "other",
                      "--no-progress")
    code, out, _ = _cli(capsys, "compare", calm_run, tmp_path / "other")
    assert code == 0 and "seed: 11 vs 12" in out and "market.min_price.p50" in out
    code, out, _ = _cli(capsys, "compare", calm_run, tmp_path / "other", "--json")
    rows = {(r["section"], r["name"], r["statistic"]): r for r in json.loads(out)["metrics"]}
    a, b = load_run(calm_run).metrics, load_run(tmp_path / "other").metrics
    row = rows[("market", "min_price", "p50")]
    assert row["diff"] == pytest.approx(b["market"]["min_price"]["p50"] - a["market"]["min_price"]["p50"])
    code, _, err = _cli(capsys, "compare", calm_run, tmp_path / "missing")
    assert code == 2 and "no such run folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_user_errors_exit_2_and_write_nothing(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    for args, message in [
        (["run", str(CALM), "--out", str(tmp_path / "full")], "already exists and is not empty"),
        (["run", str(CALM), "--out", str(tmp_path / "o"), "--no-save"], "contradict"),
        (["rerun", str(tmp_path / "nowhere")], "no such run folder"),
        (["report", str(tmp_path)], "no manifest"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
