"""Exchange margin rules (docs/model.md, sections 3-5): tiered maintenance margin by position
notional, partial liquidation down a tier, auto-deleveraging ranked by profit x leverage.

The schedule and its size classes are checked against Binance's published rules; the two book
operations are checked on hand-built books through the kernel's own functions; and every key of
the schedule is shown to move a simulation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.compile.book import size_classes, tier_rate
from engine.compile.layout import N_ROW_FIELDS, Row
from engine.errors import ScenarioError
from engine.nb import book as bk
from engine.scenario.market import BINANCE_BTCUSDT_TIERS, Perpetuals

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feb-2026-deleveraging.yaml"


def _perps(**kw) -> Perpetuals:
    return Perpetuals(long={"notional_usd": 1e9}, short={"notional_usd": 1e9}, **kw)


# ---------------------------------------------------------------- the schedule


def test_the_default_schedule_is_binance_btcusdt():
    tiers = _perps().margin_tiers
    assert [(t.up_to_usd, t.maintenance_margin_rate, t.max_leverage) for t in tiers] == [
        (float(a), b, float(c)) for a, b, c in BINANCE_BTCUSDT_TIERS]


def test_the_requirement_is_continuous_at_every_bound_with_binance_maintenance_amounts():
    """Binance's maintenance amount makes ``N*m_k - cum_k`` continuous: at a bound, the two tiers
    ask the same margin. The published amounts of the first tiers are 0, 300, 1,500, 12,000."""
    tiers = _perps().margin_tiers
    for tier in tiers[:-1]:
        n = tier.up_to_usd
        assert tier_rate(tiers, n) * n == pytest.approx(tier_rate(tiers, n * (1 + 1e-12)) * n, rel=1e-9)
    for n, cum in ((500_000, 300.0), (2_000_000, 1_500.0), (5_000_000, 12_000.0)):
        m = next(t.maintenance_margin_rate for t in tiers if n <= t.up_to_usd)
        assert tier_rate(tiers, n) * n == pytest.approx(n * m - cum)


def test_tier_one_reproduces_the_published_binance_liquidation_price():
    """Worked example binance_usdm_cross_long_1 (tier 1, MMR 0.4%, cum 0): 1,000 USDT at 50,000,
    wallet 500 USDT, liquidation 25,100.40."""
    tiers = _perps().margin_tiers
    mmr = tier_rate(tiers, 1_000.0)
    size = 0.02
    liq = (500 - size * 50_000) / (size * mmr - size)
    assert liq == pytest.approx(25_100.40, abs=0.01)


def test_size_classes_split_the_book_by_position_notional():
    perps = _perps()
    classes = size_classes(perps.margin_tiers, perps.position_size)
    assert sum(c.share for c in classes) == pytest.approx(1.0)
    assert all(c.share >= 0.005 for c in classes)
    bounds = [0.0] + [t.up_to_usd for t in perps.margin_tiers]
    for c in classes:
        tier = perps.margin_tiers[c.tier - 1]
        lower = bounds[c.tier - 1]
        assert lower <= c.notional_usd <= tier.up_to_usd
        assert c.maintenance_rate <= tier.maintenance_margin_rate  # less the maintenance amount
        assert c.maintenance_rate == pytest.approx(tier_rate(perps.margin_tiers, c.notional_usd))
    # the shares follow the lognormal: half the open interest below the median (2M, inside tier 3)
    below = sum(c.share for c in classes if c.tier <= 2)
    assert below == pytest.approx(0.5 * math.erfc(-math.log(800_000 / 2e6) / 2 / math.sqrt(2)), abs=1e-3)
    # bigger positions put more of the book in the high tiers
    big = size_classes(perps.margin_tiers, perps.position_size.model_copy(update={"median_usd": 50e6}))
    assert max(c.tier for c in big) > max(c.tier for c in classes)


def test_the_book_has_a_row_per_venue_and_class_and_flat_venues_have_one():
    data = {"perpetuals": {"long": {"notional_usd": "10B"}, "short": {"notional_usd": "5B"},
                           "venues": {"binance": "70%", "cme": {"share": "30%", "maintenance_margin_rate": "2%",
                                                                "initial_margin_rate": "5%"}}}}
    compiled = _compiled(data)
    rows = compiled.book_rows
    assert rows.shape[1] == N_ROW_FIELDS
    tiered = rows[rows[:, Row.VENUE] == 0]
    flat = rows[rows[:, Row.VENUE] == 1]
    assert len(tiered) > 3 and len(flat) == 1
    assert flat[0, Row.MMR] == 0 and flat[0, Row.DOWN] == -1 and flat[0, Row.KEEP] == 0
    assert compiled.venue("MMR", "cme")[0] == 0.02
    assert (np.diff(tiered[:, Row.MMR]) > 0).all() and (np.diff(tiered[:, Row.IMR]) > 0).all()
    assert tiered[0, Row.DOWN] == -1 and (tiered[1:, Row.DOWN] == np.arange(len(tiered) - 1)).all()
    assert ((tiered[1:, Row.KEEP] > 0) & (tiered[1:, Row.KEEP] < 1)).all()
    # each venue keeps its share of each side; each class its share of the venue
    spot = compiled.param("SPOT0")
    assert compiled.book_long_btc.sum() * spot == pytest.approx(10e9, rel=1e-9)
    assert compiled.book_long_btc[rows[:, Row.VENUE] == 1].sum() * spot == pytest.approx(3e9, rel=1e-9)
    # entry notional / size is an entry price near spot (the default entries: lognormal around spot, 5%)
    entry = compiled.book_long_entry_usd.sum() / compiled.book_long_btc.sum()
    assert entry == pytest.approx(spot, rel=0.02)


@pytest.mark.parametrize("perps, message", [
    ({"margin_tiers": "binance-btcusdt", "maintenance_margin_rate": "1%"}, "not both"),
    ({"margin_tiers": "okx"}, "unknown tier schedule"),
    ({"margin_tiers": [{"up_to_usd": "1M", "maintenance_margin_rate": "1%", "max_leverage": 50},
                       {"up_to_usd": "500k", "maintenance_margin_rate": "2%", "max_leverage": 25}]}, "must increase"),
    ({"margin_tiers": [{"up_to_usd": "1M", "maintenance_margin_rate": "2%", "max_leverage": 40},
                       {"up_to_usd": None, "maintenance_margin_rate": "1%", "max_leverage": 25}]}, "must not decrease"),
    ({"margin_tiers": [{"up_to_usd": None, "maintenance_margin_rate": "3%", "max_leverage": 50}]}, "must exceed"),
    ({"venues": {"a": {"share": 1.0, "margin_tiers": "binance-btcusdt", "maintenance_margin_rate": "1%"}}}, "not both"),
])
def test_bad_schedules_are_refused_with_their_key(perps, message):
    with pytest.raises(ScenarioError) as info:
        _compiled({"perpetuals": {"long": {"notional_usd": "1B"}, "short": {"notional_usd": "1B"}, **perps}})
    assert message in str(info.value)
    assert "market.perpetuals" in str(info.value)
    if "margin_tiers" in str(perps) and "not both" not in message:
        assert "margin_tiers" in str(info.value)  # located at the key


# ---------------------------------------------------------------- partial liquidation, ranked ADL


def _grid(n_cells=64, lo=10_000.0, hi=200_000.0):
    g = np.geomspace(lo, hi, n_cells)
    return np.concatenate([g, [math.log(g[0]), (n_cells - 1) / math.log(hi / lo)]])


def test_a_partial_liquidation_moves_the_rest_down_a_tier_with_its_equity():
    grid = _grid()
    n = grid.size - 2
    cells = np.zeros((2, n))
    entry = np.zeros((2, n))
    c = 40
    cells[1, c] = 10.0  # 10 BTC in the upper class, bankrupt at grid[c]
    entry[1, c] = 10.0 * grid[c] * 1.05
    ptr = np.array([-1, c])
    mmr = np.array([0.004, 0.01])
    pb = grid[c]
    trigger = pb / (1 - mmr[1])
    keep, penalty = 0.4, 0.002
    size, usd, pos, neg, partial = bk.liquidate_at_trigger_nb(cells, entry, ptr, grid, trigger * 0.999, 1.0, mmr, 1,
                                                              0, keep, 1.0, 1e9, penalty, True)
    fill = trigger * (1 - penalty)
    assert size == pytest.approx(10.0 * (1 - keep))
    assert usd == pytest.approx(6.0 * fill) and partial == pytest.approx(usd)
    assert pos == 0 and neg == 0  # the margin stays with the position
    assert cells[1].sum() == 0 and entry[1].sum() == 0 and ptr[1] < c
    assert cells[0].sum() == pytest.approx(4.0) and entry[0].sum() == pytest.approx(4.0 * grid[c] * 1.05)
    # the rest's bankruptcy price keeps the equity left after the cut's slippage
    equity = 10.0 * (trigger - pb) - 6.0 * trigger * penalty
    pb_new = trigger - equity / 4.0
    lo = int(np.flatnonzero(cells[0])[0])
    w = cells[0, lo + 1] / 4.0
    assert math.exp(math.log(grid[lo]) * (1 - w) + math.log(grid[lo + 1]) * w) == pytest.approx(pb_new, rel=1e-12)
    assert ptr[0] == lo + 1
    # below the class's trigger: the rest is safe at this price
    assert pb_new / (1 - mmr[0]) < trigger * 0.999


def test_a_gap_past_the_remaining_equity_liquidates_whole():
    grid = _grid()
    n = grid.size - 2
    cells = np.zeros((2, n))
    entry = np.zeros((2, n))
    c = 40
    cells[1, c] = 1.0
    entry[1, c] = grid[c] * 1.1
    ptr = np.array([-1, c])
    mmr = np.array([0.004, 0.01])
    gap_open = grid[c] * 0.95  # the step opened below the bankruptcy price
    size, usd, pos, neg, partial = bk.liquidate_at_trigger_nb(cells, entry, ptr, grid, gap_open, 1.0, mmr, 1, 0, 0.4,
                                                              1.0, gap_open, 0.0, True)
    assert size == 1.0 and partial == 0.0 and neg == pytest.approx(grid[c] - gap_open) and cells.sum() == 0


def test_adl_takes_the_most_profitable_most_levered_first():
    grid = _grid()
    n = grid.size - 2
    rows = np.zeros((2, N_ROW_FIELDS))  # two classes of venue 0
    rows[1, Row.DOWN] = 0
    shorts = np.zeros((2, n))
    entry = np.zeros((2, n))
    price = 50_000.0
    # short A: entered 80k at 2x (bankrupt 120k): far in profit, low leverage now
    # short B: entered 60k at 10x (bankrupt 66k): in profit and levered
    # short C: entered 45k at 5x (bankrupt 54k): losing
    cells = {}
    for name, (e, lev, row) in {"A": (80_000, 2, 0), "B": (60_000, 10, 1), "C": (45_000, 5, 0)}.items():
        pb = e * (1 + 1 / lev)
        c = int(round((math.log(pb) - grid[n]) * grid[n + 1]))
        shorts[row, c] += 1.0
        entry[row, c] += e * 1.0
        cells[name] = (row, c)
    scores = {k: bk.adl_score_nb(1.0, entry[r, c], grid[c], price, False) for k, (r, c) in cells.items()}
    assert scores["B"] > scores["A"] > 0 > scores["C"]
    ptr = np.array([min(c for r, c in cells.values() if r == 0), cells["B"][1]])
    score = np.zeros_like(shorts)
    removed = bk.adl_ranked_nb(shorts, entry, ptr, rows, 0, 1.5 * price, price, grid, 1.0, 1.0, score, False)
    assert removed == pytest.approx(1.5)
    r, c = cells["B"]
    assert shorts[r, c] == 0 and entry[r, c] == 0  # taken whole, first
    r, c = cells["A"]
    assert shorts[r, c] == pytest.approx(0.5) and entry[r, c] == pytest.approx(0.5 * 80_000)  # then half of A
    r, c = cells["C"]
    assert shorts[r, c] == 1.0  # the losing one is spared
    assert ptr[1] == n  # class 1 is empty: its pointer says so


# ---------------------------------------------------------------- every key acts


def _compiled(perps_update: dict):
    data = {"name": "tiers", "seed": 1, "n_paths": 64,
            "horizon": {"start": "2026-01-29T00:00:00Z", "duration": "2d", "step": "1h"},
            "market": {"spot_usd": 90_000, **perps_update}}
    return engine.compile_scenario(engine.load_scenario(data))


def _flagship(*overrides: str):
    return engine.run(str(FLAGSHIP), n_paths=256, seed=11, n_jobs=2, keep_steps=False,
                      overrides=["horizon.duration=10d", *overrides])


@pytest.fixture(scope="module")
def base():
    return _flagship()


def test_the_flagship_liquidates_in_part_and_flat_venues_do_not(base):
    pp = base.per_path
    assert (pp["partial_liquidations_usd"] > 0).mean() > 0.2
    assert (pp["partial_liquidations_usd"] <= pp["long_liquidations_usd"] + pp["short_liquidations_usd"] + 1e-3).all()
    flat = _flagship("market.perpetuals.maintenance_margin_rate=0.5%", "market.perpetuals.initial_margin_rate=1%")
    assert (flat.per_path["partial_liquidations_usd"] == 0).all()
    assert flat.compiled.book_rows.shape[0] == flat.compiled.n_venues


@pytest.mark.parametrize("override", [
    "market.perpetuals.position_size.median_usd=20M",
    "market.perpetuals.position_size.dispersion=1",
    'market.perpetuals.margin_tiers=[{up_to_usd: 1M, maintenance_margin_rate: 1%, max_leverage: 50}, '
    '{up_to_usd: null, maintenance_margin_rate: 5%, max_leverage: 10}]',
    'market.perpetuals.venues.crypto_exchanges={share: 80%, margin_tiers: [{up_to_usd: null, '
    'maintenance_margin_rate: 1%, max_leverage: 50}]}',
])
def test_every_schedule_key_moves_the_flagship(base, override):
    other = _flagship(override)
    cols = ["min_price", "long_liquidations_usd", "partial_liquidations_usd"]
    assert not np.array_equal(base.per_path[cols].to_numpy(), other.per_path[cols].to_numpy()), override


def test_settings_that_cannot_act_on_tiers_say_so():
    """A maintenance cut below the first tier changes nothing on a tiered venue, and a position-size
    distribution changes nothing when every venue is flat: both are compile notes, not silence."""
    book = {"perpetuals": {"long": {"notional_usd": "1B"}, "short": {"notional_usd": "1B"}}}
    data = {"name": "tiers", "seed": 1, "n_paths": 4,
            "horizon": {"start": "2026-01-29T00:00:00Z", "duration": "2d", "step": "1h"},
            "market": {"spot_usd": 90_000, **book},
            "shocks": [{"type": "margin_hike", "start": "+1h", "maintenance_margin_rate": "0.1%"}]}
    notes = engine.compile_scenario(engine.load_scenario(data)).notes
    assert any("below venue 'all''s first margin tier" in n for n in notes), notes
    data["shocks"][0]["maintenance_margin_rate"] = "1%"  # above it: acts, no note
    assert not engine.compile_scenario(engine.load_scenario(data)).notes
    flat = _compiled({"perpetuals": {**book["perpetuals"], "maintenance_margin_rate": "0.5%",
                                     "position_size": {"median_usd": "5M"}}})
    assert any("position_size set but unused" in n for n in flat.notes), flat.notes
