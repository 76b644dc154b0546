"""Hostile sizes and numbers: simulations too large for memory are refused before any work (exit
2, the knob and the estimate named, nothing written); amounts that overflow the model are refused
by ``validate`` at their key; a simulation that overflows anyway is an error naming the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import resources
from engine.errors import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
FEB = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
TIMEOUT = 20


def _cascade(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)


def _refused(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("no_save", [False, True])
def test_run_with_a_billion_paths_is_refused_before_any_work(tmp_path, no_save):
    out = tmp_path / "run"
    extra = ["--no-save"] if no_save else ["--out", out]
    proc = _cascade("run", FEB, "--paths", "1e9", "--no-progress", *extra)
    _refused(proc, str(FEB), "--paths 1,000,000,000", "GB of memory", "is available", "horizon.step")
    assert ("--no-save" in proc.stderr) != no_save  # offered only when the fans are kept for the folder
    assert not out.exists()


@pytest.mark.parametrize("command", ["attribute", "breakpoint", "calibrate"])
def test_other_simulating_commands_check_first(command):
    args = ["--shock", "warsh", "--metric", "market.min_price.p50", "--threshold", "50k"] if command == "breakpoint" else []
    proc = _cascade(command, FEB, "--paths", "1e9", *args)
    _refused(proc, "--paths 1,000,000,000", "GB of memory")


@pytest.mark.slow
def test_validate_refuses_the_largest_scenario_the_schema_accepts(tmp_path):
    proc = _cascade("validate", FEB, "--set", "n_paths=1000000", "--set", "horizon.step=1m")
    _refused(proc, "n_paths", "1,000,000 paths x 20,160 steps", "total memory")
    proc = _cascade("validate", "--json", FEB, "--set", "n_paths=1000000", "--set", "horizon.step=1m")
    assert proc.returncode == 2 and '"key": "n_paths"' in proc.stdout


def test_the_estimate_grows_with_paths_steps_and_fans():
    small = resources.simulation_bytes(1000, 100, keep_steps=False)
    assert resources.simulation_bytes(100_000, 100, keep_steps=False) > small
    assert resources.simulation_bytes(1000, 10_000, keep_steps=False) > small
    lean, full = (resources.simulation_bytes(10**6, 1000, keep_steps=k) for k in (False, True))
    assert full - lean >= 10**6 * 1000 * (resources.STEP_FANS * 4)  # the float32 fans at least
    available, total = resources.memory_bytes()
    assert available is None or 0 < available <= total


def test_a_memory_limit_from_the_environment_is_honoured(tmp_path):
    import os

    env = dict(os.environ, CASCADE_MEMORY_LIMIT="1e8")  # 100 MB: the interpreter alone is more
    proc = subprocess.run([sys.executable, "-m", "engine", "run", str(FEB), "--paths", "1000", "--no-save"],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)
    _refused(proc, "0.1 GB is available")


@pytest.mark.parametrize("key, value, message", [
    ("market.spot_usd", "1e308", "at most 1e+18"),
    ("market.spot_usd", "2e9", "less than or equal to 1000000000"),
    ("market.perpetuals.long.notional_usd", "1e308", "at most 1e+18"),
    ("market.impact.depth_usd_per_pct", "1e300", "at most 1e+18"),
    ("market.options.open_interest", "[{kind: put, strike_usd: 1e12, expiry: 2026-02-27, size_btc: 1}]",
     "less than or equal to 1000000000"),
])
def test_amounts_that_overflow_the_model_are_refused_at_their_key(key, value, message):
    proc = _cascade("validate", FEB, "--set", f"{key}={value}")
    _refused(proc, key, message)


def test_a_simulation_that_overflows_names_the_file(tmp_path):
    from engine.simulate import _check_finite
    from engine.scenario.loader import load_scenario

    scenario = load_scenario(FEB)
    out = {name: np.ones((4, 3), dtype=np.float32) for name in
           ("summary", "price", "open_interest", "liq_long", "liq_short", "funding", "atm_iv")}
    flows = np.ones((3, 2))
    _check_finite(out, flows, scenario, None)  # finite: nothing to say
    out["liq_long"][2, 1] = np.inf
    flows[0, 0] = np.nan
    with pytest.raises(ScenarioError) as exc:
        _check_finite(out, flows, scenario, None)
    assert str(FEB) in str(exc.value) and "liq_long, flows" in str(exc.value) and "overflowed" in str(exc.value)
