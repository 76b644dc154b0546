"""The shipped scenario library (``scenarios/``, ``scenarios/history/`` and ``scenarios/ci/``): every
file loads, says what it is, names its facts, and together the files exercise every shock type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.scenario.shocks import SHOCK_TYPES

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
HISTORY = sorted((SCENARIOS / "history").glob("*.yaml"))
LIBRARY = sorted(SCENARIOS.glob("*.yaml")) + HISTORY
CI = sorted((SCENARIOS / "ci").glob("*.yaml"))
ALL = LIBRARY + CI

REQUIRED = {
    "feb-2026-deleveraging",
    "etf-outflow-run",
    "cme-margin-hike",
    "warsh-tightening",
    "oct-2025-exchange-failure",
    "black-thursday-2020",
    "miner-capitulation",
    "calm-baseline",
    "perfect-storm",
}

# The single-shock scenarios must contain the shock they are named after.
THEME = {
    "etf-outflow-run": "etf_flows",
    "cme-margin-hike": "margin_hike",
    "warsh-tightening": "balance_sheet_tightening",
    "oct-2025-exchange-failure": "exchange_failure",
    "miner-capitulation": "miner_capitulation",
}


def _rel(path: Path) -> str:
    return str(path.relative_to(SCENARIOS))


def _load(stem: str):
    path = SCENARIOS / f"{stem}.yaml"
    return engine.load_scenario(path if path.is_file() else SCENARIOS / "history" / f"{stem}.yaml")


def _types(scenario) -> set[str]:
    return {shock.type for shock in scenario.shocks}


def _header(path: Path) -> list[str]:
    """The leading block of comment lines."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def test_library_is_not_empty():
    assert LIBRARY, f"no scenarios in {SCENARIOS}"
    assert HISTORY, f"no historical episodes in {SCENARIOS / 'history'}"
    assert CI, f"no CI scenarios in {SCENARIOS / 'ci'}"


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_scenario_loads_and_describes_itself(path):
    scenario = engine.load_scenario(path)
    assert scenario.description.strip(), f"{_rel(path)} has no description"
    assert scenario.summary_line.strip(), f"{_rel(path)} has no one-line summary for `cascade list`"
    header = _header(path)
    assert header, f"{_rel(path)} does not start with a header comment"
    assert any("fact" in line.lower() for line in header), (
        f"{_rel(path)}: the header comment should name the facts the scenario uses"
    )


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_every_shock_has_an_id(path):
    scenario = engine.load_scenario(path)
    missing = [f"shocks[{i}] ({s.type})" for i, s in enumerate(scenario.shocks) if s.id is None]
    assert not missing, f"{_rel(path)}: give these shocks an id: {', '.join(missing)}"


def test_library_has_the_required_scenarios():
    names = {engine.load_scenario(p).name for p in LIBRARY}
    assert REQUIRED <= names, f"missing: {sorted(REQUIRED - names)}"
    stems = {p.stem for p in LIBRARY}
    assert REQUIRED <= stems, f"file names should match scenario names; missing files {sorted(REQUIRED - stems)}"


def test_names_are_unique():
    names = [engine.load_scenario(p).name for p in ALL]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_shock_type_is_shipped():
    used: set[str] = set()
    for path in LIBRARY:
        used |= _types(engine.load_scenario(path))
    assert set(SHOCK_TYPES) <= used, f"no shipped scenario uses {sorted(set(SHOCK_TYPES) - used)}"


def test_perfect_storm_has_every_shock_type():
    types = _types(_load("perfect-storm"))
    assert set(SHOCK_TYPES) <= types, f"perfect-storm lacks {sorted(set(SHOCK_TYPES) - types)}"


def test_calm_baseline_has_no_shocks_and_the_flagship_market():
    calm, flagship = _load("calm-baseline"), _load("feb-2026-deleveraging")
    assert calm.shocks == []
    assert calm.market == flagship.market
    assert calm.horizon == flagship.horizon
    assert calm.seed == flagship.seed


@pytest.mark.parametrize("stem,shock_type", sorted(THEME.items()))
def test_single_shock_scenarios_exercise_their_shock(stem, shock_type):
    assert shock_type in _types(_load(stem))


@pytest.mark.parametrize("path", CI, ids=_rel)
def test_ci_scenarios_are_small(path):
    # The budget is `cascade check` <= 10 s per scenario on 2 cores (simulation, hedges, bootstrap;
    # 100,000 x 96 path-steps took about 4 s warm). Paths buy sensitivity: the flagship needs 100,000
    # for a 5% liquidity change to exceed 4 standard errors (tests/test_regression.py).
    scenario = engine.load_scenario(path)
    assert scenario.n_paths <= 100_000, f"{_rel(path)}: {scenario.n_paths} paths is too many for CI"
    horizon_days = scenario.horizon.n_steps * scenario.horizon.step.total_seconds() / 86400
    assert horizon_days <= 4, f"{_rel(path)}: horizon over 4 days"
    assert scenario.horizon.n_steps * scenario.n_paths <= 10_000_000, f"{_rel(path)}: too many path-steps"


@pytest.mark.slow
def test_cascade_validate_accepts_the_whole_library():
    files = [str(p.relative_to(ROOT)) for p in ALL]
    result = subprocess.run(
        [sys.executable, "-m", "engine", "validate", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == len(files), result.stdout
