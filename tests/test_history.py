"""The historical library (``scenarios/history/``) against its reference numbers.

Each episode extends the calibrated parameter file and is run as shipped (out of sample: nothing
here is refitted). Its reference figures come from
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
from engine.calibration.oos import EPISODES, _window_sum, episode_targets
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
    "median, 97.5-100% at 5-95%; 85-90% observed). Its only upward moves are the transient impact healing; the wick's rebound that "
    "caught shorts in the real market needs a book of shorts close to their trigger."))
def test_october_long_share_is_75_to_95_percent(october):
    _, t = october
    assert 0.75 <= t.loc["long_share", "model_p50"] <= 0.95


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "not yet: the model's liquidations come at the 20:45 trigger jump (about 4.2B on average in one 5-minute "
    "step) and then spread over the day; the failure window (21:00-21:40) adds about 0.7B, where the real "
    "market liquidated 6.93B in those 40 minutes."))
def test_october_liquidations_concentrate_around_the_failure(october):
    r, _ = october

    def liquidations(start: str, hours: float) -> np.ndarray:  # per path, long + short, as the targets sum them
        return sum(_window_sum(side, pd.Timestamp(start), hours)(r) for side in ("liq_long", "liq_short"))

    share = liquidations("2025-10-10T21:00Z", 40 / 60) / np.maximum(liquidations("2025-10-10T20:00Z", 24), 1.0)
    assert np.median(share) >= 0.3


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "not yet: at the calibrated values almost all of the price's response to flow is the permanent "
    "part (the transient square-root coefficient sits at its box's bottom), and that part grows as "
    "1/depth: October's 40-minute failure extended to every venue (2% of the depth) ends at a "
    "median close of about 8.3k, 93% down, where the real market wicked to 102k and closed the hour "
    "at 113.5k (docs/model.md section 2)."))
def test_a_liquidity_vacuum_on_every_venue_makes_a_wick_not_a_crash():
    """A 40-minute vacuum of quotes is a wick: liquidations fill at bad prices, then the book
    refills and the price heals most of the way; the scenario's close three days later stays
    within 20% of its start (the real BTC closed 13 Oct 2025 near 115k)."""
    path = HISTORY / "oct-2025-exchange-failure.yaml"
    scenario = engine.load_scenario(path, ["shocks[engine_failure].venues=[failing_exchange, other_venues]"])
    r = engine.run(scenario, n_paths=500)
    close = r.per_path["terminal_price"].median()
    assert close >= 0.8 * r.compiled.param("SPOT0"), close


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
