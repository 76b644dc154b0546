"""The historical library (``scenarios/history/``) against its reference numbers.

Each episode extends the calibrated parameter file and is run as shipped: October 2025 is
fitted jointly with February and the calm year (its first 24 hours), March 2020 is out of
sample. Its reference figures come from
``../shared/data/reference/stress_event_reference_numbers.csv`` through
:mod:`engine.calibration.oos`, the same targets ``cascade calibrate`` reports. The tests hold what
the model reproduces, and pin each figure it does not (``xfail(strict=True)``, with the measured
miss): when the model improves, the mark must go.

January-February 2026 is the flagship itself (``scenarios/feb-2026-deleveraging.yaml``), fitted by
the calibration and checked against its facts in ``tests/test_calibration.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import engine
from engine.calibration.oos import EPISODES, _close_at, _liquidations, _min_price, episode_targets
from engine.calibration.targets import evaluate

ROOT = Path(__file__).resolve().parents[1]
HISTORY = ROOT / "scenarios" / "history"
N_PATHS = 2000


@pytest.fixture(scope="module")
def reference(shared_data):
    path = shared_data / "reference" / "stress_event_reference_numbers.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _episode(name: str, reference: Path):
    path = HISTORY / f"{name}.yaml"
    scenario = engine.load_scenario(path)
    r = engine.run(path, n_paths=N_PATHS)
    return r, evaluate(r, episode_targets(scenario.name, reference, scenario.horizon.start))


@pytest.fixture(scope="module")
def october(reference):
    return _episode("oct-2025-exchange-failure", reference)


@pytest.fixture(scope="module")
def march(reference):
    return _episode("black-thursday-2020", reference)


def test_every_history_file_is_an_episode_with_reference_numbers():
    names = {engine.load_scenario(p).name for p in HISTORY.glob("*.yaml")}
    assert names == set(EPISODES), "every scenarios/history/ file needs its targets in engine.calibration.oos"
    for path in HISTORY.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "extends: ../calibration/feb-2026.yaml" in text, f"{path.name}: extend the one parameter file"
        assert "Reference numbers" in text or "Calibration targets" in text, f"{path.name}: name its reference figures"


# ----------------------------------------------------------------------------- October 2025
def test_october_wick_and_liquidations_are_within_the_model_range(october):
    _, t = october
    assert t.loc["wick_low", "inside_5_95"], t.loc["wick_low"].to_dict()
    # 19B across all of crypto (BTC's own share is smaller): inside the model's range of BTC alone
    assert t.loc["liquidations_24h", "inside_5_95"], t.loc["liquidations_24h"].to_dict()
    assert t.loc["open_interest_change_24h", "inside_5_95"], t.loc["open_interest_change_24h"].to_dict()


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "not yet: the model liquidates almost no shorts in October (longs are 100% of its liquidations at the "
    "median, 98-100% at 5-95%; 85-90% observed across all of crypto). The book's shorts sit far from their "
    "triggers and the momentum traders who short into the wick are fitted at 2.7x: the wick's 3% rebound "
    "does not reach them."))
def test_october_long_share_is_75_to_95_percent(october):
    _, t = october
    assert 0.75 <= t.loc["long_share", "model_p50"] <= 0.95


def test_october_liquidations_concentrate_around_the_failure(october):
    """Concentrated around the failure window, not spread over days. The 40 minutes of the failure
    are 2.8% of the first day and held 36% of its liquidations (6.93B of 19B, all of crypto); the
    model puts 33% there at the median (30% with the liquidation feedback at its fitted 6.8, whose
    aftershocks spread some of them later), 80% in the two hours around it (the 20:45 trigger
    included), and the second day liquidates a quarter of what the first did. Before the
    vacuum covered every venue and the permanent impact stopped following the momentary depth,
    the failure window held 0.7B."""
    r, _ = october

    def liquidations(start: str, hours: float) -> np.ndarray:  # per path, long + short, as the targets sum them
        return _liquidations(pd.Timestamp(start), hours)(r)

    day = np.maximum(liquidations("2025-10-10T20:00Z", 24), 1.0)
    assert np.median(liquidations("2025-10-10T21:00Z", 40 / 60) / day) >= 0.2  # 7x its share of the day
    assert np.median(liquidations("2025-10-10T20:00Z", 2) / day) >= 0.6
    assert liquidations("2025-10-11T20:00Z", 24).mean() < 0.5 * day.mean()


def test_a_liquidity_vacuum_on_every_venue_makes_a_wick_not_a_crash(october):
    """A 40-minute vacuum of quotes on every venue (the shipped scenario) is a wick: liquidations
    fill at bad prices, then the book refills and the price heals most of the way; the close
    three days later stays within 20% of the start (the real BTC closed 13 Oct 2025 near 115k).
    When the permanent impact grew as 1/(the momentary depth), the same vacuum closed 93% down."""
    r, _ = october
    assert {s.id for s in r.scenario.shocks} >= {"liquidity_vacuum"}
    vacuum = [s for s in r.scenario.shocks if s.id == "liquidity_vacuum"][0]
    assert vacuum.venues is None, "the vacuum covers every venue"
    close = r.per_path["terminal_price"].median()
    assert close >= 0.8 * r.compiled.param("SPOT0"), close
    # and the vacuum is a wick: an hour after the failure began the price is back above its low
    low = np.median(_min_price(pd.Timestamp("2025-10-10T20:00Z"), 24)(r))
    after = np.median(_close_at(pd.Timestamp("2025-10-10T22:00Z"))(r))
    assert after > 1.02 * low, (low, after)


@pytest.mark.slow
def test_with_no_depth_memory_the_same_vacuum_is_a_crash():
    """What makes the wick: the permanent impact reads the book's slow depth (one day's memory).
    With ``market.impact.depth_memory: 0s`` it follows the momentary depth, as before model v10,
    and the same 40-minute vacuum takes the price down for good."""
    path = HISTORY / "oct-2025-exchange-failure.yaml"
    r = engine.run(engine.load_scenario(path, ["market.impact.depth_memory=0s"]), n_paths=500)
    assert r.per_path["terminal_price"].median() < 0.5 * r.compiled.param("SPOT0")


# ----------------------------------------------------------------------------- March 2020
def test_march_2020_long_liquidations_reach_the_reported_billion(march):
    _, t = march
    row = t.loc["long_liquidations_24h"]
    assert row.inside_5_95 and row.model_p95 > row.observed, row.to_dict()


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "out of sample and not reproduced: the model's median low on 12 March 2020 is about 7.4k against "
    "Binance's 4,410. The scenario's one driver is the S&P 500's -9.5% through a beta of 0.5; the "
    "dash for cash, BitMEX's liquidation engine and the thin books of 2020 are not in it."))
def test_march_2020_price_falls_to_the_observed_lows(march):
    _, t = march
    for name in ("low_12mar", "low_13mar", "close_12mar"):
        assert t.loc[name, "inside_5_95"], (name, t.loc[name].to_dict())
