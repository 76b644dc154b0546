"""The kernel's ABI: names and row indices of every compiled array.

The compiler (:mod:`engine.compile.compiler`) writes these arrays; the numba kernels
(``engine/nb``) read them by the integer constants below, and nothing else. Time is always the
last axis. All arrays are float64 unless stated.

``steps[Step.X, t]``: drivers of step ``t`` (the interval ``[t, t+1)``):

=========================  ====================================================================
row                        meaning (units)
=========================  ====================================================================
DRIFT                      deterministic log-return drift over the step
VOL                        diffusive volatility over the step (sigma * sqrt(dt), shocks applied)
JUMP_PROB                  probability of a random jump in the step (intensity * dt)
MACRO_BETA                 BTC log-return beta to the macro factor
MACRO_DRIFT                deterministic macro-factor log return over the step (cross-asset,
                           relief-rally moves); enters BTC multiplied by MACRO_BETA
MACRO_VOL                  macro-factor volatility over the step
CROSS_ASSET_RETURN         BTC log return from other assets' moves (beta already applied)
SCHEDULED_JUMP             deterministic log-return jump at the step (price_jump, announcements)
SCHEDULED_JUMP_SPREAD      cross-path standard deviation of that jump
DEPTH_MULT                 multiplier of liquidity (1 = the market's): scales depth_usd_per_pct
                           (the linear transient impact) and daily_volume_usd (the square-root
                           law's transient impact); the permanent impact reads its slow version
                           (relaxed with market.impact.depth_memory)
RESILIENCE_MULT            multiplier of the impact decay rate (0 = transient impact never heals)
CIRCUIT_BREAKER_MOVE       move within a step that pauses liquidations (0 = no breaker)
CIRCUIT_BREAKER_STEPS      steps a triggered breaker lasts
ETF_FLOW_USD               scheduled ETF net flow executed in the step (USD, sell < 0)
ETF_WINDOW                 share of the day's US execution window inside the step (0 at weekends)
ETF_LOSS_SENS              reflexive redemptions: share of holdings per day per 100% trailing loss
ETF_BASIS_SENS             share of holdings per day per 100% of price below cost basis
ETF_REFLEX_MULT            multiplier of reflexive redemptions (tightening, overrides)
FORCED_FLOW_USD            other scheduled flows: cross-margined forced selling, momentum buying
MINER_BREAKEVEN            breakeven hash price (USD per PH/s per day)
MINER_HASHRATE_MULT        multiplier of the network hashrate
MINER_FORCED_SALE_BTC      reserves dumped in the step (BTC, capitulation)
DIFFICULTY_ADJUST          1 at steps where the difficulty retargets
FUNDING_EVENTS             number of funding timestamps in the step
NEW_SHORT_NOTIONAL_USD     fresh shorts opened at the step (relief-rally fuel)
NEW_SHORT_LEVERAGE         their leverage
ATM_IV                     at-the-money implied vol (30d)
RISK_REVERSAL_25D          25-delta call IV minus put IV
TERM_SLOPE                 ATM IV change per year of tenor
DEALER_SHORT_SHARE         share of option OI dealers are short
=========================  ====================================================================

``venue_steps[Venue.X, v, t]``: per-venue margin and failure state.

=========================  ====================================================================
MMR                        maintenance margin rate (used when MM_USD_PER_BTC is 0)
IMR                        initial margin rate (used when IM_USD_PER_BTC is 0)
MM_USD_PER_BTC             fixed maintenance margin, USD per BTC; converted to a rate at the
                           price of the step it takes effect (a MARGIN_CHANGE step) and held
IM_USD_PER_BTC             fixed initial margin, USD per BTC; same conversion
MARGIN_CHANGE              1 at steps where the requirement changes (a hike step or a revert)
TOP_UP_FRACTION            at MARGIN_CHANGE steps: share of over-levered cells that add margin
LIQ_FILL_PENALTY           extra cost of liquidation fills on the venue (base slippage included)
INSURANCE_FUND_USD         the venue's insurance fund at the start (USD; read at step 0 only)
=========================  ====================================================================

``params[Param.X]``: scalars, listed in :data:`PARAM_FIELDS`.

The strategy kernel (:mod:`engine.nb.hedge`; :mod:`engine.portfolio.hedge` builds and reads its arrays) indexes
its per-row and per-contract arrays the same way, by the enums at the end of this module:

==================================  ===========================================================
array                               meaning
==================================  ===========================================================
``surface[t, Surface.X]``           the vol surface of step ``t``: the ``Step`` rows ATM_IV,
                                    RISK_REVERSAL_25D and TERM_SLOPE side by side
``leg_size[v, Leg.X]``              row ``v``'s option legs (likewise ``leg_kind``, ``leg_strike``,
                                    ..., and ``leg_table``: the leg's fixed contract, -1 for none):
                                    FIRST, SECOND, in the order ``engine.portfolio.hedge.variants`` gives them
``c_kind[c]``, ``c_strike[c]``,     fixed contract ``c``: put (0) or call (1), strike (USD),
``c_expiry[c]``                     expiry (years from the start)
``atm_paths[p, t]``                 path ``p``'s ATM implied vol at the end of step ``t``
``opening[v, Opening.X]``           row ``v``'s opening trades: CASH after them,
                                    HEDGE_COLLATERAL, PEAK_VALUE (the value drawdowns start from)
``orders[k, Order.X]``              trade ``k`` of a traced (row, path): ROW (0 = the start, t + 1
                                    = the end of step t), COLUMN (in ``marks``), SIZE (signed),
                                    PRICE, FIXED_FEE (USD)
``marks[row, Trace.X]``             the traced path's marks, then one column per option held and
                                    per contract of each leg
``controls[v, Control.X]``          row ``v``'s dynamic rules, listed in :data:`CONTROL_FIELDS`
``out[v, p, HedgeOut.X]``           outputs per (row, path), listed in :data:`HEDGE_OUT_FIELDS`
==================================  ===========================================================
"""

from __future__ import annotations

import math
from collections import namedtuple

STEP_FIELDS = (
    "DRIFT",
    "VOL",
    "JUMP_PROB",
    "MACRO_BETA",
    "MACRO_DRIFT",
    "MACRO_VOL",
    "CROSS_ASSET_RETURN",
    "SCHEDULED_JUMP",
    "SCHEDULED_JUMP_SPREAD",
    "DEPTH_MULT",
    "RESILIENCE_MULT",
    "CIRCUIT_BREAKER_MOVE",
    "CIRCUIT_BREAKER_STEPS",
    "ETF_FLOW_USD",
    "ETF_WINDOW",
    "ETF_LOSS_SENS",
    "ETF_BASIS_SENS",
    "ETF_REFLEX_MULT",
    "FORCED_FLOW_USD",
    "MINER_BREAKEVEN",
    "MINER_HASHRATE_MULT",
    "MINER_FORCED_SALE_BTC",
    "DIFFICULTY_ADJUST",
    "FUNDING_EVENTS",
    "NEW_SHORT_NOTIONAL_USD",
    "NEW_SHORT_LEVERAGE",
    "ATM_IV",
    "RISK_REVERSAL_25D",
    "TERM_SLOPE",
    "DEALER_SHORT_SHARE",
)

VENUE_FIELDS = (
    "MMR",
    "IMR",
    "MM_USD_PER_BTC",
    "IM_USD_PER_BTC",
    "MARGIN_CHANGE",
    "TOP_UP_FRACTION",
    "LIQ_FILL_PENALTY",
    "INSURANCE_FUND_USD",
)

PARAM_FIELDS = (
    "SPOT0",  # price at the start, USD
    "DT_YEARS",  # step length in years (365.25-day years)
    "TAIL_DOF",  # Student-t degrees of freedom; 0 = Gaussian
    "JUMP_MEAN",  # mean log-size of random jumps
    "JUMP_STDEV",  # standard deviation of their log-size
    "CLUSTER_PERSIST",  # share of the log-variance deviation h left after one step (exp(-ln2 dt / half-life))
    "CLUSTER_SHOCK",  # standard deviation of h's shock over one step: vol_of_vol * sqrt(1 - persist^2)
    "CLUSTER_STDEV",  # vol_of_vol: h's stationary standard deviation; 0 = constant volatility
    "CLUSTER_RHO",  # correlation of h's shocks with the return's (leverage effect)
    "LIQ_FEEDBACK",  # rise of h per unit of open interest liquidated in a step (self-excitation)
    "IMPACT_MODEL",  # 0 = square-root law, 1 = linear depth, 2 = both (their sum)
    "SQRT_COEFFICIENT",  # Y of the square-root law
    "SIGMA_DAY",  # daily volatility used by the square-root law
    "DAILY_VOLUME_USD",
    "DEPTH_USD_PER_PCT",
    "RESILIENCE_DECAY",  # share of the transient flow state left after one step (exp(-ln2 dt / half-life))
    "PERMANENT_FRACTION",  # share of the linear depth impact q / (100 * depth) that is permanent
    "DEPTH_MEMORY_DECAY",  # share of the slow depth's gap to the depth left after one step (exp(-dt / depth_memory))
    "MAX_CASCADE_ROUNDS",
    "FUNDING_BASE",  # per funding interval
    "FUNDING_SENSITIVITY",  # per interval per unit of book imbalance
    "FUNDING_CAP",
    "ETF_HOLDINGS_BTC",
    "ETF_COST_BASIS_USD",
    "ETF_LOOKBACK_STEPS",
    "MINER_HASHRATE_PH",  # PH/s at the start
    "MINER_RESERVES_BTC",
    "MINER_REVENUE_BTC_PER_DAY",  # subsidy * 144 * (1 + fee share)
    "MINER_SELL_SENSITIVITY",  # share of reserves per day per 100% shortfall
    "MINER_HASHRATE_SENSITIVITY",
    "DELEV_BASE",  # the holding-time hazard per day: every position closes at it, new ones replace them
    "DELEV_DRAWDOWN",  # stop-loss: per day per 100% loss of a side against its average entry
    "DELEV_TAKE_PROFIT",  # take-profit: per day per 100% gain of a side against its average entry
    "ENTRY_EMA_DECAY",  # the average entry's weight on its old value per step: exp(-DELEV_BASE * dt_days)
    "DELEV_VOLATILITY",  # per day per unit of annual realised vol above the reference
    "DELEV_VOL_REFERENCE",
    "DELEV_FUNDING",  # per day per unit of daily funding paid
    "VOL_EWMA_DECAY",  # weight of the old realised-variance estimate per step
    "MOMENTUM_LOOKBACK_STEPS",
    "MOMENTUM_RATE",  # share of OI opened per day per 100% lookback return beyond the threshold, from flat
    "MOMENTUM_THRESHOLD",  # lookback return momentum traders ignore
    "MOMENTUM_HOLD_DAYS",  # their position's relaxation time toward its target (days)
    "MOMENTUM_CAPITAL",  # their largest position, a share of the book's starting size
    "FUNDING_INTERVALS_PER_DAY",
    "SURFACE_BF25",  # the vol surface's 25-delta butterfly
    "SURFACE_SPOT_VOL_BETA",  # ATM IV per unit of log return lost (engine.options.surface)
    "SURFACE_SKEW_BETA",  # risk reversal per unit of log return
    "IV_VRP",  # variance risk premium: ATM implied vol over the expected realised vol over the tenor, minus 1
)

# ``drivers[t, Driver.X]``: per-step values engine.simulate.prepare derives from the arrays above,
# which the kernel would otherwise recompute on every path (d = DEPTH_MULT[t])
DRIVER_FIELDS = (
    "SQRT_COEF",  # the square-root law's transient coefficient Y*sigma_day/sqrt(V_day*d) (0: not that law)
    "LINEAR_COEF",  # the linear transient coefficient 1/(depth*d*100) (0: not that law)
    "PERMANENT_COEF",  # permanent impact per USD of net flow: permanent_fraction/(depth*sbar*100), sbar the slow depth
    "DRIFT",  # DRIFT + MACRO_BETA * MACRO_DRIFT + CROSS_ASSET_RETURN, log per step
    "MACRO_VOL",  # MACRO_BETA * MACRO_VOL
    "DECAY",  # share of the transient flow state kept over the step: RESILIENCE_DECAY ** RESILIENCE_MULT
    "GAIN",  # share of a flow spread evenly over the step still unhealed at its end: (1-DECAY)/(-ln DECAY)
    "BRIDGE",  # 2 / the step's diffusive log variance (VOL^2 + (MACRO_BETA*MACRO_VOL)^2); inf when 0
    "REACH",  # exp(-sqrt(BRIDGE_REACH / BRIDGE)): no bridge draw takes the path below its lower end times this
    "REACH_LOG",  # log(REACH): a path whose variance is m^2 times the step's has reach REACH^m (clustering)
    "RARE",  # 1 if the step has a scheduled jump, a margin change, relief-rally shorts or a retarget
    "IV_DIFFUSION_VAR",  # the step's diffusive variance per year, (VOL^2 + (MACRO_BETA*MACRO_VOL)^2) / DT_YEARS
    "IV_JUMP_VAR",  # the random jumps' variance per year, JUMP_PROB * (JUMP_MEAN^2 + JUMP_STDEV^2) / DT_YEARS
    "IV_SHIFT",  # the scheduled ATM IV's move since the start (shocks): ATM_IV[t] - ATM_IV[0]
)

# ---- the kernel's outputs (engine.nb.kernel.simulate_nb): column names, as the result tables show them
# per-path summary columns
SUMMARY_FIELDS = (
    "min_price",
    "max_price",
    "terminal_price",
    "max_drawdown",
    "trough_step",
    "long_liquidations_usd",
    "short_liquidations_usd",
    "peak_step_liquidations_usd",
    "max_cascade_rounds",
    "open_interest_start_usd",
    "open_interest_end_usd",
    "etf_flow_usd",
    "etf_reflexive_usd",
    "miner_sales_usd",
    "dealer_flow_usd",
    "deleveraging_flow_usd",
    "momentum_flow_usd",
    "new_positions_flow_usd",
    "margin_cut_usd",
    "forced_flow_usd",
    "bad_debt_usd",
    "adl_usd",
    "insurance_fund_end_usd",
    "liquidation_surplus_usd",
    "min_funding_rate",
    "max_funding_rate",
    "paused_steps",
    "partial_liquidations_usd",
)
# flow decomposition per step (sum over paths), USD, sell < 0
FLOW_FIELDS = (
    "etf",
    "long_liquidations",
    "short_liquidations",
    "deleveraging",
    "dealers",
    "miners",
    "momentum",
    "new_positions",
    "forced",
    "margin_cuts",
)
# events of the book per step (sum over paths), USD: not market flows (ADL closes positions off the
# order book; a partial liquidation's market flow is already in the liquidations above). The kernel
# writes them after the flows, in the same per-step array: ``flows[t, BookEvent.ADL]``
BOOK_EVENT_FIELDS = (
    "adl",
    "partial_liquidations",
)
# the book's rows: one per (venue, size class), ordered by venue then class, smallest first
# (engine.compile.book.build_book)
ROW_FIELDS = (
    "VENUE",  # the row's venue (index)
    "MMR",  # the row's own maintenance-rate floor: its tier's effective rate (0 on a flat venue)
    "IMR",  # the row's own initial-rate floor: 1 / its tier's maximum leverage (0 on a flat venue)
    "SHARE",  # share of new positions (momentum, relief-rally fuel) opened in the row
    "DOWN",  # the next smaller class's row on the venue (r - 1), -1 for the smallest
    "KEEP",  # share of a position a partial liquidation leaves open (0 where DOWN is -1)
)
# margin stress of the book at the end of each step, replay only (engine.nb.book.stress_nb), USD
STRESS_FIELDS = (
    "long_open_interest_usd",
    "short_open_interest_usd",
    "long_equity_usd",
    "short_equity_usd",
    "long_near_liquidation_usd",
    "short_near_liquidation_usd",
    "long_over_4x_usd",
    "short_over_4x_usd",
)

# ---- the strategy kernel (engine.nb.hedge): its outputs per (row, path), the controls of each row,
# and the trace columns of one path's book
HEDGE_OUT_FIELDS = ("pnl", "max_drawdown", "liquidated", "premium", "final_value", "payoff")
CONTROL_FIELDS = (
    "DYNAMIC",  # 1: the perp hedge is rebalanced toward a delta target
    "DELTA_TARGET",  # net BTC delta kept, as a share of the unhedged delta (0 = fully hedged)
    "BAND",  # rebalance when the hedge is off its target by more than this share of the unhedged delta
    "EVERY",  # check every this many steps
    "DELEV_TARGET",  # deleverage: the book perp's leverage after a cut (0 = close); NaN = no rule
    "DELEV_DRAWDOWN",  # cut when the price is this far below its running peak (NaN = no trigger)
    "DELEV_VOL",  # cut when realised vol (annual) over the window exceeds this (NaN = no trigger)
    "DELEV_WINDOW",  # the realised-vol window, steps
    "DELEV_COOLDOWN",  # steps between two cuts
    "DELEV_FUNDING",  # cut when the funding rate per interval falls to this (NaN = no trigger)
)
TRACE_FIELDS = ("SPOT", "BOOK", "HEDGE")  # then the options held, then one per contract of each leg
# the strategy kernel's inputs: the vol surface per step (engine.portfolio.hedge._surface stacks these Step rows)
SURFACE_FIELDS = ("ATM_IV", "RISK_REVERSAL_25D", "TERM_SLOPE")
# option legs of a row (columns of leg_kind, leg_size, ..., leg_table), as engine.portfolio.hedge.variants orders
# them: the bought put first, then a put spread's sold put or a collar's sold call
LEG_FIELDS = ("FIRST", "SECOND")
# a fixed contract's mark table per (grid price, step): its value and its derivative in log price
# evaluate_fixed_nb's per-row opening, the same on every path: cash after the opening trades, the hedge
# perp's collateral, the value drawdowns start from
OPENING_FIELDS = ("CASH", "HEDGE_COLLATERAL", "PEAK_VALUE")
# one trade of a traced (row, path): the marks row and column it books in, signed size, price, fixed fee
ORDER_FIELDS = ("ROW", "COLUMN", "SIZE", "PRICE", "FIXED_FEE")

SIDE_LONG, SIDE_SHORT = 0, 1
IMPACT_SQRT, IMPACT_LINEAR, IMPACT_BOTH = 0, 1, 2  # the transient law: square root, linear or both
OPTION_PUT, OPTION_CALL = 0, 1

# Row indices as named constants, vectorbt-enum style: ``Step.DEPTH_MULT``, ``Venue.IMR``,
# ``Param.SPOT0``. Numba reads these namedtuples as compile-time constants.
Step = namedtuple("Step", STEP_FIELDS)(*range(len(STEP_FIELDS)))
Venue = namedtuple("Venue", VENUE_FIELDS)(*range(len(VENUE_FIELDS)))
Param = namedtuple("Param", PARAM_FIELDS)(*range(len(PARAM_FIELDS)))
Driver = namedtuple("Driver", DRIVER_FIELDS)(*range(len(DRIVER_FIELDS)))
# outputs: ``summary[i, Summary.MIN_PRICE]``, ``flows[t, Flow.ETF]``, ``stress[t, Stress.LONG_EQUITY_USD]``
Summary = namedtuple("Summary", [f.upper() for f in SUMMARY_FIELDS])(*range(len(SUMMARY_FIELDS)))
Flow = namedtuple("Flow", [f.upper() for f in FLOW_FIELDS])(*range(len(FLOW_FIELDS)))
BookEvent = namedtuple("BookEvent", [f.upper() for f in BOOK_EVENT_FIELDS])(
    *range(len(FLOW_FIELDS), len(FLOW_FIELDS) + len(BOOK_EVENT_FIELDS)))
Row = namedtuple("Row", ROW_FIELDS)(*range(len(ROW_FIELDS)))
Stress = namedtuple("Stress", [f.upper() for f in STRESS_FIELDS])(*range(len(STRESS_FIELDS)))
HedgeOut = namedtuple("HedgeOut", [f.upper() for f in HEDGE_OUT_FIELDS])(*range(len(HEDGE_OUT_FIELDS)))
Control = namedtuple("Control", CONTROL_FIELDS)(*range(len(CONTROL_FIELDS)))
Trace = namedtuple("Trace", TRACE_FIELDS)(*range(len(TRACE_FIELDS)))
# the strategy kernel's other arrays: ``surface[t, Surface.ATM_IV]``, ``leg_table[v, Leg.FIRST]``,
# ``orders[k, Order.PRICE]``
Surface = namedtuple("Surface", SURFACE_FIELDS)(*range(len(SURFACE_FIELDS)))
Leg = namedtuple("Leg", LEG_FIELDS)(*range(len(LEG_FIELDS)))
Opening = namedtuple("Opening", OPENING_FIELDS)(*range(len(OPENING_FIELDS)))
Order = namedtuple("Order", ORDER_FIELDS)(*range(len(ORDER_FIELDS)))
N_HEDGE_OUT = len(HEDGE_OUT_FIELDS)
N_CONTROLS = len(CONTROL_FIELDS)
N_TRACE_FIELDS = len(TRACE_FIELDS)
N_LEGS = len(LEG_FIELDS)
N_OPENING_FIELDS = len(OPENING_FIELDS)
N_ORDER_FIELDS = len(ORDER_FIELDS)
N_STEP_FIELDS = len(STEP_FIELDS)
N_VENUE_FIELDS = len(VENUE_FIELDS)
N_PARAMS = len(PARAM_FIELDS)
# new positions (turnover arrivals, momentum) open at this many equal-mass leverage nodes of their
# distribution (engine.compile.book.new_leverage_nodes). Turnover arrivals cycle through them by
# volume: each node takes NODE_CYCLE_SHARE / N_NEW_NODES of the side's starting size before the
# next (engine.nb.kernel._deposit_cycle_nb), however the flow is cut into steps; the momentum
# traders split what they open in a step over all of them (engine.nb.kernel._deposit_spread_nb)
N_NEW_NODES = 16
NODE_CYCLE_SHARE = 0.04
# the path's ATM implied vol (engine.simulate: dealer table, forward-variance table; the kernel's iv)
DEALER_GRID = 256  # log-price points of the dealer hedge table
N_IV_LEVELS = 16  # ATM IV levels of the dealer hedge table, log-spaced from IV_LEVEL_LO to IV_LEVEL_HI
IV_LEVEL_LO = 0.05
IV_LEVEL_HI = 4.0  # a path's ATM IV beyond the ends reads the end level
IV_LEVEL_INV = (N_IV_LEVELS - 1) / math.log(IV_LEVEL_HI / IV_LEVEL_LO)  # levels per unit of log ATM IV
IV_TENOR = 30 / 365.25  # the ATM IV's tenor (years): the vol surface's reference tenor
IV_FLOOR = 0.05  # the lowest ATM IV
IV_H_POINTS = 129  # values of the log-variance deviation h in the forward-variance table
N_DRIVERS = len(DRIVER_FIELDS)
N_ROW_FIELDS = len(ROW_FIELDS)
N_STEP_SUMS = len(FLOW_FIELDS) + len(BOOK_EVENT_FIELDS)  # the kernel's per-step sums: flows, then book events
