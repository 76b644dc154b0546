"""Small scenarios for the simulation tests (``test_simulate``, ``test_invariants``, ``test_mechanisms``).

Everything here is raw scenario data (as a YAML file would hold it), so a test can change one key
and load it with :func:`engine.load_scenario`. The runs are short (one or two days, hourly steps)
and use a few hundred paths: the numba kernel compiles once per session (``cache=True``) and then
each run takes milliseconds.
"""

from __future__ import annotations

import copy

import engine

START = "2026-02-02T00:00:00Z"  # a Monday: ETF flows are executed that day and the next

# A market with every behaviour on, but small enough to run in milliseconds.
MARKET = {
    "name": "sim-small",
    "description": "A small market for simulation tests.",
    "seed": 11,
    "n_paths": 256,
    "horizon": {"start": START, "duration": "2d", "step": "1h"},
    "market": {
        "spot_usd": "80k",
        "volatility": {"annual": "50%", "tail_dof": 4},
        "impact": {"model": "sqrt", "daily_volume_usd": "18B", "depth_usd_per_pct": "14M"},
        "perpetuals": {
            "long": {
                "notional_usd": "20B",
                "leverage": {"distribution": "lognormal", "median": 5, "dispersion": 0.6, "min": 1.2, "max": 100},
                "entry_price": {"distribution": "uniform", "low_usd": "76k", "high_usd": "84k"},
            },
            "short": {
                "notional_usd": "10B",
                "leverage": {"distribution": "lognormal", "median": 5, "dispersion": 0.6, "min": 1.2, "max": 100},
                "entry_price": {"distribution": "lognormal", "center_usd": "80k", "dispersion": "3%"},
            },
        },
        "etf": {"holdings_btc": "1.28M", "cost_basis_usd": "81.6k"},
        "options": {
            "open_interest": [
                {"kind": "put", "strike_usd": "70k", "expiry": "2026-02-27T08:00:00Z", "size_btc": "20k"},
                {"kind": "call", "strike_usd": "95k", "expiry": "2026-02-27T08:00:00Z", "size_btc": "10k"},
            ],
        },
    },
    "outputs": {"sample_paths": 8, "price_levels_usd": ["78k", "75k", "70k", "60k"]},
}

# The same book in a market whose only moves are the exogenous diffusion and the shocks a test
# adds: no ETF holders, no miner reserves, no options, no behavioural flows.
QUIET_MARKET = copy.deepcopy(MARKET)
QUIET_MARKET["name"] = "sim-quiet"
QUIET_MARKET["market"].update({
    "etf": {"holdings_btc": 0},
    "options": {"open_interest": []},
    "miners": {"reserves_btc": 0},
    "behaviour": {
        "deleveraging": {"base_hazard_per_day": 0, "drawdown_sensitivity": 0, "volatility_sensitivity": 0,
                         "funding_sensitivity": 0},
        "momentum": {"open_rate": 0},
    },
})


def market(changes: dict | None = None) -> dict:
    """A deep copy of :data:`MARKET` with ``changes`` applied (dotted keys: ``{"market.spot_usd": "60k"}``)."""
    return patched(MARKET, changes)


def quiet(changes: dict | None = None) -> dict:
    """A deep copy of :data:`QUIET_MARKET` with ``changes`` applied."""
    return patched(QUIET_MARKET, changes)


def patched(base: dict, changes: dict | None = None) -> dict:
    data = copy.deepcopy(base)
    for dotted, value in (changes or {}).items():
        node = data
        *head, last = dotted.split(".")
        for key in head:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)
    return data


def with_shocks(data: dict, *shocks: dict) -> dict:
    data = copy.deepcopy(data)
    data["shocks"] = list(data.get("shocks", [])) + [copy.deepcopy(s) for s in shocks]
    return data


def run(data: dict, n_paths: int | None = None, seed: int | None = None, **kwargs):
    """Load raw scenario data and simulate it."""
    return engine.run(engine.load_scenario(data), n_paths=n_paths, seed=seed, **kwargs)
