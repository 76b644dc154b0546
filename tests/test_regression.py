"""Regression checks (``engine.results.regression``, ``cascade check``).

* Every ``scenarios/ci/*.yaml`` passes against its committed baseline: the same check as
  ``cascade check``, through the Python API, one run per scenario for the whole module.
* The check is sensitive: 5% more or less market liquidity in the flagship fails it, and the
  metrics that moved are named.
* Every knob of ``regression:`` (``abs``, ``rel``, ``n_se``, ``default_n_se``) changes the verdict
  or the tolerance; unknown metric names are refused.
* Standard errors: bootstrap statistics of the sample itself are the engine's numbers; the
  binomial floor of probabilities; a constant gets an SE of exactly 0.
* Baseline files: deterministic text, atomic writes, errors naming file, key, expected, found.
* The command: ``--update`` round trip in a temporary folder, exit codes 0/1/2, the message for a
  missing baseline, a drifted value reported in the table.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from engine.cli import main
from engine.errors import BaselineError, ScenarioError
from engine.results import check as check_module
from engine.results import regression as rg
from engine.scenario.schema import Regression, Tolerance

CI = ROOT / "scenarios" / "ci"
BASELINES = ROOT / "results" / "baselines"
CI_FILES = sorted(CI.glob("*.yaml"))
FLAGSHIP = CI / "ci-feb-2026-small.yaml"


@pytest.fixture(scope="module")
def measured():
    """``measured(file, overrides=()) -> (scenario, Measurement)``, each run once per module."""
    cache: dict = {}

    def get(file: Path, overrides=()):
        key = (Path(file), tuple(overrides))
        if key not in cache:
            cache[key] = check_module.measure_file(file, overrides)
        return cache[key]

    return get


def _committed(name: str) -> dict:
    return rg.load_baseline(BASELINES / f"{name}.json")


def _baseline_of(scenario, m) -> dict:
    """A baseline made from measurement ``m``, as it reads back from disk."""
    return json.loads(rg.dumps_baseline(rg.baseline_record(scenario, m)))


def _with(scenario, **regression):
    return scenario.model_copy(update={"regression": Regression(**regression)})


def _extending_calm(write_yaml, tmp_path, name: str, text: str) -> Path:
    """``write_yaml(name, ...)`` of a scenario extending ci-calm.yaml (``extends`` takes a relative path)."""
    parent = os.path.relpath(CI / "ci-calm.yaml", (tmp_path / name).parent)
    return write_yaml(name, f"extends: {parent}\n" + textwrap.dedent(text).lstrip("\n"))


def _row(result, metric: str):
    return next(r for r in result.rows if r.metric == metric)


# ----------------------------------------------------------------------------- the committed baselines
def test_every_ci_scenario_has_a_baseline_and_every_baseline_a_scenario():
    assert len(CI_FILES) >= 5
    from engine.scenario.loader import load_scenario

    names = {load_scenario(f).name for f in CI_FILES}
    assert names == {p.stem for p in BASELINES.glob("*.json")}


@pytest.mark.slow
@pytest.mark.parametrize("file", CI_FILES, ids=lambda p: p.stem)
def test_ci_scenario_matches_its_baseline(measured, file):
    scenario, m = measured(file)
    result = rg.compare(scenario, m, _committed(scenario.name), baseline_path=f"results/baselines/{scenario.name}.json")
    assert result.passed, "\n" + result.render()
    assert len(result.rows) == len(m.metrics) >= 52


def test_ci_flagship_guards_the_strategy_layer(measured):
    _, m = measured(FLAGSHIP)
    rows = {name.split(".")[1] for name in m.metrics if name.startswith("strategies.")}
    assert rows == {"unhedged", "put_80k", "put_spread_80k_70k"}
    assert {"strategies.put_80k.es99", "strategies.put_80k.d_es99", "strategies.put_80k.effectiveness",
            "strategies.unhedged.p_liquidated"} <= set(m.metrics)
    assert "strategies.unhedged.d_es99" not in m.metrics  # the unhedged row minus itself
    assert 0.0 < m.metrics["strategies.unhedged.p_liquidated"].value < 1.0


# ----------------------------------------------------------------------------- sensitivity
@pytest.mark.slow
@pytest.mark.parametrize("factor", [1.05, 0.95])
def test_five_percent_more_or_less_liquidity_fails_the_flagship(measured, factor):
    """The market's order-book depth (``impact.depth_usd_per_pct``) scales its permanent impact,
    which carries most of the flagship's price moves (the calibrated square-root part is small)."""
    scenario, _ = measured(FLAGSHIP)
    depth = scenario.market.impact.depth_usd_per_pct
    override = f"market.impact.depth_usd_per_pct={depth * factor!r}"
    changed, m = measured(FLAGSHIP, [override])
    result = rg.compare(changed, m, _committed(scenario.name), overrides=[override])
    print(f"\n--set {override}\n{result.render()}")
    assert not result.passed
    drifted = {r.metric for r in result.failures}
    assert {r.status for r in result.failures} == {"DRIFT"}
    # deeper markets fall less: the price and the drawdowns move (the terminal price's median: its
    # mean carries the rare paths that run away, docs/model.md section 7, and its error with them)
    assert {"market.min_price.mean", "market.max_drawdown.mean", "market.terminal_price.p50"} <= drifted
    assert any(name.startswith("strategies.") for name in drifted)
    assert all(abs(r.z) > 4 for r in result.failures)
    assert any("--set changed it" in note for note in result.notes)


# ----------------------------------------------------------------------------- the knobs
@pytest.fixture(scope="module")
def shifted(measured):
    """The flagship's measurement against a baseline whose ``market.min_price.mean`` is 3 combined
    standard errors lower; returns ``(scenario, measurement, baseline, shift)``."""
    scenario, m = measured(FLAGSHIP)
    baseline = _baseline_of(scenario, m)
    row = next(r for r in baseline["metrics"] if r["metric"] == "market.min_price.mean")
    shift = 3.0 * math.hypot(row["se"], m.metrics["market.min_price.mean"].se)
    row["value"] -= shift
    return scenario, m, baseline, shift


def test_default_n_se_changes_the_verdict(shifted):
    scenario, m, baseline, _ = shifted
    assert _row(rg.compare(_with(scenario), m, baseline), "market.min_price.mean").status == "ok"  # 3 < 4 SEs
    tight = rg.compare(_with(scenario, default_n_se=2), m, baseline)
    assert _row(tight, "market.min_price.mean").status == "DRIFT"
    assert [r.metric for r in tight.failures] == ["market.min_price.mean"]  # the others did not move


def test_a_metric_n_se_changes_its_verdict_only(shifted):
    scenario, m, baseline, _ = shifted
    tight = _with(scenario, metrics={"market.min_price.mean": Tolerance(n_se=2)})
    result = rg.compare(tight, m, baseline)
    assert [r.metric for r in result.failures] == ["market.min_price.mean"]
    loose = _with(scenario, default_n_se=2, metrics={"market.min_price.mean": Tolerance(n_se=4)})
    assert _row(rg.compare(loose, m, baseline), "market.min_price.mean").status == "ok"


def test_abs_is_a_floor_under_the_standard_errors(shifted):
    scenario, m, baseline, shift = shifted
    tight = _with(scenario, metrics={"market.min_price.mean": Tolerance(n_se=1)})
    assert _row(rg.compare(tight, m, baseline), "market.min_price.mean").status == "DRIFT"
    floored = _with(scenario, metrics={"market.min_price.mean": Tolerance(n_se=1, abs=2 * shift)})
    row = _row(rg.compare(floored, m, baseline), "market.min_price.mean")
    assert row.status == "ok" and row.tolerance == pytest.approx(2 * shift, rel=1e-6)
    small = _with(scenario, metrics={"market.min_price.mean": Tolerance(abs=1.0)})  # below 4 SEs: no effect
    assert _row(rg.compare(small, m, baseline), "market.min_price.mean").tolerance == \
        _row(rg.compare(_with(scenario), m, baseline), "market.min_price.mean").tolerance


def test_rel_adds_a_share_of_the_baseline(shifted):
    scenario, m, baseline, _ = shifted
    base = next(r["value"] for r in baseline["metrics"] if r["metric"] == "market.min_price.mean")
    tight = _with(scenario, metrics={"market.min_price.mean": Tolerance(n_se=1)})
    widened = _with(scenario, metrics={"market.min_price.mean": Tolerance(n_se=1, rel=0.01)})
    a, b = _row(rg.compare(tight, m, baseline), "market.min_price.mean"), \
        _row(rg.compare(widened, m, baseline), "market.min_price.mean")
    assert (a.status, b.status) == ("DRIFT", "ok")
    assert b.tolerance - a.tolerance == pytest.approx((0.01 - rg.FLOAT_NOISE) * abs(base), rel=1e-9)


def test_the_knobs_are_recorded_in_the_baseline(measured):
    scenario, m = measured(FLAGSHIP)

    def tol(sc):
        rows = {r["metric"]: r for r in rg.baseline_record(sc, m)["metrics"]}
        return rows["market.min_price.mean"]["abs_tol"], rows["market.min_price.mean"]["rel_tol"]

    se = m.metrics["market.min_price.mean"].se
    assert tol(scenario) == (pytest.approx(4 * math.sqrt(2) * se, rel=1e-3), rg.FLOAT_NOISE)
    assert tol(_with(scenario, default_n_se=2))[0] == pytest.approx(2 * math.sqrt(2) * se, rel=1e-3)
    assert tol(_with(scenario, metrics={"market.min_price.mean": Tolerance(abs=1e6, rel=0.02)})) == (1e6, 0.02)


def test_an_unknown_metric_name_is_refused_with_a_suggestion(measured, write_yaml):
    scenario, m = measured(FLAGSHIP)
    with pytest.raises(ScenarioError, match=r"regression\.metrics\.market\.min_pric\.mean.*did you mean "
                                            r"'market\.min_price\.mean'"):
        rg.compare(_with(scenario, metrics={"market.min_pric.mean": Tolerance(n_se=2)}), m, _committed(scenario.name))


def test_tolerances_read_from_yaml(write_yaml, tmp_path):
    """Metric names with dots are plain YAML keys; rates take units."""
    from engine.scenario.loader import load_scenario

    path = _extending_calm(write_yaml, tmp_path, "mine.yaml", """
        name: mine
        regression:
          default_n_se: 5
          metrics:
            market.min_price.p50: {abs: 250}
            market.prob_touch_73600: {rel: 10%, n_se: 3}
        """)
    reg = load_scenario(path).regression
    assert reg.default_n_se == 5
    assert reg.metrics["market.min_price.p50"].abs == 250
    assert (reg.metrics["market.prob_touch_73600"].rel, reg.metrics["market.prob_touch_73600"].n_se) == (0.1, 3)


# ----------------------------------------------------------------------------- standard errors
def test_bootstrap_statistics_of_the_sample_are_the_engines_numbers():
    """The resampled statistics are the engine's (summary, probabilities, strategies table)."""
    import engine

    result = engine.run(FLAGSHIP, overrides=["n_paths=2000"], n_jobs=2)
    bs, specs = rg._register(result)
    draws = bs.run(identity=True)
    checked = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, value, pick, _ in specs:
            if math.isfinite(value):
                assert pick(draws)[0] == pytest.approx(value, rel=1e-9, abs=1e-9), name
                checked += 1
    assert checked == 97


def test_bootstrap_matches_explicit_resamples():
    from engine.results._bootstrap import Bootstrap

    rng = np.random.default_rng(3)
    n = 1001
    x = rng.standard_t(3, n)
    x[:150] = 0.0  # an atom
    bs = Bootstrap(n, 20, seed=11)
    handles = [bs.mean(x), bs.quantile(x, 5), bs.quantile(x, 50), bs.quantile(x, 100), bs.tail_mean(x, 1),
               bs.tail_mean(x, 20)]
    got = bs.run()
    draws = np.random.default_rng(11).integers(0, n, size=(20, n))  # the same resamples, materialised
    for b, d in enumerate(draws):
        s = x[d]
        expected = [s.mean(), np.percentile(s, 5), np.percentile(s, 50), s.max(),
                    s[s <= np.percentile(s, 1)].mean(), s[s <= np.percentile(s, 20)].mean()]
        assert [got[h][b] for h in handles] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_standard_error_floors(measured):
    _, m = measured(CI / "ci-calm.yaml")
    n = m.n_paths
    never = [v for k, v in m.metrics.items() if k.startswith("market.prob_") and v.value == 0.0]
    assert never, "the calm market should never touch some level"
    for metric in never:  # as if one path had touched it
        assert metric.se == pytest.approx(math.sqrt((1 / n) * (1 - 1 / n) / n), rel=1e-12)
    assert m.metrics["market.adl_usd.p05"].value == 0.0 and m.metrics["market.adl_usd.p05"].se == 0.0
    _, f = measured(FLAGSHIP)
    premium = f.metrics["strategies.put_80k.premium"]  # paid at the start: the same on every path
    assert premium.se < 1e-12 * premium.value
    # every mean and ES has a standard error, except those of what no path has (ADL, bad debt)
    assert all(v.se > 0 for k, v in f.metrics.items() if k.endswith((".mean", ".es99")) and v.value != 0.0)
    assert all(v.se == 0 for k, v in f.metrics.items() if k.endswith(".mean") and v.value == 0.0)


def test_a_value_with_zero_se_must_not_move(measured):
    scenario, m = measured(CI / "ci-calm.yaml")
    baseline = _baseline_of(scenario, m)
    row = next(r for r in baseline["metrics"] if r["metric"] == "market.adl_usd.p05")
    row["value"] = 1e-6
    result = rg.compare(scenario, m, baseline)
    assert [r.metric for r in result.failures] == ["market.adl_usd.p05"]


def test_metric_names_are_valid_and_row_labels_become_readable_slugs(measured):
    import re

    _, m = measured(FLAGSHIP)
    assert all(re.fullmatch(r"[a-z][a-z0-9_.]*", name) for name in m.metrics)
    assert rg.metric_slug("put[strike_usd=55000,hedge_ratio=0.5]") == "put__strike_usd_55000__hedge_ratio_0p5"
    assert rg.metric_slug("Delev-8pct[drawdown_trigger=-0.08]") == "delev_8pct__drawdown_trigger_m0p08"


def test_inline_strategy_sweeps_become_rows_of_their_own(write_yaml, tmp_path):
    path = _extending_calm(write_yaml, tmp_path, "swept.yaml", """
        name: swept
        n_paths: 500
        portfolio: {spot_btc: 1, cash_usd: 10k}
        strategies:
          - {rule: protective_put, name: put, strike_usd: {values: [80k, 85k]}, hedge_ratio: 100%, tenor: 30d}
        """)
    _, m = check_module.measure_file(path)
    rows = {name.split(".")[1] for name in m.metrics if name.startswith("strategies.")}
    assert rows == {"unhedged", "put__strike_usd_80000", "put__strike_usd_85000"}


def test_market_sweeps_are_refused(write_yaml, tmp_path):
    path = _extending_calm(write_yaml, tmp_path, "sweep.yaml", """
        name: sweep
        sweep: {parameters: {market.spot_usd: [80k, 90k]}}
        """)
    with pytest.raises(ScenarioError, match=r"sweep\.parameters.*not supported by cascade check"):
        check_module.measure_file(path)


# ----------------------------------------------------------------------------- baseline files
def test_baseline_file_is_deterministic_sorted_one_metric_per_line(measured, tmp_path):
    scenario, m = measured(CI / "ci-calm.yaml")
    record = rg.baseline_record(scenario, m)
    path = tmp_path / "b" / "ci-calm.json"
    rg.write_baseline(path, record)
    text = path.read_text()
    assert text == rg.dumps_baseline(json.loads(text))  # reads back to the same text
    lines = [line for line in text.splitlines() if line.startswith('    {"metric"')]
    names = [json.loads(line.rstrip(","))["metric"] for line in lines]
    assert names == sorted(m.metrics)
    data = rg.load_baseline(path)
    assert data["scenario_sha256"] == rg.scenario_sha256(scenario) and data["n_paths"] == m.n_paths
    assert {"scenario", "source", "seed", "n_steps", "engine_version", "created_utc", "bootstrap"} <= set(data)
    assert [p.name for p in path.parent.iterdir()] == ["ci-calm.json"]  # no temporary file left


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("metrics"), "metrics: missing; expected a list"),
    (lambda d: d.update(seed="7"), "seed: expected a whole number, found '7'"),
    (lambda d: d["metrics"][1].update(value="abc"), "metrics[1].value: expected a finite number, found 'abc'"),
    (lambda d: d["metrics"][0].update(se=-1.0), "metrics[0].se: expected a number >= 0, found -1.0"),
    (lambda d: d["metrics"][2].update(metric="Bad Name"), "metrics[2].metric: expected a new name"),
])
def test_bad_baseline_files_are_located(measured, tmp_path, edit, message):
    scenario, m = measured(CI / "ci-calm.yaml")
    data = _baseline_of(scenario, m)
    edit(data)
    path = tmp_path / "ci-calm.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as exc:
        rg.load_baseline(path)
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)


def test_a_truncated_baseline_names_file_and_line(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{\n  "scenario": "x",\n')
    with pytest.raises(BaselineError, match=rf"^{path}:3: not valid JSON"):
        rg.load_baseline(path)


def test_a_drifted_baseline_value_is_reported_in_the_table(measured, tmp_path):
    scenario, m = measured(FLAGSHIP)
    data = _committed(scenario.name)
    row = next(r for r in data["metrics"] if r["metric"] == "strategies.put_80k.es99")
    row["value"] *= 1.02
    extra = dict(row, metric="market.gone_metric.mean")
    data["metrics"].append(extra)  # in the baseline, not in the run
    data["metrics"] = [r for r in data["metrics"] if r["metric"] != "market.prob_adl"]  # in the run only
    result = rg.compare(scenario, m, data, baseline_path="copy.json")
    assert {(r.metric, r.status) for r in result.failures} == {
        ("strategies.put_80k.es99", "DRIFT"), ("market.gone_metric.mean", "missing"), ("market.prob_adl", "new")}
    text = result.render()
    assert text.splitlines()[0] == f"ci-feb-2026-small: DRIFT in 3 of {len(result.rows)} metrics " \
                                   f"({m.source} against copy.json)"
    line = next(line for line in text.splitlines() if "strategies.put_80k.es99" in line)
    assert line.split()[-1] == "DRIFT" and f"{len(result.rows) - 3} metrics within tolerance" in text
    assert "market.min_price.mean" not in text  # passing rows only with --verbose
    assert "market.min_price.mean" in result.render(verbose=True)


# ----------------------------------------------------------------------------- the command
@pytest.fixture
def mine(write_yaml, tmp_path):
    """A user's regression scenario: the calm market, small, under its own name."""
    return _extending_calm(write_yaml, tmp_path, "scenarios/ci/mine.yaml", "name: mine\nn_paths: 2000\n")


@pytest.mark.slow
def test_update_round_trip_and_exit_codes(mine, tmp_path, capsys):
    baselines = tmp_path / "baselines"
    args = ["--baselines", str(baselines)]
    # no baseline yet: exit 2, and the exact command that writes it
    assert main(["check", str(mine), *args]) == 2
    err = capsys.readouterr().err
    assert f"`cascade check --update {check_module._display(mine)} --baselines {baselines.as_posix()}`" in err
    assert "Traceback" not in err
    # --update writes it; check passes (0); a second --update keeps the file
    assert main(["check", "--update", str(mine), *args]) == 0
    assert f"mine: wrote {baselines.as_posix()}/mine.json (56 metrics)" in capsys.readouterr().out
    assert main(["check", str(mine), *args]) == 0
    assert capsys.readouterr().out.startswith("mine: ok")
    before = (baselines / "mine.json").read_text()
    assert main(["check", "--update", str(mine), *args]) == 0
    assert "unchanged" in capsys.readouterr().out and (baselines / "mine.json").read_text() == before
    # a drifted value: exit 1, the table names it, --json says so
    data = json.loads(before)
    row = next(r for r in data["metrics"] if r["metric"] == "market.terminal_price.p50")
    row["value"] += 50 * row["abs_tol"]
    (baselines / "mine.json").write_text(json.dumps(data))
    assert main(["check", str(mine), *args]) == 1
    out = capsys.readouterr().out
    assert "DRIFT in 1 of 56 metrics" in out and "market.terminal_price.p50" in out
    assert main(["check", str(mine), "--json", *args]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert [r["metric"] for r in report["scenarios"][0]["rows"] if r["status"] != "ok"] == ["market.terminal_price.p50"]
    # --update on purpose: says what moved, and the check passes again
    assert main(["check", "--update", str(mine), *args]) == 0
    assert "1 metrics moved beyond tolerance" in capsys.readouterr().out
    assert main(["check", str(mine), *args]) == 0


def test_the_scenario_changed_since_its_baseline_is_said(mine, tmp_path, capsys, write_yaml):
    baselines = tmp_path / "baselines"
    assert main(["check", "--update", str(mine), "--baselines", str(baselines)]) == 0
    _extending_calm(write_yaml, tmp_path, "scenarios/ci/mine.yaml", "name: mine\nn_paths: 2500\n")
    code = main(["check", str(mine), "--baselines", str(baselines)])
    out = capsys.readouterr().out
    assert "the scenario is not the one the baseline was made from" in out and "n_paths 2000 -> 2500" in out
    assert f"cascade check --update {check_module._display(mine)}" in out
    assert code in (0, 1)  # the verdict is the metrics'


def test_user_errors_exit_2(tmp_path, capsys, monkeypatch, write_yaml):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "no such scenario file" in capsys.readouterr().err
    bad = _extending_calm(write_yaml, tmp_path, "bad.yaml", "n_pathz: 10\n")
    assert main(["check", str(bad), "--baselines", str(tmp_path)]) == 2
    assert f"{bad}:2" in capsys.readouterr().err
    assert main(["check", "--update", str(bad), "--set", "n_paths=10"]) == 2
    assert "drop --set" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CASCADE_SCENARIOS", str(tmp_path / "no-library"))  # else the shipped ones are checked
    assert main(["check"]) == 2
    assert "no scenarios given and none in scenarios/ci/" in capsys.readouterr().err


def test_no_arguments_checks_every_scenario_in_scenarios_ci(mine, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(mine.parents[2])  # the folder holding scenarios/ci/mine.yaml
    assert main(["check", "--update"]) == 0
    assert (mine.parents[2] / "results" / "baselines" / "mine.json").is_file()
    capsys.readouterr()
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("mine: ok (scenarios/ci/mine.yaml against results/baselines/mine.json)")
