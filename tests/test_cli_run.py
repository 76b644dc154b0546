"""``cascade run`` end to end: ``python -m engine run <scenario>`` in a subprocess, as a user runs it.

The table names every market metric and prints the touch probabilities with their 95% intervals;
``--json`` prints one JSON object (``{"scenario", "n_paths", "n_steps", "seed", "market",
"touch_directions", "uncertainty"}``) equal to
``engine.run(...).to_dict()``; ``--paths``/``--seed`` are obeyed; bad input exits 2 with a message
and no traceback; the numbers depend on neither the run nor the number of threads.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import engine
from engine.cli import main
from engine.result import SUMMARY_METRICS

from conftest import ROOT

CALM = "scenarios/ci/ci-calm.yaml"
LEVELS = [73_600, 70_600, 66_900, 60_000, 56_100, 50_000]  # ci-calm's outputs.price_levels_usd (the defaults)


def cascade(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``cascade <args>`` through :func:`engine.cli.main` (no process start-up: for the cheap checks)."""
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = main(list(args))
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def calm_json():
    """``--json --paths 300 --seed 5`` with one thread: the reference the other runs are compared to."""
    proc = cascade("run", CALM, "--no-save", "--json", "--paths", "300", "--seed", "5", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    return proc.stdout


@pytest.mark.slow
def test_run_prints_the_table():
    proc = cascade("run", CALM, "--no-save", "--paths", "512")
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    out = proc.stdout
    lines = out.splitlines()
    assert lines[0] == ("ci-calm: 512 paths x 72 steps (2026-01-29 00:00 .. 2026-01-31 23:00 UTC), "
                        "seed 20260205")
    assert re.search(r"^metric\s+p05\s+p50\s+p95$", out, re.M)
    for metric in SUMMARY_METRICS:
        assert re.search(rf"^{metric}\s+\S+\s+\S+\s+\S+$", out, re.M), f"no row for {metric}"
    interval = r"\d+\.\d+% - \d+\.\d+%"  # the 95% interval (engine.results.risk)
    for level in LEVELS:  # all below the spot: touched by a fall
        assert re.search(rf"^P\(touch {level:,}\) down\s+\d+\.\d+%\s+{interval}$", out, re.M), \
            f"no touch line for {level:,}"
    assert re.search(rf"^P\(adl\)\s+\d+\.\d+%\s+{interval}$", out, re.M)
    assert re.search(rf"^P\(bad_debt\)\s+\d+\.\d+%\s+{interval}$", out, re.M)
    touch = [float(re.search(rf"^P\(touch {level:,}\) down\s+(\d+\.\d+)%", out, re.M).group(1)) for level in LEVELS]
    assert touch == sorted(touch, reverse=True)  # lower levels are touched less often
    assert re.search(r"^simulated in [\d.]+ s", out, re.M)


@pytest.mark.slow
def test_run_json_is_one_object_with_the_documented_keys(calm_json):
    assert calm_json.count("\n") == 1 and calm_json.endswith("\n")  # one line, one object
    d = json.loads(calm_json)
    optional = {"strategies", "book_greeks", "limits"}  # with a book, hedges, limits
    assert [k for k in d if k not in optional] == ["scenario", "n_paths", "n_steps", "seed", "market",
                                                   "touch_directions", "uncertainty"]
    assert d["touch_directions"] == {f"prob_touch_{level}": "down" for level in LEVELS}
    assert set(d["uncertainty"]["market"]) == set(d["market"]) - set(SUMMARY_METRICS)
    assert d["scenario"] == "ci-calm"
    assert (d["n_paths"], d["seed"], d["n_steps"]) == (300, 5, 72)
    market = d["market"]
    probabilities = [f"prob_touch_{level}" for level in LEVELS] + ["prob_adl", "prob_bad_debt"]
    assert list(market) == list(SUMMARY_METRICS) + probabilities
    for metric in SUMMARY_METRICS:
        assert set(market[metric]) == {"p05", "p50", "p95"}
        assert market[metric]["p05"] <= market[metric]["p50"] <= market[metric]["p95"]
    for key in probabilities:
        assert isinstance(market[key], float) and 0.0 <= market[key] <= 1.0


def test_run_json_equals_the_api(calm_json):
    result = engine.run(ROOT / CALM, n_paths=300, seed=5, keep_steps=False)
    assert json.loads(calm_json) == result.to_dict()


def test_run_defaults_to_the_scenario_paths_and_seed(capsys):
    code, out, _ = in_process(capsys, "run", CALM, "--no-save", "--json", "--set", "n_paths=64", "--jobs", "1")
    assert code == 0
    d = json.loads(out)
    assert (d["n_paths"], d["seed"]) == (64, 20260205)


@pytest.mark.slow
def test_same_seed_same_json(calm_json, capsys):
    again = cascade("run", CALM, "--no-save", "--json", "--paths", "300", "--seed", "5", "--jobs", "1")
    assert again.returncode == 0, again.stderr
    assert again.stdout == calm_json
    code, out, _ = in_process(capsys, "run", CALM, "--no-save", "--json", "--paths", "300", "--seed", "5", "--jobs", "1")
    assert code == 0 and out == calm_json  # and in another process, with other work done before


@pytest.mark.slow
def test_threads_do_not_change_the_json(calm_json, capsys):
    two = cascade("run", CALM, "--no-save", "--json", "--paths", "300", "--seed", "5", "--jobs", "2")
    assert two.returncode == 0, two.stderr
    assert two.stdout == calm_json
    code, out, _ = in_process(capsys, "run", CALM, "--no-save", "--json", "--paths", "300", "--seed", "6", "--jobs", "2")
    assert code == 0 and json.loads(out)["market"] != json.loads(calm_json)["market"]


@pytest.mark.parametrize("args, message", [
    (["--paths", "0"], "--paths: must be at least 1"),
    (["--set", "n_paths=-1"], "n_paths"),
])
def test_bad_input_exits_2_without_a_traceback(args, message):
    proc = cascade("run", CALM, "--no-save", *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    _no_traceback(proc)
    assert message in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--paths", "-5"], "--paths"),
    (["--paths", "lots"], "--paths"),
    (["--paths", "1.5"], "--paths"),
    (["--seed", "-1"], "--seed"),
    (["--jobs", "0"], "--jobs"),
    (["--set", "market.spot_usd=-5"], "spot_usd"),
    (["--set", "no_such_key=1"], "no_such_key"),
    (["--set", "horizon.step=1s"], "step must be between 1m and 1d"),
])
def test_more_bad_input_exits_2(args, message, capsys):
    try:
        code, out, err = in_process(capsys, "run", CALM, "--no-save", *args)
    except SystemExit as exc:  # argparse errors leave through sys.exit
        code, captured = exc.code, capsys.readouterr()
        out, err = captured.out, captured.err
    assert code == 2
    assert message in err
    assert out == ""


def test_missing_file_exits_2_without_a_traceback(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = cascade("run", str(missing), "--no-save")
    assert proc.returncode == 2
    _no_traceback(proc)
    assert "nope.yaml" in proc.stderr and "not found" in proc.stderr
    assert proc.stdout == ""


def test_invalid_scenario_file_exits_2_with_its_location(write_yaml):
    bad = write_yaml("bad.yaml", """
        name: bad
        horizon: {start: 2026-01-29T00:00:00Z, duration: 1d}
        market:
          spot_usd: -3
          perpetuals: {long: {notional_usd: 1B}, short: {notional_usd: 1B}}
    """)
    proc = cascade("run", str(bad), "--json", "--no-save")
    assert proc.returncode == 2
    _no_traceback(proc)
    assert re.search(r"bad\.yaml:4:\d+: market\.spot_usd", proc.stderr), proc.stderr
    assert proc.stdout == ""


@pytest.mark.slow
def test_the_flagship_prints_its_book_hedged_with_puts_at_50k_60k():
    """The mission on the first screen: the flagship carries a book and the 50k-60k puts, and its
    JSON has a strategies table whose puts lower the unhedged book's ES99."""
    proc = cascade("run", "scenarios/feb-2026-deleveraging.yaml", "--no-save", "--json", "--paths", "2000")
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)["strategies"]
    assert list(table)[0] == "unhedged"
    for put in ("put_50k", "put_55k", "put_60k"):
        assert table[put]["es99"] < table["unhedged"]["es99"], put
        assert table[put]["premium"] > 0
    assert {"put_spread_60k_50k", "collar_zero_cost"} <= set(table)
    text = cascade("run", "scenarios/feb-2026-deleveraging.yaml", "--no-save", "--paths", "500").stdout
    assert text.index("min_price") < text.index("hedges (") < text.index("tail risk (")
