"""Price impact (docs/model.md, section 2): every key acts, no round trip earns money, the
permanent part is linear in the net flow, and the square-root law holds for a fast metaorder.

The round trips run the kernel on a still market (no volatility, no book, no behavioural flows)
whose only flow is a schedule written into ``Step.FORCED_FLOW_USD``: whatever moves the price is
the impact of that schedule.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.compile.layout import Step
from engine.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"
START = "2026-01-29T00:00:00Z"
SPOT = 90_000.0

QUIET = {
    "name": "quiet-impact", "seed": 1, "n_paths": 4,
    "horizon": {"start": START, "duration": "4d", "step": "15m"},
    "market": {
        "spot_usd": SPOT,
        # 50% sets the square-root law's sigma_day; the diffusion itself is switched off below
        "volatility": {"annual": "50%", "tail_dof": None, "jumps": {"intensity_per_day": 0}},
        "macro": {"annual_vol": 0, "btc_beta": 0},
        "impact": {"model": "sqrt", "sqrt_coefficient": 0.7, "daily_volume_usd": "20B", "depth_usd_per_pct": "14M",
                   "resilience_half_life": "30m", "permanent_fraction": "0.5%"},
        "perpetuals": {"long": {"notional_usd": 0}, "short": {"notional_usd": 0}},
        "etf": {"holdings_btc": 0},
        "miners": {"reserves_btc": 0},
    },
}


def _with_flows(data: dict, flows: np.ndarray, **impact) -> engine.SimulationResult:
    """The still market with ``flows`` (USD per step, buy > 0) as its only flow, and no diffusion."""
    data = {**data, "market": {**data["market"], "impact": {**data["market"]["impact"], **impact}}}
    compiled = engine.compile_scenario(engine.load_scenario(data))
    steps = compiled.steps.copy()
    steps[Step.VOL] = 0.0
    steps[Step.FORCED_FLOW_USD] = 0.0
    steps[Step.FORCED_FLOW_USD, :flows.size] = flows
    return engine.run(dataclasses.replace(compiled, steps=steps), keep_steps=True)


def _round_trip(buy_steps: int, sell_steps: int, size: float = 1e9, gap: int = 0, n_steps: int = 384):
    flows = np.zeros(n_steps)
    flows[:buy_steps] = size / buy_steps
    flows[buy_steps + gap:buy_steps + gap + sell_steps] = -size / sell_steps
    return flows


def _cash(result, flows) -> float:
    """What the round trip earned: each step's flow trades at the average of the step's open and
    close (exact to second order in the step's move: the schedules below trade at most 1% of
    the day's volume per minute); buying costs, selling pays."""
    close = result._raw["price"][0].astype(np.float64)
    open_ = np.concatenate([[SPOT], close[:-1]])
    return float(-(flows * (open_ + close[:flows.size]) / 2.0).sum())


# one-minute steps: 10 minutes is a fast metaorder (the half-life is 30 minutes), 4 hours a slow one
MINUTES = {**QUIET, "horizon": {"start": START, "duration": "1d", "step": "1m"}}


@pytest.mark.parametrize(("buy_minutes", "sell_minutes", "gap"), [
    (10, 10, 0), (10, 240, 0), (240, 10, 0), (30, 30, 60), (10, 60, 20), (60, 10, 0), (20, 20, 480),
])
@pytest.mark.parametrize("model", ["sqrt", "linear", "both"])
def test_no_round_trip_earns_money(buy_minutes, sell_minutes, gap, model):
    """Huberman-Stanzl: buying 200M and selling it again, fast or slow, in either order of speed,
    loses money under every transient law (a resilient concave book with linear permanent impact:
    Alfonsi, Fruth and Schied's volume-impact reversion, which admits no price manipulation)."""
    flows = _round_trip(buy_minutes, sell_minutes, size=2e8, gap=gap, n_steps=1440)
    for sign in (1.0, -1.0):  # and the mirror: sell first, buy back
        result = _with_flows(MINUTES, sign * flows, model=model)
        assert _cash(result, sign * flows) < 0.0


def test_a_round_trip_leaves_no_permanent_trace():
    """Linear permanent impact: once the transient part has healed, the price is back at spot."""
    flows = _round_trip(8, 24)
    result = _with_flows(QUIET, flows)
    close = result._raw["price"][0]
    assert close[7] > SPOT * 1.001  # it moved while the trip ran
    assert result.per_path["terminal_price"].iloc[0] == pytest.approx(SPOT, rel=1e-9)  # 88 hours later: healed


def test_the_permanent_part_is_linear_in_net_flow():
    """A one-way flow leaves ``permanent_fraction * q / (100 * depth)`` in log price, whatever its
    schedule; twice the flow, twice the move."""
    moves = []
    for size, steps in ((1e9, 1), (1e9, 40), (2e9, 10)):
        flows = np.zeros(384)
        flows[:steps] = size / steps
        terminal = _with_flows(QUIET, flows).per_path["terminal_price"].iloc[0]
        moves.append(math.log(terminal / SPOT))
    lam = 0.005 / (14e6 * 100)
    np.testing.assert_allclose(moves, [lam * 1e9, lam * 1e9, lam * 2e9], rtol=1e-7)


def test_a_fast_metaorder_follows_the_square_root_law():
    """Executed in one 15-minute step (a half-life is 30 minutes), ``Q`` moves the price by
    ``Y * sigma_day * sqrt(Q / V_day)`` (less the little that heals within the step) plus the
    permanent part; four times ``Q``, about twice the move."""
    sigma_day = 0.5 / math.sqrt(365.25)
    decay = math.exp(-math.log(2) * 0.5)  # the share of J kept over a 15-minute step
    gain = (1 - decay) / -math.log(decay)  # of a flow spread over the step, the share unhealed at its end
    peaks = []
    for q in (2.5e8, 1e9):
        flows = np.zeros(8)
        flows[0] = q
        peak = math.log(_with_flows(QUIET, flows)._raw["price"][0][0] / SPOT)
        law = 0.7 * sigma_day * math.sqrt(gain * q / 20e9) + 0.005 * q / 1.4e9
        assert peak == pytest.approx(law, rel=1e-4)  # the per-step price is kept as float32
        peaks.append(peak - 0.005 * q / 1.4e9)  # the transient part
    assert peaks[1] / peaks[0] == pytest.approx(2.0, rel=1e-3)


# ----------------------------------------------------------------------------- every key acts
# each changed within its range
KEYS = {
    "market.impact.model": "both",
    "market.impact.sqrt_coefficient": 1.5,
    "market.impact.daily_volume_usd": 1e9,
    "market.impact.depth_usd_per_pct": 7e6,
    "market.impact.resilience_half_life": "1m",
    "market.impact.permanent_fraction": 0.02,
    # the flagship's tightening thins the book for days: with no memory the permanent part
    # follows it at once
    "market.impact.depth_memory": "0s",
}


@pytest.fixture(scope="module")
def flagship_base():
    return engine.run(load_scenario(FLAGSHIP), n_paths=500, seed=3, keep_steps=False)


@pytest.mark.slow
@pytest.mark.parametrize("key", list(KEYS))
def test_every_impact_key_changes_the_flagship(flagship_base, key):
    """On the same random numbers, each key moves the paths' lowest prices one way: a sign test
    on the paired differences, the paths moved the median's way more than three standard
    deviations above half (the transient keys act a little: the calibrated square-root
    coefficient is small). Not the mean: a key that lets a few paths cascade to the price floor
    moves the mean by hundreds of percent on those paths, and a handful decides it."""
    changed = engine.run(load_scenario(FLAGSHIP, [f"{key}={KEYS[key]}"]), n_paths=500, seed=3, keep_steps=False)
    d = np.log(changed.per_path["min_price"].to_numpy() / flagship_base.per_path["min_price"].to_numpy())
    median = float(np.median(d))
    with_it = int((np.sign(d) == np.sign(median)).sum())
    assert abs(median) > 1e-5, key
    assert with_it - d.size / 2 > 3.0 * math.sqrt(d.size / 4), (key, with_it, d.size)


def test_halving_depth_moves_the_flagship_trough():
    """The flagship at half its order-book depth: the median lowest price moves by at least 0.5%."""
    base = engine.run(load_scenario(FLAGSHIP), n_paths=2000, seed=3, keep_steps=False)
    depth = load_scenario(FLAGSHIP).market.impact.depth_usd_per_pct
    thin = engine.run(load_scenario(FLAGSHIP, [f"market.impact.depth_usd_per_pct={depth / 2}"]),
                      n_paths=2000, seed=3, keep_steps=False)
    move = thin.per_path["min_price"].median() / base.per_path["min_price"].median() - 1.0
    assert move < -0.005


# ----------------------------------------------------------------------------- the slow depth
def _depth_run(step: str, shock: dict, memory="1d") -> engine.CompiledScenario:
    data = {**QUIET, "horizon": {"start": START, "duration": "4d", "step": step},
            "market": {**QUIET["market"], "impact": {**QUIET["market"]["impact"], "depth_memory": memory}},
            "shocks": [shock]}
    return engine.compile_scenario(engine.load_scenario(data))


def _permanent(compiled) -> np.ndarray:
    from engine.simulate import impact_drivers

    return impact_drivers(compiled)["PERMANENT_COEF"]


VACUUM = {"type": "exchange_failure", "start": "+6h", "duration": "40m", "depth_fraction": "2%"}
REGIME = {"type": "balance_sheet_tightening", "start": "+6h", "ramp": "1d", "depth_multiplier": 0.5}
NORMAL = 0.005 / (14e6 * 100)  # the permanent coefficient at the normal depth


def test_the_slow_depth_at_its_limits():
    from engine.simulate import slow_depth

    d = np.array([1.0, 0.5, 0.02, 0.02, 1.0, 0.7])
    np.testing.assert_array_equal(slow_depth(d, 0.0), d)  # no memory: the momentary depth
    np.testing.assert_array_equal(slow_depth(d, 1.0), np.ones(6))  # infinite memory: never reads it
    s = slow_depth(d, 0.5)
    assert (s > d.min()).all() and (s <= 1.0).all() and s[1] > 0.5 and s[4] < 1.0


def test_a_vacuum_makes_a_wick_and_a_regime_moves_the_permanent_impact():
    """A 40-minute vacuum of quotes (2% of the depth) hardly reaches a one-day memory: the
    permanent coefficient rises by under 3%; books halved for days double it. With no memory
    the vacuum multiplies it by 50, as the transient part does."""
    vacuum = _permanent(_depth_run("5m", VACUUM)) / NORMAL
    assert 1.0 <= vacuum.max() < 1.03  # 0.98 x 40 minutes of a 1,440-minute memory
    assert _permanent(_depth_run("5m", VACUUM, memory="0s")).max() / NORMAL == pytest.approx(50.0, rel=1e-6)
    regime = _permanent(_depth_run("1h", REGIME)) / NORMAL
    # the depth is halved from 30h (a one-day ramp from 6h); by 96h the memory has closed most of the gap
    assert 1.85 < regime[-1] < 2.0 and regime[5] == 1.0
    assert (np.diff(regime) >= -1e-12).all()  # it rises as the book thins, never ahead of it
    assert (_permanent(_depth_run("1h", REGIME, memory=None)) == NORMAL).all()


@pytest.mark.parametrize("shock", [VACUUM, REGIME], ids=["vacuum", "regime"])
def test_the_slow_depth_does_not_depend_on_the_step(shock):
    """The memory is per unit of time: each hour's mean permanent coefficient is the same at 1h,
    15m and 5m steps (the slow depth is exact within a step; 1/s averaged over an hour differs
    from 1/(the hour's mean s) by second order only)."""
    hourly = {}
    for step, per_hour in (("1h", 1), ("15m", 4), ("5m", 12)):
        lam = _permanent(_depth_run(step, shock))
        hourly[step] = lam.reshape(-1, per_hour).mean(axis=1)
    np.testing.assert_allclose(hourly["15m"], hourly["5m"], rtol=2e-3)
    np.testing.assert_allclose(hourly["1h"], hourly["5m"], rtol=1e-2)


def test_the_calm_baseline_has_almost_no_bad_debt():
    """Liquidations fill at their trigger: with no shock, bad debt is rare (5% of paths at most)."""
    calm = engine.run(load_scenario(ROOT / "scenarios" / "calm-baseline.yaml"), n_paths=2000, seed=3,
                      keep_steps=False)
    assert (calm.per_path["bad_debt_usd"] > 0).mean() <= 0.05


@pytest.mark.slow
def test_square_root_keys_under_the_linear_law_are_reported_unused(tmp_path):
    """A key that cannot act says so: under the linear transient law the square-root law's keys are
    unused, and ``cascade run`` prints the compiler's note."""
    import subprocess
    import sys

    import yaml

    data = {**QUIET, "market": {**QUIET["market"], "impact": {"model": "linear", "daily_volume_usd": "5B"}}}
    compiled = engine.compile_scenario(engine.load_scenario(data))
    assert any("daily_volume_usd" in note and "unused" in note for note in compiled.notes)
    quiet = engine.compile_scenario(engine.load_scenario({**QUIET, "market": {**QUIET["market"],
                                                                              "impact": {"model": "linear"}}}))
    assert not quiet.notes  # nothing set, nothing to say
    path = tmp_path / "linear.yaml"
    path.write_text(yaml.safe_dump(data))
    out = subprocess.run([sys.executable, "-m", "engine", "run", str(path), "--no-save", "--paths", "4"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "note: market.impact.daily_volume_usd set but unused" in out.stderr


@pytest.mark.slow
def test_paths_at_the_price_bound_are_counted_and_reported(tmp_path):
    """The only clamp left is a price level (spot * e^-20): a run whose impact runs away to it is
    counted (``bounded_paths``) and ``cascade run`` says so; a sane run reports nothing."""
    import subprocess
    import sys

    import yaml

    runaway = {**QUIET, "n_paths": 8, "market": {**QUIET["market"], "impact": {"permanent_fraction": 1.0},
                                                 "perpetuals": {"long": {"notional_usd": "40B"},
                                                                "short": {"notional_usd": 0}}},
               "shocks": [{"type": "price_jump", "start": "+1h", "size": "-5%"}]}
    result = engine.run(engine.load_scenario(runaway))
    assert result.bounded_paths() == 8
    assert _with_flows(QUIET, np.zeros(4)).bounded_paths() == 0
    path = tmp_path / "runaway.yaml"
    path.write_text(yaml.safe_dump(runaway))
    out = subprocess.run([sys.executable, "-m", "engine", "run", str(path), "--no-save"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "note: 8 of 8 paths reached the price bound" in out.stderr
