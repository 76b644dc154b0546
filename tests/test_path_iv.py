"""Option vols that follow the path: the ATM implied vol of each path, the variance risk premium,
and the strategies' fair value against their premium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine.options.vrp import DEFAULT_VRP, measure

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
ROOT = Path(__file__).resolve().parents[1]


def test_the_default_variance_risk_premium_is_what_the_data_measure():
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is absent: the option chains and daily closes the premium is measured from")
    vrp, observations = measure(DATA)
    assert len(observations) == 2
    for o in observations:  # implied above what the market then realised
        assert o.atm_iv > o.realised_vol > 0
    assert DEFAULT_VRP == pytest.approx(round(vrp, 2), abs=1e-12)
    scenario = engine.load_scenario(ROOT / "scenarios" / "calm-baseline.yaml")
    assert scenario.market.options.variance_risk_premium == DEFAULT_VRP


def _calm(tiny, n_paths=512, horizon=None, **options):
    raw = dict(tiny, n_paths=n_paths)
    if horizon:
        raw["horizon"] = dict(raw["horizon"], duration=horizon)
    market = dict(raw["market"])
    market["volatility"] = dict(market.get("volatility", {}), annual="60%",
                                clustering={"vol_of_vol": 1.0, "half_life": "2d", "leverage": -0.5})
    market["options"] = dict(market.get("options", {}), atm_iv="50%", **options)
    raw["market"] = market
    return engine.run(engine.load_scenario(raw), seed=11)


def test_every_path_starts_at_the_quoted_level_and_then_follows_its_own_variance(tiny_scenario):
    r = _calm(tiny_scenario, spot_vol_beta=0.0)
    iv = r._raw["atm_iv"].astype(float)
    # one step in, the paths have barely moved from the quote; by the end they have spread out
    assert np.all(np.abs(iv[:, 0] - 0.5) < 0.1)
    assert iv[:, -1].std() > 3 * iv[:, 0].std()
    # the paths whose vol is high now are those that move most next: IV forecasts realised vol
    price = r._raw["price"].astype(float)
    half = iv.shape[1] // 2
    later = np.log(price[:, half + 1:] / price[:, half:-1]).std(axis=1)
    assert np.corrcoef(iv[:, half], later)[0, 1] > 0.15  # 0.26 on these 512 paths of two days


def test_without_clustering_or_spot_vol_beta_every_path_has_the_same_iv(tiny_scenario):
    raw = dict(tiny_scenario, n_paths=64)
    raw["market"] = dict(raw["market"], options=dict(raw["market"].get("options", {}), spot_vol_beta=0.0))
    r = engine.run(engine.load_scenario(raw), seed=3)
    iv = r._raw["atm_iv"]
    assert np.all(iv == iv[:1])


def test_the_variance_risk_premium_moves_the_paths_vols(tiny_scenario):
    """The quote at the start is the same; over 20 days (the gap to the model's level two thirds
    gone) the path's vol sits at (1 + VRP) times its expected realised vol."""
    low = _calm(tiny_scenario, n_paths=256, horizon="20d", variance_risk_premium=0.0)
    high = _calm(tiny_scenario, n_paths=256, horizon="20d", variance_risk_premium=0.8)
    assert np.median(high._raw["atm_iv"][:, -1]) > 1.2 * np.median(low._raw["atm_iv"][:, -1])
    assert high.fan[("atm_iv", "p50")].iloc[-1] > low.fan[("atm_iv", "p50")].iloc[-1]


@pytest.mark.slow
def test_in_a_calm_market_a_30_day_otm_put_pays_less_than_its_premium():
    """Puts carry a premium in calm markets: on the calm baseline run for 31 days, a 30-day put
    15% out of the money, held to expiry, pays back less on average than it cost."""
    r = engine.run(ROOT / "scenarios" / "calm-baseline.yaml", n_paths=4000, seed=5, overrides=[
        "horizon.duration=31d",
        'strategies=[{rule: protective_put, name: otm_put, strike_pct_of_spot: 85%, size_btc: 1, tenor: 30d}]'])
    table = r.strategies.set_index("strategy")
    put = table.loc["otm_put"]
    paths = r.strategy_paths
    row = list(table.index).index("otm_put")
    payoff = paths["payoff"][row]
    se = payoff.std() / np.sqrt(payoff.size)
    assert put["fair_value"] == pytest.approx(payoff.mean())
    assert put["premium"] > put["fair_value"] + 2 * se
    assert put["premium_over_fair"] > 1.0
