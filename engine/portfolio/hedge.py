"""Hedging strategies on simulated paths: simulate once, evaluate every strategy and parameter set.

``evaluate(result)`` marks the scenario's portfolio, unhedged and with each rule of its
``strategies:`` section (each parameter set of an inline sweep is a row of its own), along every
simulated price path, with :func:`engine.nb.hedge.evaluate_nb`, and returns one row per
(strategy, parameter set):

==========================  ===============================================================
``pnl_mean``, ``pnl_median``  final value minus the unhedged portfolio's initial value, USD
``var95``, ``var99``          value at risk: the loss at the 5th / 1st percentile of PnL, USD
``es95``, ``es99``            expected shortfall: the mean loss beyond it, USD
``max_dd_p50``, ``max_dd_p95``  median and 95th percentile of the marked value's max drawdown
``p_liquidated``              share of paths on which a perp of the portfolio was liquidated
``premium``                   mean net option premium paid, costs included, USD
``fair_value``                the legs' mean payoff on the paths, USD
``premium_over_fair``         premium per USD of fair value, where both are positive
``effectiveness``             ES99 saved versus unhedged per USD of premium
``d_pnl_mean``, ``d_es99``    the same figures minus the unhedged row's
``p_touch_<level>``           the market's probability of touching each price level (from below above the start)
==========================  ===============================================================

Each metric is defined once, in :mod:`engine.portfolio.metrics` (:data:`METRICS`, in the table's
order after the row's label and parameters), as a formula of statistics of the row's per-path
outcomes and the unhedged row's; :mod:`engine.results.regression` resamples the same formulas.

Rules evaluated: ``protective_put``, ``put_spread``, ``collar`` (option legs; strikes absolute or
as a share of the price when bought; size in BTC or as a hedge ratio of the portfolio's BTC
delta at the start; a fixed expiry, or a tenor from the start with an optional roll);
``perp_hedge``, static or dynamic (rebalanced every ``rebalance_every`` toward ``delta_target``
when off by more than ``rebalance_band`` of the unhedged delta); ``stop_loss``; and ``deleverage``
(the portfolio's perp cut to ``target_leverage`` when the drawdown from the peak, the realised
vol over ``volatility_window`` or the path's funding rate crosses its trigger, at most once per
``cooldown``). Each rule's module in :mod:`engine.strategies` holds its parameters and turns
them into the kernel's inputs (``translate``). Without a ``portfolio:`` section the book is 1 BTC held spot. Perps pay each
path's own funding rate (the rate the simulated book set, per interval, at each funding time;
the scenario's base rate on history); the perps' maintenance
rate is their venue's at the start.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from . import metrics as hedge_metrics
from ..compile.layout import (IV_FLOOR, IV_TENOR, N_CONTROLS, N_HEDGE_OUT, N_LEGS, N_ORDER_FIELDS, N_TRACE_FIELDS,
                             SURFACE_FIELDS, Control, HedgeOut, Order)
from .metrics import METRICS, touched

__all__ = ["evaluate", "evaluate_paths", "to_vectorbt", "path_to_vectorbt", "Variant", "variants", "METRICS", "row_label"]

@dataclass
class Variant:
    strategy: str
    rule: str
    params: dict = field(default_factory=dict)  # the swept parameters of this row
    legs: list = field(default_factory=list)  # (kind, size_btc, strike, strike_pct, expiry, tenor, roll), by Leg
    hedge_size: float = 0.0
    hedge_leverage: float = 1.0
    stop_price: float = -math.inf
    stop_drawdown: float = math.inf
    stop_fraction: float = 0.0
    spread: float = 0.0
    fee: float = 0.0
    controls: dict = field(default_factory=dict)  # engine.compile.layout Control columns, by name


def _is_set(value) -> bool:
    """Whether a row's parameter value is given: not None, NaN or pandas' NA (a text column's gap)."""
    try:
        return value is not None and bool(value == value)
    except TypeError:  # pandas.NA
        return False


def row_label(row) -> str:
    """``put_60k`` or, for a row of a sweep, ``put_60k[strike_usd=55000]`` (a swept duration as
    its text: ``put[tenor=30d]``)."""
    swept = [(k[len("param."):], v) for k, v in row.items() if k.startswith("param.") and _is_set(v)]
    if not swept:
        return str(row["strategy"])
    return f"{row['strategy']}[" + ",".join(f"{k}={v}" if isinstance(v, str) else f"{k}={v:g}" for k, v in swept) + "]"


def _expanded(strategy, mode: str):
    """The strategy's parameter sets: its inline sweeps, by ``sweep.mode``."""
    from ..scenario.grid import _walk  # the same walk the grid uses

    dims = list(_walk(strategy, ""))
    if not dims:
        return [({}, strategy)]
    keys = [k.lstrip(".") for k, _ in dims]
    combos = zip(*[v for _, v in dims]) if mode == "zip" else itertools.product(*[v for _, v in dims])
    out = []
    for values in combos:
        data = strategy.model_dump()
        for key, value in zip(keys, values):
            node = data
            *path, last = key.split(".")
            for part in path:
                node = node[part]
            node[last] = value
        out.append((dict(zip(keys, values)), type(strategy).model_validate(data)))
    return out


def _btc_delta(compiled) -> float:
    """The portfolio's BTC delta at the start: spot, the perp, and options held (Black-Scholes on the
    vol surface the kernels mark them on, as the book's greeks report it: :mod:`engine.portfolio.greeks`)."""
    from .greeks import start_delta

    return start_delta(compiled)


def variants(scenario, compiled) -> tuple[list[Variant], list[str]]:
    """Every (strategy, parameter set) as kernel inputs, and the labels of rules not evaluated.

    Each rule's module in :data:`engine.strategies.RULES` translates its parameters
    (``translate(params, ctx, variant)``); a rule without one is listed as not evaluated."""
    from ..strategies import RULES, Context

    mode = scenario.sweep.mode if scenario.sweep is not None else "product"
    book_delta = _btc_delta(compiled)
    start = scenario.horizon.start
    step_seconds = scenario.horizon.step.total_seconds()
    out, skipped = [Variant("unhedged", "none")], []
    for strategy in scenario.strategies:
        translate = getattr(RULES[strategy.rule], "translate", None)
        if translate is None:
            skipped.append(f"{strategy.label} ({strategy.rule})")
            continue
        ctx = Context(book_delta, start, step_seconds, compiled, strategy.label)
        for swept, s in _expanded(strategy, mode):
            v = Variant(strategy.label, s.rule, swept, spread=s.costs.bid_ask_spread, fee=s.costs.fee_rate)
            translate(s, ctx, v)
            out.append(v)
    return out, skipped


def _kernel_inputs(compiled, vs: list[Variant]) -> dict:
    n = len(vs)
    legs = {k: np.full((n, N_LEGS), np.nan) for k in ("strike", "pct", "expiry", "tenor", "roll")}
    kind, size = np.zeros((n, N_LEGS), dtype=np.int64), np.zeros((n, N_LEGS))
    for i, v in enumerate(vs):
        for j, (k, sz, strike, pct, expiry, tenor, roll) in enumerate(v.legs):
            kind[i, j], size[i, j] = k, sz
            for name, value in zip(("strike", "pct", "expiry", "tenor", "roll"), (strike, pct, expiry, tenor, roll)):
                legs[name][i, j] = value
    controls = np.zeros((n, N_CONTROLS))
    controls[:, Control.EVERY] = 1.0
    controls[:, [Control.DELEV_TARGET, Control.DELEV_DRAWDOWN, Control.DELEV_VOL, Control.DELEV_FUNDING]] = np.nan
    controls[:, Control.DELEV_WINDOW] = 2.0
    for i, v in enumerate(vs):
        for name, value in v.controls.items():
            controls[i, getattr(Control, name)] = value
    col = lambda name: np.array([getattr(v, name) for v in vs], dtype=float)  # noqa: E731
    return dict(leg_kind=kind, leg_size=size, leg_strike=legs["strike"], leg_strike_pct=legs["pct"],
                leg_expiry=legs["expiry"], leg_tenor=legs["tenor"], leg_roll=legs["roll"],
                hedge_size=col("hedge_size"), hedge_leverage=col("hedge_leverage"), stop_price=col("stop_price"),
                stop_drawdown=col("stop_drawdown"), stop_fraction=col("stop_fraction"), spread=col("spread"),
                fee=col("fee"), controls=controls)


def _portfolio_inputs(compiled) -> dict:
    pf = compiled.portfolio
    if pf is None:
        empty = np.zeros(0)
        return dict(spot_btc=1.0, cash0=0.0, perp_size=0.0, perp_leverage=1.0, perp_entry=compiled.param("SPOT0"),
                    perp_mmr=0.0, held_kind=np.zeros(0, dtype=np.int64), held_strike=empty, held_expiry=empty,
                    held_size=empty)
    mmr = pf.perp_mmr if pf.perp_size_btc else 0.0
    return dict(spot_btc=pf.spot_btc, cash0=pf.cash_usd, perp_size=pf.perp_size_btc,
                perp_leverage=pf.perp_leverage or 1.0, perp_entry=pf.perp_entry_usd or compiled.param("SPOT0"),
                perp_mmr=mmr, held_kind=pf.option_kind.astype(np.int64), held_strike=pf.option_strike_usd,
                held_expiry=pf.option_expiry_years, held_size=pf.option_size_btc)


MARKS_BUDGET_BYTES = 64 * 1024**2  # a worker's marks of the fixed contracts evaluated at once (a block of paths)
FIXED_CONTRACT_KERNEL = True  # rows of fixed contracts through evaluate_fixed_nb (False: evaluate_nb for all; tests compare)


def _contracts(inputs: dict) -> list[list]:
    """Each row's fixed contracts (a fixed strike, no roll), ``(kind, strike, expiry)`` per leg,
    ``None`` for a leg that is not one (or no leg)."""
    out = []
    for i in range(inputs["leg_kind"].shape[0]):
        row = []
        for j in range(N_LEGS):
            if inputs["leg_size"][i, j] == 0.0 or np.isnan(inputs["leg_strike"][i, j]) or not np.isnan(inputs["leg_roll"][i, j]):
                row.append(None)
                continue
            expiry = inputs["leg_expiry"][i, j] if not np.isnan(inputs["leg_expiry"][i, j]) else inputs["leg_tenor"][i, j]
            row.append((int(inputs["leg_kind"][i, j]), float(inputs["leg_strike"][i, j]), float(expiry)))
        out.append(row)
    return out


def _marks_bytes(compiled, n_contracts: int) -> int:
    """The scratch :func:`engine.nb.hedge.evaluate_fixed_nb` takes per worker for the marks of
    ``n_contracts`` contracts on a block of paths."""
    from ..nb.hedge import PATH_BLOCK

    return n_contracts * compiled.n_steps * PATH_BLOCK * 8


def _fixed_contracts(compiled, contracts: list[list]) -> dict:
    """The rows' fixed contracts, numbered once for all the rows holding them (each is marked
    once per path and step, whatever the number of rows): ``leg_table`` (rows x legs, -1 for
    none) and the contracts' ``c_kind``, ``c_strike``, ``c_expiry``. A row whose own contracts'
    marks exceed ``MARKS_BUDGET_BYTES`` is left to :func:`engine.nb.hedge.evaluate_nb` (whether a
    row is depends on that row alone, so evaluating rows in any grouping gives the same numbers)."""
    keys: dict = {}
    leg_table = np.full((len(contracts), N_LEGS), -1, dtype=np.int64)
    for i, row in enumerate(contracts):
        own = {key for key in row if key is not None}
        if _marks_bytes(compiled, len(own)) > MARKS_BUDGET_BYTES:
            continue
        for j, key in enumerate(row):
            if key is not None:
                leg_table[i, j] = keys.setdefault(key, len(keys))
    table_keys = np.array(list(keys), dtype=float).reshape(-1, 3)
    return dict(leg_table=leg_table, c_kind=table_keys[:, 0].astype(np.int64), c_strike=table_keys[:, 1].copy(),
                c_expiry=table_keys[:, 2].copy())


def _batches(compiled, contracts: list[list]) -> list[list[int]]:
    """Rows in groups whose fixed contracts' marks fit ``MARKS_BUDGET_BYTES`` together (a row
    whose own contracts do not fit is marked by :func:`engine.nb.hedge.evaluate_nb`, in any group)."""
    batches, rows, keys = [], [], set()
    for i, row in enumerate(contracts):
        own = {key for key in row if key is not None}
        if _marks_bytes(compiled, len(own)) > MARKS_BUDGET_BYTES:
            own = set()
        if rows and _marks_bytes(compiled, len(keys | own)) > MARKS_BUDGET_BYTES:
            batches.append(rows)
            rows, keys = [], set()
        rows.append(i)
        keys |= own
    return batches + [rows] if rows else batches


def scheduled_atm(compiled, prices: np.ndarray) -> np.ndarray:
    """ATM implied vol along given price paths without a variance state (history, or paths from
    elsewhere): the scheduled level (``market.options.atm_iv`` and the shocks' moves) moved by the
    spot-vol beta on the log return since the start, floored as the simulation floors it."""
    r = np.log(np.asarray(prices, dtype=np.float64) / compiled.param("SPOT0"))
    atm = compiled.step("ATM_IV")[None, :] - compiled.param("SURFACE_SPOT_VOL_BETA") * r
    return np.ascontiguousarray(np.maximum(atm, IV_FLOOR))


def _atm_paths(compiled, prices: np.ndarray, atm) -> np.ndarray:
    if atm is None:
        return scheduled_atm(compiled, prices)
    atm = np.ascontiguousarray(atm, dtype=np.float64)
    if atm.shape != prices.shape:
        raise ValueError(f"ATM implied vols {atm.shape} do not match the price paths {prices.shape}")
    return atm


def _outcomes(prices: np.ndarray, compiled, vs: list[Variant], funding: np.ndarray, atm: np.ndarray) -> np.ndarray:
    """The kernel's outputs ``(rows, paths, N_HEDGE_OUT)`` for the rows ``vs``. Each row's numbers depend
    on that row and the paths alone, not on the other rows evaluated with it (tested): a sweep may
    evaluate its rows in chunks. Rows holding only fixed contracts, without a dynamic
    hedge or a deleverage rule, go through ``evaluate_fixed_nb`` (the same numbers as
    ``evaluate_nb``, bit for bit, tested), the others through ``evaluate_nb``."""
    import numba

    from ..nb import hedge as nbh
    from ..nb.config import before_call

    prices = np.ascontiguousarray(prices, dtype=np.float64)
    inputs = _kernel_inputs(compiled, vs)
    contracts = _contracts(inputs)
    out = np.zeros((len(vs), prices.shape[0], N_HEDGE_OUT))
    common = _common_inputs(compiled, prices, atm, funding)
    for batch in _batches(compiled, contracts):
        fixed_contracts = _fixed_contracts(compiled, [contracts[i] for i in batch])
        leg_table = fixed_contracts.pop("leg_table")
        rows = np.array(batch)
        legs_fixed = np.all((leg_table >= 0) | (inputs["leg_size"][rows] == 0.0), axis=1)
        controls = inputs["controls"][rows]
        fixed = legs_fixed & (controls[:, Control.DYNAMIC] == 0.0) & np.isnan(controls[:, Control.DELEV_TARGET])
        if not FIXED_CONTRACT_KERNEL:
            fixed[:] = False
        for kernel, chosen in ((nbh.evaluate_fixed_nb, fixed), (nbh.evaluate_nb, ~fixed)):
            if not chosen.any():
                continue
            row_inputs = {k: v[rows[chosen]] for k, v in inputs.items()}
            if kernel is nbh.evaluate_fixed_nb:
                del row_inputs["leg_roll"]  # all NaN here: a fixed contract is never rolled
                extra = dict(fixed_contracts, n_threads=numba.get_num_threads(),
                             leg_table=np.ascontiguousarray(leg_table[chosen]))
            else:
                extra = _no_trace()
            whole = chosen.all() and len(rows) == len(vs)  # then write straight into ``out``
            part = out if whole else np.zeros((int(chosen.sum()), prices.shape[0], N_HEDGE_OUT))
            before_call(kernel, "the hedging kernels")
            kernel(**common, **row_inputs, out=part, **extra)
            if not whole:
                out[rows[chosen]] = part
    return out


def _common_inputs(compiled, prices: np.ndarray, atm: np.ndarray, funding: np.ndarray) -> dict:
    """The strategy kernels' inputs shared by every row: the paths, their ATM vols, the surface, funding."""
    return dict(prices=prices, atm_paths=atm, spot0=compiled.param("SPOT0"), dt=compiled.param("DT_YEARS"),
                surface=_surface(compiled), bf25=compiled.param("SURFACE_BF25"),
                skew_beta=compiled.param("SURFACE_SKEW_BETA"), ref_tenor=IV_TENOR, floor=IV_FLOOR, funding=funding,
                events=compiled.step("FUNDING_EVENTS"), **_portfolio_inputs(compiled))


def _surface(compiled) -> np.ndarray:
    """The kernels' ``surface[t, Surface.X]``: the ``Step`` rows of the same names side by side."""
    return np.ascontiguousarray(np.stack([compiled.step(name) for name in SURFACE_FIELDS], axis=1))


def _no_trace() -> dict:
    return dict(trace_v=-1, trace_p=-1, marks=np.zeros((1, 1)), orders=np.zeros((1, N_ORDER_FIELDS)),
                n_orders=np.zeros(1, dtype=np.int64))


def evaluate(result, scenario=None):
    """The strategies table of a simulation run with ``keep_steps=True`` (see the module doc)."""
    return evaluate_with_paths(result, scenario)[0]


def evaluate_with_paths(result, scenario=None):
    """:func:`evaluate`, and the per-path outcomes behind it: a dict of ``(rows, n_paths)`` arrays
    ``pnl``, ``max_drawdown``, ``liquidated``, ``premium``, ``payoff`` (:data:`PATH_ARRAYS`; row
    order as in the table)."""
    scenario = scenario if scenario is not None else result.scenario
    if scenario is None:
        raise ValueError("evaluating strategies needs the scenario (run engine.run on a scenario, not a compiled one)")
    if not result.kept_steps:
        raise ValueError("evaluating strategies needs the price paths: run with keep_steps=True")
    prices = result.step_values("price")
    return _evaluate(prices, result.per_path["min_price"].to_numpy(), result.compiled, scenario,
                     result.step_values("funding"), atm=result.step_values("atm_iv"),
                     highs=result.per_path["max_price"].to_numpy())


def _funding(compiled, rates, n_paths: int) -> np.ndarray:
    """Funding rates per interval ``(paths, steps)``: the paths' own, or the scenario's base rate."""
    if rates is not None and rates.shape[0] == n_paths:
        return np.ascontiguousarray(rates, dtype=np.float64)
    return np.full((1, compiled.n_steps), compiled.param("FUNDING_BASE"))


def evaluate_paths(prices, lows, compiled, scenario, funding_rates=None, atm_iv=None, highs=None):
    """:func:`evaluate` on explicit price paths ``(n_paths, n_steps)`` (ends of steps; the start is
    ``SPOT0``) with their minimum prices, for a compiled scenario: simulated paths or history.
    ``funding_rates`` are the paths' funding rates per interval (default: the scenario's base rate),
    ``atm_iv`` their ATM implied vols (default: :func:`scheduled_atm`), ``highs`` their maximum
    prices (default: the highest of the start and the closes)."""
    return _evaluate(prices, lows, compiled, scenario, funding_rates, atm=atm_iv, highs=highs)[0]


PATH_ARRAYS = {"pnl": HedgeOut.PNL, "max_drawdown": HedgeOut.MAX_DRAWDOWN, "liquidated": HedgeOut.LIQUIDATED,
               "premium": HedgeOut.PREMIUM, "payoff": HedgeOut.PAYOFF}  # the per-path outcomes kept: kernel column by name


def _evaluate(prices, lows, compiled, scenario, funding_rates=None, vs=None, atm=None, highs=None):
    """The table and per-path outcomes of the rows ``vs`` (default: every row of the scenario's
    strategies, :func:`variants`). The first row is the baseline of ``d_pnl_mean``, ``d_es99`` and
    ``effectiveness``: a sweep evaluating its rows in chunks passes ``[unhedged] + chunk``, and
    every row comes out as it would in one call. ``p_touch_<level>`` reads ``highs`` for a level
    above the start price (default: the highest of the start and the closes), ``lows`` otherwise."""
    import pandas as pd

    n_paths = prices.shape[0]
    skipped = []
    if vs is None:
        vs, skipped = variants(scenario, compiled)
    prices = np.ascontiguousarray(prices, dtype=np.float64)
    out = _outcomes(prices, compiled, vs, _funding(compiled, funding_rates, n_paths), _atm_paths(compiled, prices, atm))
    statistics = [hedge_metrics.row_statistics({name: out[i, :, c] for name, c in PATH_ARRAYS.items()})
                  for i in range(len(vs))]
    table = pd.DataFrame([{"strategy": v.strategy, "rule": v.rule, **{f"param.{k}": val for k, val in v.params.items()}}
                          for v in vs])
    table = table.assign(**hedge_metrics.metrics(statistics))  # engine.portfolio.metrics: the metrics' definition
    spot = compiled.param("SPOT0")
    if highs is None:
        highs = prices.max(axis=1, initial=spot)
    for level in scenario.outputs.price_levels_usd:
        table[f"p_touch_{level:.0f}"] = float(touched(level, spot, lows, highs).mean())
    table.attrs["not_evaluated"] = skipped
    table.attrs["book_btc_delta"] = _btc_delta(compiled)
    paths = {name: out[:, :, c].copy() for name, c in PATH_ARRAYS.items()}
    return table, paths


def to_vectorbt(result, row: int, path: int, scenario=None):
    """One (strategy row, path) of :func:`evaluate` as a ``vectorbt.Portfolio``, and the kernel's
    outputs for it (indexed by ``engine.compile.layout.HedgeOut``).

    Columns share one cash account: spot BTC, the book's perp and the hedge perp (priced at the
    spot), each option held, and one per contract of each option leg (a roll sells one and buys
    the next in a new column; an expired contract's column keeps its intrinsic value). Opening positions are bought at their marks without fees, on top of an
    initial cash equal to the unhedged book's start value; every later trade is an order at its
    execution price (half the bid-ask spread included) with its fee as a fixed fee. What vectorbt
    cannot express is refused with ``ValueError``: a path on which a perp was liquidated, funding
    payments on perps, and a book that would need to borrow cash.
    """
    scenario = scenario if scenario is not None else result.scenario
    if not result.kept_steps:
        raise ValueError("exporting a path needs the price paths: run with keep_steps=True")
    prices = result.step_values("price")
    return path_to_vectorbt(prices, result.compiled, scenario, row, path, result.step_values("funding"),
                            result.step_values("atm_iv"))


def path_to_vectorbt(prices, compiled, scenario, row: int, path: int, funding_rates=None, atm_iv=None):
    """:func:`to_vectorbt` on explicit price paths (simulated or history)."""
    import vectorbt as vbt

    t = vectorbt_orders(prices, compiled, scenario, row, path, funding_rates, atm_iv)
    portfolio = vbt.Portfolio.from_orders(t["close"], t["size"], price=t["price"], fixed_fees=t["fixed_fees"],
                                          fees=0.0, init_cash=t["init_cash"], cash_sharing=True, group_by=True,
                                          direction="both", raise_reject=True, freq=t["freq"])
    return portfolio, t["out"]


def vectorbt_orders(prices, compiled, scenario, row: int, path: int, funding_rates=None, atm_iv=None) -> dict:
    """The inputs of ``vectorbt.Portfolio.from_orders`` for one (row, path): ``close`` (DataFrame),
    ``size``, ``price``, ``fixed_fees`` (arrays), ``init_cash``, ``freq``, and the kernel's ``out``."""
    import pandas as pd

    from ..nb.hedge import evaluate_nb

    vs, _ = variants(scenario, compiled)
    n_paths = prices.shape[0]
    if not 0 <= row < len(vs) or not 0 <= path < n_paths:
        raise ValueError(f"row must be in [0, {len(vs)}) and path in [0, {n_paths}), got {row}, {path}")
    pf_inputs = _portfolio_inputs(compiled)
    n_held = pf_inputs["held_kind"].size
    # one column per contract a leg can hold: a rolled leg starts a new one at most every
    # (tenor - roll window) and at most once a step
    dt = compiled.param("DT_YEARS")
    horizon = dt * compiled.n_steps
    contracts = 1
    for _, _, _, _, _, tenor, roll in vs[row].legs:
        if not math.isnan(roll):
            contracts = max(contracts, min(compiled.n_steps, math.ceil(horizon / max(tenor - roll - dt, dt))) + 2)
    n_cols = N_TRACE_FIELDS + n_held + N_LEGS * contracts
    n_steps = compiled.n_steps
    marks = np.full((n_steps + 1, n_cols), np.nan)
    orders = np.zeros((8 * n_steps + 64, N_ORDER_FIELDS))  # orders[k, Order.X]
    n_orders = np.zeros(1, dtype=np.int64)
    out = np.zeros((1, 1, N_HEDGE_OUT))
    funding = _funding(compiled, funding_rates, n_paths)
    funding = funding[min(path, funding.shape[0] - 1)][None, :]
    events = compiled.step("FUNDING_EVENTS")
    inputs = _kernel_inputs(compiled, [vs[row]])
    one = np.ascontiguousarray(prices[path:path + 1], dtype=np.float64)
    atm = _atm_paths(compiled, one, None if atm_iv is None else atm_iv[path:path + 1])
    common = _common_inputs(compiled, one, atm, funding)
    evaluate_nb(**common, **inputs, out=out, trace_v=0, trace_p=0, marks=marks, orders=orders, n_orders=n_orders)
    if out[0, 0, HedgeOut.LIQUIDATED]:
        raise ValueError(f"a perp was liquidated on path {path}: vectorbt has no liquidations")
    has_perp = pf_inputs["perp_size"] != 0.0 or vs[row].hedge_size != 0.0
    if has_perp and np.any(funding[0] * events != 0.0):
        raise ValueError("perps pay funding in this scenario, which vectorbt cannot book: "
                         "set market.perpetuals.funding.base_rate and imbalance_sensitivity to 0 to export")
    value0 = out[0, 0, HedgeOut.FINAL_VALUE] - out[0, 0, HedgeOut.PNL]  # the unhedged book's start value, as the kernel has it
    step = pd.Timedelta(seconds=round(compiled.param("DT_YEARS") * 365.25 * 86400))
    # row 0 is the start, row t + 1 the end of step t
    index = pd.DatetimeIndex(pd.Timestamp(compiled.timeline[0], tz="UTC") + step * np.arange(n_steps + 1))
    close = pd.DataFrame(marks, index=index).ffill().fillna(1.0)
    size = np.full(marks.shape, np.nan)
    price = np.full(marks.shape, np.nan)
    fixed = np.zeros(marks.shape)
    for order in orders[: n_orders[0]]:
        r, c = int(order[Order.ROW]), int(order[Order.COLUMN])
        if not np.isnan(size[r, c]):
            raise AssertionError(f"two trades in one cell ({r}, {c})")  # the column layout prevents this
        size[r, c], price[r, c], fixed[r, c] = order[Order.SIZE], order[Order.PRICE], order[Order.FIXED_FEE]
    return dict(close=close, size=size, price=price, fixed_fees=fixed, init_cash=value0, freq=step, out=out[0, 0])
