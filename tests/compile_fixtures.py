"""Scenarios for the compile tests: every knob set to a value where it matters.

``RICH`` uses every shock type (some twice, to cover both forms of a shock) with finite durations,
ramps, breakers and overrides, so that changing any one parameter must change the compiled
arrays. ``RICH_TABLES`` swaps in the other distribution forms of the book.
"""

from __future__ import annotations

import copy

import yaml

RICH_YAML = """
name: rich
description: Every knob in use.
seed: 7
n_paths: 300
horizon: {start: 2026-01-29T00:00:00Z, duration: 6d, step: 1h}
market:
  spot_usd: 88k
  drift_annual: 5%
  volatility:
    annual: 50%
    tail_dof: 4
    jumps: {intensity_per_day: 0.2, mean: -2%, stdev: 3%}
    clustering: {vol_of_vol: 0.8, half_life: 2d, leverage: -0.4, liquidation_feedback: 10}
  macro: {annual_vol: 20%, drift_annual: 3%, btc_beta: 1.2}
  impact:
    model: sqrt
    sqrt_coefficient: 0.7
    daily_volume_usd: 18B
    depth_usd_per_pct: 14M
    resilience_half_life: 30m
    permanent_fraction: 0.5%
    depth_memory: 12h
  perpetuals:
    long:
      notional_usd: 38B
      leverage: {distribution: lognormal, median: 8, dispersion: 0.7, min: 1.5, max: 60}
      entry_price: {distribution: uniform, low_usd: 80k, high_usd: 98k}
    short:
      notional_usd: 23B
      leverage: {distribution: lognormal, median: 6, dispersion: 0.5, min: 1.5, max: 50}
      entry_price: {distribution: lognormal, center_usd: 90k, dispersion: 4%}
    margin_tiers:
      - {up_to_usd: 500k, maintenance_margin_rate: 0.4%, max_leverage: 100}
      - {up_to_usd: 10M, maintenance_margin_rate: 1%, max_leverage: 50}
      - {up_to_usd: null, maintenance_margin_rate: 2.5%, max_leverage: 20}
    position_size: {median_usd: 3M, dispersion: 1.8}
    venues: {main: 70%, cme: {share: 30%, initial_margin_rate: 5%, maintenance_margin_rate: 2%, insurance_fund_usd: 50M}}
    funding: {interval: 8h, base_rate: 0.01%, imbalance_sensitivity: 0.05%, cap: 0.3%}
    insurance_fund_usd: 1B
    liquidation: {fill_slippage: 0.1%, max_cascade_rounds: 40}
    book_cells: 120
    grid_span: 8
  etf:
    holdings_btc: 1.28M
    cost_basis_usd: 81.6k
    reflexivity: {lookback: 5d, loss_sensitivity: 0.02, below_cost_basis_sensitivity: 0.01}
    execution_window: {start: "14:30", end: "21:00"}
  options:
    open_interest:
      - {kind: put, strike_usd: 60k, expiry: 2026-02-27T08:00:00Z, size_btc: 25k}
      - {kind: call, strike_usd: 100k, expiry: 2026-02-27T08:00:00Z, size_btc: 10k}
    dealer_short_share: 60%
    atm_iv: 55%
    risk_reversal_25d: -5%
    term_structure_slope: 5%
    butterfly_25d: 2%
    spot_vol_beta: 0.4
    skew_beta: 0.3
    variance_risk_premium: 0.3
  miners:
    hashrate_eh_per_s: 1000
    breakeven_hash_price_usd_per_ph_day: 40
    reserves_btc: 90k
    block_subsidy_btc: 3.125
    fee_share: 1%
    next_difficulty_adjustment: +2d
    difficulty_period: 2d
    sell_sensitivity: 0.05
    hashrate_sensitivity: 0.5
  behaviour:
    deleveraging:
      base_hazard_per_day: 0.01
      drawdown_sensitivity: 1.0
      take_profit_sensitivity: 0.5
      volatility_sensitivity: 0.2
      reference_volatility: 50%
      funding_sensitivity: 5
      volatility_half_life: 1d
    momentum: {lookback: 6h, open_rate: 0.5, leverage: 15, threshold: 0.5%, holding_time: 9h, capital: 40%}
shocks:
  - type: margin_hike
    id: direct
    start: +1d
    venues: [main]
    initial_margin_rate: 5%
    maintenance_margin_rate: 1%
    top_up_fraction: 50%
    duration: 2d
  - type: margin_hike
    id: cme
    start: +12h
    venues: [cme]
    contract_size_btc: 5
    top_up_fraction: 30%
    schedule:
      - {initial_margin_usd_per_contract: 25k, maintenance_margin_usd_per_contract: 20k}
      - {at: +2d, initial_margin_usd_per_contract: 32.5k}
      - {at: +4d, initial_margin_rate: 15%, maintenance_margin_rate: 11%}
  - type: etf_flows
    id: farside
    start: 2026-01-29
    daily_flows_usd: {2026-01-29: -817.8M, 2026-01-30: -509.7M, 2026-02-02: 561.8M}
    execution_window: {start: "15:00", end: "20:00"}
    reflexivity_multiplier: 1.2
  - type: etf_flows
    id: run
    start: +3d
    generated: {days: 2, total_usd: -1.5B, dispersion: 40%, seed: 11}
    reflexivity: {loss_sensitivity: 0.03, below_cost_basis_sensitivity: 0.02}
  - type: etf_flows
    id: run_mean
    start: +1d
    generated: {days: 2, mean_per_day_usd: -200M, dispersion: 30%}
  - type: balance_sheet_tightening
    id: warsh
    start: +1d
    ramp: 1d
    duration: 2d
    ramp_out: 12h
    depth_multiplier: 0.7
    drift_annual: -20%
    vol_multiplier: 1.3
    macro_beta: 1.8
    etf_reflexivity_multiplier: 1.5
    announcement_jump: {size: -2.5%, at: +1d3h}
  - type: cross_asset_shock
    id: metals
    start: +13h
    duration: 3d
    moves:
      - {asset: silver, move: -34%, btc_beta: 0.15}
      - {asset: nasdaq, move: -2%, is_macro_factor: true}
    macro_vol_multiplier: 1.5
    forced_selling_usd: -1.5B
  - type: exchange_failure
    id: venue_down
    start: +2d
    ramp: 1h
    duration: 6h
    ramp_out: 2h
    depth_fraction: 20%
    market_makers_gone: true
    liquidation_fill_penalty: 2%
    venues: [main]
    circuit_breaker_move: 8%
    circuit_breaker_pause: 2h
  - type: miner_capitulation
    id: miners
    start: +3d
    ramp: 6h
    duration: 1d
    ramp_out: 6h
    breakeven_multiplier: 1.2
    reserve_sale_fraction: 10%
    hashrate_change: -10%
  - type: relief_rally
    id: squeeze
    start: +4d
    ramp: 2h
    duration: 10h
    ramp_out: 2h
    new_short_notional_usd: 2B
    short_leverage: 20
    macro_move: 2%
    momentum_buying_usd: 500M
  - type: price_jump
    id: jump
    start: +5d
    size: -5%
    spread: 2%
  - type: options_positioning
    id: put_wall
    start: +2d
    ramp: 1d
    duration: 2d
    ramp_out: 6h
    open_interest_changes:
      - {kind: put, strike_usd: 55k, expiry: 2026-02-27T08:00:00Z, size_btc: 10k}
    open_interest_removed:
      - {kind: call, strike_usd: 100k, expiry: 2026-02-27T08:00:00Z, size_btc: 4k}
    atm_iv: 70%
    risk_reversal_25d: -13%
    term_structure_slope: -15%
    dealer_short_share: 70%
portfolio:
  spot_btc: 100
  cash_usd: 1M
  perp: {size_btc: 20, leverage: 5, entry_price_usd: 90k, venue: cme}
  options:
    - {kind: put, strike_usd: 60k, expiry: 2026-02-27T08:00:00Z, size_btc: 50}
outputs:
  quantiles: [5, 50, 95]
  price_levels_usd: [60k, 56.1k, 50k]
  price_bands: [{low_usd: 66.9k, high_usd: 70.6k, label: absorption}]
  sample_paths: 5
  report: true
  figures: true
"""

RICH = yaml.safe_load(RICH_YAML)


def rich_tables() -> dict:
    """RICH with the table forms of the leverage and entry distributions, and linear impact."""
    data = copy.deepcopy(RICH)
    perps = data["market"]["perpetuals"]
    perps["long"]["leverage"] = {"distribution": "table", "weights": {3: 0.2, 10: 0.5, 25: 0.3}}
    perps["long"]["entry_price"] = {"distribution": "table", "weights": {85000: 0.3, 92000: 0.4, 97000: 0.3}}
    data["market"]["impact"]["model"] = "linear"
    # a flat rate for the book, a venue with its own tiers, one with its own flat rates, one with the book's
    del perps["margin_tiers"]
    perps["maintenance_margin_rate"] = "0.5%"
    perps["initial_margin_rate"] = "1%"
    perps["venues"] = {"main": {"share": "60%", "margin_tiers": [
        {"up_to_usd": "2M", "maintenance_margin_rate": "0.5%", "max_leverage": 75},
        {"up_to_usd": None, "maintenance_margin_rate": "2%", "max_leverage": 25}]},
        "cme": perps["venues"]["cme"], "other": "10%"}
    return data


RICH_TABLES = rich_tables()
