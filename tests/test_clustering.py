"""Conditional volatility (``market.volatility.clustering``): a log-variance Ornstein-Uhlenbeck
process scaling the diffusion (docs/model.md, section 2).

The properties a risk manager would check first: every key moves the output; off, nothing
changes; on, the long-run variance is the scenario's ``annual`` vol, absolute returns cluster,
falls raise the vol when ``leverage`` is negative, and the process is the same at every
``horizon.step``. The runs use a market whose only move is the exogenous diffusion (a tiny
book, no flows, no jumps), so the statistics read the volatility process alone.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine

from sim_fixtures import patched, quiet

PURE = quiet({
    "market.perpetuals.long.notional_usd": "1M",
    "market.perpetuals.short.notional_usd": "1M",
    "market.volatility.jumps.intensity_per_day": 0,
    "market.volatility.tail_dof": "gaussian",
    "market.macro.annual_vol": 0,
    "horizon.duration": "20d",
})
ON = {"market.volatility.clustering.vol_of_vol": 1.0, "market.volatility.clustering.half_life": "2d",
      "market.volatility.clustering.leverage": -0.5}


def _scenario(changes: dict | None = None, base: dict = PURE):
    return engine.load_scenario(patched(base, changes))


def _returns(changes: dict | None = None, n_paths: int = 1000, seed: int = 7, base: dict = PURE) -> np.ndarray:
    """Per-path log returns of every step (paths x steps), from the start price."""
    scenario = _scenario(changes, base)
    result = engine.run(scenario, n_paths=n_paths, seed=seed, keep_steps=True)
    price = result._raw["price"].astype(np.float64)
    start = np.full((price.shape[0], 1), scenario.market.spot_usd)
    return np.diff(np.log(np.concatenate([start, price], axis=1)), axis=1)


def _acf_abs(r: np.ndarray, lag: int) -> float:
    """Lag-``lag`` autocorrelation of |r|, pooled over paths (each path demeaned on the pool's mean)."""
    a = np.abs(r)
    a = a - a.mean()
    return float((a[:, :-lag] * a[:, lag:]).mean() / (a * a).mean())


def test_off_by_default_and_zero_vol_of_vol_changes_nothing():
    base = engine.run(_scenario(), n_paths=64, seed=3).per_path
    zero = engine.run(_scenario({"market.volatility.clustering.vol_of_vol": 0.0,
                                 "market.volatility.clustering.half_life": "6h",
                                 "market.volatility.clustering.leverage": -0.9}), n_paths=64, seed=3).per_path
    assert _scenario().market.volatility.clustering.vol_of_vol == 0.0
    assert base.equals(zero)


@pytest.mark.parametrize(("key", "value"), [
    ("market.volatility.clustering.vol_of_vol", 1.5),
    ("market.volatility.clustering.half_life", "6h"),
    ("market.volatility.clustering.leverage", 0.5),
    ("market.volatility.clustering.liquidation_feedback", 40),
])
def test_every_key_moves_the_output(key, value):
    on = engine.run(_scenario(ON), n_paths=64, seed=3).per_path["min_price"].to_numpy()
    moved = engine.run(_scenario({**ON, key: value}), n_paths=64, seed=3).per_path["min_price"].to_numpy()
    assert not np.allclose(on, moved, rtol=1e-6), f"{key} changed nothing"


def test_long_run_variance_is_the_scenarios_and_absolute_returns_cluster():
    off = _returns()
    on = _returns(ON)
    # E[m^2] = 1 under the stationary law each path starts from: the same mean variance (the
    # per-path variance is dispersed, so the Monte Carlo error of the ratio is a few percent)
    ratio = (on ** 2).mean() / (off ** 2).mean()
    assert ratio == pytest.approx(1.0, abs=0.06)
    assert abs(_acf_abs(off, 1)) < 0.02  # i.i.d. without clustering
    assert _acf_abs(on, 1) > 0.10
    assert _acf_abs(on, 24) > 0.05  # still there a day later (half-life 2 days)
    # fat tails from the mixture, though the innovations are Gaussian
    kurtosis = ((on - on.mean()) ** 4).mean() / on.var() ** 2
    assert kurtosis > 3.5


@pytest.mark.parametrize("leverage", [-0.8, 0.8])
def test_leverage_sets_the_sign_of_returns_on_later_vol(leverage):
    r = _returns({**ON, "market.volatility.clustering.leverage": leverage})
    a = np.abs(r[:, 1:]) - np.abs(r[:, 1:]).mean()
    corr = float((r[:, :-1] * a).mean() / (r[:, :-1].std() * a.std()))
    assert np.sign(corr) == np.sign(leverage) and abs(corr) > 0.02


def test_the_process_does_not_depend_on_the_step():
    """Daily returns aggregated from 1h and 15m steps: same volatility, same clustering of their
    absolute values, same tails (within Monte Carlo error of 2,000 paths x 20 days)."""
    stats = {}
    for step, per_day in (("1h", 24), ("15m", 96)):
        r = _returns({**ON, "horizon.step": step}, n_paths=2000)
        daily = r.reshape(r.shape[0], -1, per_day).sum(axis=2)
        stats[step] = (daily.std(), _acf_abs(daily, 1), ((daily - daily.mean()) ** 4).mean() / daily.var() ** 2)
    (vol_h, acf_h, kurt_h), (vol_q, acf_q, kurt_q) = stats["1h"], stats["15m"]
    assert vol_q == pytest.approx(vol_h, rel=0.03)
    assert acf_q == pytest.approx(acf_h, abs=0.03)
    assert kurt_q == pytest.approx(kurt_h, rel=0.10)


def test_half_life_and_leverage_without_vol_of_vol_get_a_note():
    compiled = engine.compile_scenario(_scenario({"market.volatility.clustering.half_life": "6h",
                                                  "market.volatility.clustering.leverage": -0.5}))
    assert any("clustering.half_life and leverage set but unused: vol_of_vol is 0" in n for n in compiled.notes), \
        compiled.notes
    assert not any("clustering" in n for n in engine.compile_scenario(_scenario(ON)).notes)


# ----------------------------------------------------------------------------- self-excitation
# a levered book and a jump that liquidates part of it: what the feedback reads
FRAGILE = quiet({
    "market.perpetuals.long.notional_usd": "30B",
    "market.perpetuals.long.leverage": {"distribution": "lognormal", "median": 10, "dispersion": 0.6,
                                        "min": 2, "max": 60},
    "market.volatility.jumps.intensity_per_day": 0,
    "market.volatility.tail_dof": "gaussian",
    "market.macro.annual_vol": 0,
    "horizon.duration": "3d",
    "shocks": [{"type": "price_jump", "start": "+6h", "size": "-8%"}],
})
FEEDBACK = {"market.volatility.clustering.liquidation_feedback": 30}


def _after_jump_vol(changes: dict, step: str = "1h", n_paths: int = 2000) -> float:
    """The median path's realised vol of hourly returns over the 24 hours after the jump."""
    per_hour = {"1h": 1, "15m": 4}[step]
    r = _returns({**changes, "horizon.step": step}, n_paths=n_paths, base=FRAGILE)
    hourly = r.reshape(r.shape[0], -1, per_hour).sum(axis=2)[:, 7:31]
    return float(np.median(hourly.std(axis=1)))


def test_liquidations_raise_the_vol_after_them_and_nothing_without_them():
    """With the feedback, the day after a jump that liquidates is more volatile; a market that
    liquidates nothing is not changed at all (the same paths, bit for bit)."""
    assert _after_jump_vol(FEEDBACK) > 1.3 * _after_jump_vol({})
    empty = patched(PURE, {"market.perpetuals.long.notional_usd": 0, "market.perpetuals.short.notional_usd": 0})
    fed_on = engine.run(_scenario({**ON, **FEEDBACK}, base=empty), n_paths=64, seed=3).per_path
    assert (fed_on["long_liquidations_usd"] + fed_on["short_liquidations_usd"] == 0).all()
    assert fed_on.equals(engine.run(_scenario(ON, base=empty), n_paths=64, seed=3).per_path)


def test_the_feedback_does_not_depend_on_the_step():
    """Per unit of flow: the same liquidations raise the log variance by the same amount whether
    they come in one hourly step or four 15-minute ones (median vol the day after, within 5%)."""
    assert _after_jump_vol(FEEDBACK, "15m") == pytest.approx(_after_jump_vol(FEEDBACK, "1h"), rel=0.05)


def test_the_feedback_cannot_run_away():
    """A cascade that raises the vol that liquidates more is capped at a tenfold vol: at the key's
    largest value no price is lost to infinity."""
    r = engine.run(engine.load_scenario(patched(FRAGILE, {"market.volatility.clustering.liquidation_feedback": 100})),
                   n_paths=500, seed=5, keep_steps=True)
    assert np.isfinite(r._raw["price"]).all()


def test_the_feedback_without_vol_of_vol_uses_the_half_life():
    """vol_of_vol 0 and a feedback: the half-life times the feedback's decay, so it is not noted
    as unused (the leverage still is)."""
    compiled = engine.compile_scenario(_scenario({**FEEDBACK, "market.volatility.clustering.half_life": "6h",
                                                  "market.volatility.clustering.leverage": -0.5}))
    assert any("clustering.leverage set but unused" in n for n in compiled.notes), compiled.notes
    short = _after_jump_vol({**FEEDBACK, "market.volatility.clustering.half_life": "1h"}, n_paths=500)
    long = _after_jump_vol({**FEEDBACK, "market.volatility.clustering.half_life": "3d"}, n_paths=500)
    assert long > short
